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
from pathlib import Path

from PIL import Image

from skintwin.dataset import IMAGE_SUFFIXES, Layout, Problem, discover, label_path, list_images
from skintwin.dataset import parse_labels as _parse_labels
from skintwin.errors import SkinTwinError
from skintwin.io import atomic_write_json
from skintwin.params import ValidateParams

log = logging.getLogger(__name__)


def _inspect_image(path: Path) -> tuple[str | None, tuple[int, int] | None, str | None]:
    """(content hash, (width, height), error) of one image; decodes it fully."""
    try:
        data = path.read_bytes()
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            size = im.size
    except Exception as exc:  # PIL raises many types for corrupt files
        return None, None, f"unreadable or truncated image: {exc}"
    return hashlib.sha256(data).hexdigest(), size, None


def _orphan_labels(layout: Layout, images: list[Path]) -> list[Problem]:
    stems = {label_path(p) for p in images}
    label_dirs = {label_path(p).parent for p in images} | {
        label_path(d / "x.jpg").parent for d in layout.splits.values()
    }
    found = []
    for folder in sorted(label_dirs):
        if not folder.is_dir():
            continue
        for txt in sorted(folder.glob("*.txt")):
            if txt not in stems and txt.name != "classes.txt":
                found.append(Problem("error", "label_without_image", str(txt), "no image"))
    return found


def run_validate(layout: Layout, params: ValidateParams, workers: int = 2) -> dict:
    """Check every image and label of `layout`.

    Returns:
        The data report: counts per split and class, image sizes, duplicates, and every
        problem found (`errors` > 0 means the dataset must not be used).
    """
    problems: list[Problem] = []
    per_split: dict[str, list[Path]] = {s: list_images(d) for s, d in layout.splits.items()}
    for split, images in per_split.items():
        if not images:
            problems.append(
                Problem(
                    "error",
                    "empty_split",
                    str(layout.splits[split]),
                    f"split '{split}' has no images ({', '.join(IMAGE_SUFFIXES)})",
                )
            )
    images = [p for split in per_split.values() for p in split]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        inspected = list(pool.map(_inspect_image, images))
    by_hash: dict[str, list[str]] = defaultdict(list)
    sizes: Counter[str] = Counter()
    class_images: Counter[str] = Counter()
    class_boxes: Counter[str] = Counter()
    split_counts: dict[str, dict[str, int]] = {}
    background = 0
    for split, split_images in per_split.items():
        split_counts[split] = {"images": len(split_images), "boxes": 0, "background": 0}
    split_of = {p: s for s, imgs in per_split.items() for p in imgs}
    for image, (digest, size, error) in zip(images, inspected, strict=True):
        if error:
            problems.append(Problem("error", "unreadable_image", str(image), error))
            continue
        by_hash[digest].append(str(image))
        sizes[f"{size[0]}x{size[1]}"] += 1
        lbl = label_path(image)
        if not lbl.exists():
            background += 1
            split_counts[split_of[image]]["background"] += 1
            continue
        boxes, found = _parse_labels(lbl, len(layout.names), params.max_box_overflow)
        problems.extend(found)
        split_counts[split_of[image]]["boxes"] += len(boxes)
        for name in {layout.names[b.cls] for b in boxes}:
            class_images[name] += 1
        for b in boxes:
            class_boxes[layout.names[b.cls]] += 1
    problems.extend(_orphan_labels(layout, images))
    if not images:
        problems.append(Problem("error", "empty_dataset", str(layout.root), "no images at all"))
    for name in layout.names:
        if images and class_images[name] < params.min_images_per_class:
            problems.append(
                Problem(
                    "error",
                    "too_few_images",
                    str(layout.data_yaml),
                    f"class '{name}' is in {class_images[name]} images; "
                    f"validate.min_images_per_class is {params.min_images_per_class}",
                )
            )
    duplicates = [paths for paths in by_hash.values() if len(paths) > 1]
    for paths in duplicates:
        problems.append(
            Problem(
                "warning",
                "duplicate_image",
                paths[0],
                f"same content as {', '.join(paths[1:])} (dropped in preprocess)",
            )
        )
    if background:
        problems.append(
            Problem(
                "warning",
                "background_images",
                str(layout.root),
                f"{background} images have no label file (used as background)",
            )
        )
    errors = [p for p in problems if p.severity == "error"]
    return {
        "dataset": str(layout.root),
        "layout": sorted(layout.splits),
        "names": list(layout.names),
        "images": len(images),
        "splits": split_counts,
        "classes": {n: {"images": class_images[n], "boxes": class_boxes[n]} for n in layout.names},
        "background_images": background,
        "image_sizes": dict(sizes.most_common()),
        "duplicate_groups": duplicates,
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
    from skintwin.cli_util import run_main
    from skintwin.params import load_params

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
