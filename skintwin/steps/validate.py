"""validate: check a dataset against the Dataset contract before any training time is spent.

Errors (unreadable images, bad label lines, labels without images, empty splits, too few
images of a class) stop the pipeline with a non-zero exit and a summary naming each file
and line. Warnings and counts go into the JSON data report.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, field
from pathlib import Path

from skintwin.data.coverage import kept_first, stray_images
from skintwin.data.dataset import (
    IMAGE_SUFFIXES,
    Layout,
    Problem,
    discover,
    label_path,
    list_images,
    parse_labels,
    shared_labels,
)
from skintwin.data.images import ImageError, decode_image
from skintwin.errors import SkinTwinError
from skintwin.io import atomic_write_json
from skintwin.params import ValidateParams

log = logging.getLogger(__name__)


MIN_SIDE = 10  # pixels: Ultralytics drops a smaller image from training as corrupt


def _inspect_image(path: Path) -> tuple[str | None, tuple[int, int] | None, str | None]:
    """(content hash, (width, height), error) of one image; decodes it fully, with the
    decoder every later step uses."""
    try:
        data = path.read_bytes()
        rgb = decode_image(data, label=path.name)
    except OSError as exc:
        return None, None, f"unreadable image: {exc.strerror or exc}"
    except ImageError as exc:
        return None, None, f"unusable image: {exc}"
    if min(rgb.shape[:2]) < MIN_SIDE:
        return (
            None,
            None,
            f"image of {rgb.shape[1]}×{rgb.shape[0]} pixels: a side under {MIN_SIDE}",
        )
    return hashlib.sha256(data).hexdigest(), (rgb.shape[1], rgb.shape[0]), None


def _orphan_labels(layout: Layout, images: list[Path]) -> list[Problem]:
    stems = {label_path(p) for p in images}
    label_dirs = {label_path(p).parent for p in images} | {
        label_path(d / "x.jpg").parent for d in layout.splits.values()
    }
    found = []
    for folder in sorted(label_dirs):
        if not folder.is_dir():
            continue
        for txt in sorted(f for f in folder.iterdir() if f.suffix.lower() == ".txt"):
            if txt.suffix != ".txt":  # the photo beside it would train as a negative
                message = f"YOLO reads a photo's labels from '{txt.stem}.txt': rename it"
                found.append(Problem("error", "label_suffix", str(txt), message))
            elif txt not in stems and txt.name != "classes.txt":
                found.append(Problem("error", "label_without_image", str(txt), "no image"))
    return found


@dataclass
class _Tally:
    """What the images and labels of a dataset add up to."""

    splits: dict[str, dict[str, int]]
    by_hash: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    boxes: dict[str, list] = field(default_factory=dict)  # each image's, sorted
    sizes: Counter = field(default_factory=Counter)
    class_images: Counter = field(default_factory=Counter)
    class_boxes: Counter = field(default_factory=Counter)
    background: int = 0


def _check_images(
    layout: Layout, per_split: dict[str, list[Path]], params: ValidateParams, workers: int
) -> tuple[_Tally, list[Problem]]:
    """Decode every image and parse its label file; count what is there."""
    images = [(p, s) for s, split_images in per_split.items() for p in split_images]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        inspected = list(pool.map(_inspect_image, [p for p, _ in images]))
    tally = _Tally(
        {s: {"images": len(i), "boxes": 0, "background": 0} for s, i in per_split.items()}
    )
    problems = shared_labels([p for p, _ in images])
    for (image, split), (digest, size, error) in zip(images, inspected, strict=True):
        if error:
            problems.append(Problem("error", "unreadable_image", str(image), error))
            continue
        tally.by_hash[digest].append(str(image))
        tally.sizes[f"{size[0]}x{size[1]}"] += 1
        lbl = label_path(image)
        tally.boxes[str(image)] = []
        if not lbl.exists():
            tally.background += 1
            tally.splits[split]["background"] += 1
            continue
        boxes, found = parse_labels(lbl, len(layout.names), params.max_box_overflow)
        tally.boxes[str(image)] = sorted(boxes, key=astuple)
        problems.extend(found)
        tally.splits[split]["boxes"] += len(boxes)
        tally.class_images.update({layout.names[b.cls] for b in boxes})
        tally.class_boxes.update(layout.names[b.cls] for b in boxes)
    return tally, problems


def _dataset_rules(
    layout: Layout, n_images: int, tally: _Tally, params: ValidateParams
) -> list[Problem]:
    """Rules about the whole dataset: enough images per class, duplicates, background."""
    problems = []
    if not n_images:
        problems.append(Problem("error", "empty_dataset", str(layout.root), "no images at all"))
    for name in layout.names:
        if n_images and tally.class_images[name] < params.min_images_per_class:
            message = (
                f"class '{name}' is in {tally.class_images[name]} images; "
                f"validate.min_images_per_class is {params.min_images_per_class}"
            )
            problems.append(Problem("error", "too_few_images", str(layout.data_yaml), message))
    for kept, *copies in (p for p in tally.by_hash.values() if len(p) > 1):
        for copy in copies:  # the copy goes; which lesions would be its photo's?
            if tally.boxes[copy] != tally.boxes[kept]:
                theirs, ours = label_path(Path(kept)).name, label_path(Path(copy)).name
                message = (f"same photo as {kept}, with other labels ({ours} and {theirs}): "
                           "make them agree, or keep one")  # fmt: skip
                problems.append(Problem("error", "duplicate_image_labels", copy, message))
            else:
                message = f"same content as {kept} (this copy is dropped in preprocess)"
                problems.append(Problem("warning", "duplicate_image", copy, message))
    if tally.background:
        message = f"{tally.background} images have no label file (used as background)"
        problems.append(Problem("warning", "background_images", str(layout.root), message))
    return problems


def run_validate(layout: Layout, params: ValidateParams, workers: int = 2) -> dict:
    """Check every image and label of `layout`.

    Returns:
        The data report: counts per split and class, image sizes, duplicates, and every
        problem found (`errors` > 0 means the dataset must not be used).
    """
    per_split: dict[str, list[Path]] = {s: list_images(d) for s, d in kept_first(layout.splits)}
    problems = [
        Problem(
            "error",
            "empty_split",
            str(layout.splits[split]),
            f"split '{split}' has no images ({', '.join(IMAGE_SUFFIXES)})",
        )
        for split, images in per_split.items()
        if not images
    ]
    problems += [
        Problem(
            "warning",
            "overlapping_splits",
            str(layout.data_yaml),
            f"'{split}' names the same folder as '{other}'; its images are read once, "
            f"as '{other}'",
        )
        for split, other in layout.overlaps
    ]
    tally, found = _check_images(layout, per_split, params, workers)
    images = [p for split in per_split.values() for p in split]
    problems += found + _orphan_labels(layout, images) + stray_images(layout)
    problems += _dataset_rules(layout, len(images), tally, params)
    errors = [p for p in problems if p.severity == "error"]
    return {
        "dataset": str(layout.root),
        "layout": sorted(layout.splits),
        "names": list(layout.names),
        "images": len(images),
        "splits": tally.splits,
        "classes": {
            n: {"images": tally.class_images[n], "boxes": tally.class_boxes[n]}
            for n in layout.names
        },
        "background_images": tally.background,
        "image_sizes": dict(tally.sizes.most_common()),
        "duplicate_groups": [p for p in tally.by_hash.values() if len(p) > 1],
        "errors": len(errors),
        "warnings": len(problems) - len(errors),
        "problems": [p.__dict__ for p in problems],
    }


def summarise(report: dict, limit: int = 200) -> str:
    """Human-readable list of problems, errors first."""
    rows = sorted(report["problems"], key=lambda p: (p["severity"] != "error", p["file"]))
    lines = [str(Problem(**p)) for p in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more")
    head = f"{report['dataset']}: {report['errors']} error(s), {report['warnings']} warning(s)"
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    from skintwin.params import load_params
    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--report", required=True, help="JSON data report to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        report = run_validate(discover(args.data), params.validate_, params.preprocess.workers)
        if report["errors"]:
            raise SkinTwinError("dataset failed validation\n" + summarise(report))
        log.info(summarise(report, limit=50))
        atomic_write_json(Path(args.report), report)

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
