"""preprocess: de-duplicate, split and normalise a validated dataset; write reference features.

Exact duplicates are dropped; near-duplicates (re-saved, resized, slightly cropped or
brightened copies) are found and kept in one split, so none straddles train and test. The
split is stratified by class and tone group with a minimum of test images per group (or
the dataset's own split is kept, `preprocess.keep_splits`).

Output folder: `images/{train,val,test}`, `labels/{train,val,test}`, a `data.yaml`
Ultralytics trains on, `reference_features.parquet` (one row per image: split, size,
brightness, contrast, saturation, sharpness, ITA, tone group, label counts, the source
image's SHA-256) and
`summary.json`, the split report (also written to `--report` for git): counts per split ×
class × tone group, the test images of each group with the smallest drop they could
reveal, the near-duplicates found.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
from collections import Counter
from dataclasses import astuple
from pathlib import Path

import pandas as pd
import yaml
from PIL import Image

from skintwin.data.coverage import kept_first
from skintwin.data.dataset import Layout, discover, label_path, list_images, parse_labels
from skintwin.data.features import extract_many
from skintwin.data.images import decode_image, needs_normalising
from skintwin.data.near_duplicates import near_duplicate_groups
from skintwin.data.split_plan import check_source_splits, plan_split, split_report
from skintwin.data.splits import SPLITS
from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir, atomic_write_json, check_output_dir
from skintwin.params import PreprocessParams

log = logging.getLogger(__name__)


def _collect(layout: Layout, max_overflow: float) -> tuple[list[dict], int]:
    """Every unique image with its label boxes, read as validate reads them (a box within
    `max_overflow` past an edge clipped to it); exact duplicates (same bytes) dropped. A
    label line validate would refuse stops it: no lesion is dropped without a word."""
    seen: dict[str, dict] = {}
    items, dropped = [], 0
    for source_split, folder in kept_first(layout.splits):  # the copy in test stays
        for image in list_images(folder):
            digest = hashlib.sha256(image.read_bytes()).hexdigest()
            lbl = label_path(image)
            boxes, problems = (
                parse_labels(lbl, len(layout.names), max_overflow) if lbl.exists() else ([], [])
            )
            wrong = [p for p in problems if p.severity == "error"]
            if wrong:
                raise SkinTwinError(f"{wrong[0].file}:{wrong[0].line}: {wrong[0].message} "
                                    "(run the validate stage for every problem)")  # fmt: skip
            if digest in seen:
                kept = seen[digest]
                if sorted(boxes, key=astuple) != sorted(kept["boxes"], key=astuple):
                    raise SkinTwinError(f"{image}: same photo as {kept['image']}, with other "
                                        "labels (run the validate stage)")  # fmt: skip
                dropped += 1
                continue
            seen[digest] = {"image": image, "source_split": source_split, "boxes": boxes,
                            "digest": digest}  # fmt: skip
            items.append(seen[digest])
    return items, dropped


def _unique_name(name: str, item: dict, taken: set[str]) -> str:
    """`name`, else prefixed with its source split, else suffixed with its content's hash,
    so that no two photos share a stem (`taken` holds the stems). Photos found in
    sub-folders (`clinic_a/p0.jpg`, `clinic_b/p0.webp`, written as `p0.png`) share names;
    one copied over another would lose it, and two of one stem would read one label file
    (YOLO finds a photo's labels by its stem): one photo trained with the other's lesions."""
    stem, suffix = Path(name).stem, Path(name).suffix
    for candidate in (
        name,
        f"{item['source_split']}_{name}",
        f"{stem}_{item['digest'][:16]}{suffix}",
    ):
        if Path(candidate).stem not in taken:
            break
    else:
        raise SkinTwinError(f"{item['image']}: no free name for it in the output")
    taken.add(Path(candidate).stem)
    return candidate


def _place_image(item: dict, folder: Path, taken: set[str]) -> str:
    """Copy an image, or write it as a plain PNG when Ultralytics' reader could see other
    pixels than ours (EXIF rotation, CMYK, 16-bit, palette): one reading of every image."""
    source = item["image"]
    if not needs_normalising(source):
        name = _unique_name(source.name, item, taken)
        shutil.copyfile(source, folder / name)
        return name
    name = _unique_name(source.with_suffix(".png").name, item, taken)
    Image.fromarray(decode_image(source, max_pixels=None)).save(folder / name)
    return name


def _write_item(tmp: Path, it: dict, split: str, names: tuple[str, ...], taken: set) -> dict:
    """Place one image and its labels in `split`; its row of the reference table."""
    name = _place_image(it, tmp / "images" / split, taken)
    if it["boxes"]:
        lines = [f"{b.cls} {b.cx:.6f} {b.cy:.6f} {b.w:.6f} {b.h:.6f}" for b in it["boxes"]]
        label = tmp / "labels" / split / Path(name).with_suffix(".txt")
        label.write_text("\n".join(lines) + "\n")
    counts = Counter(names[b.cls] for b in it["boxes"])
    return {
        "file": f"images/{split}/{name}",
        "split": split,
        "sha256": it["digest"],  # of the source image: what a model saw, across versions
        **it["features"],
        "n_labels": len(it["boxes"]),
        **{f"n_{c}": counts.get(c, 0) for c in names},
    }


def run_preprocess(
    layout: Layout,
    params: PreprocessParams,
    out: Path,
    report: Path | None = None,
    max_overflow: float = 0.0,
) -> dict:
    """Write the normalised dataset and reference features into `out` (atomically), and
    the split report (also to `report`, a small file for git). `max_overflow`: how far a
    box may pass an image's edge and be clipped (`validate.max_box_overflow`).

    Returns:
        The split report: counts per split, class and tone group, the test split per
        group, near-duplicates found.
    """
    check_output_dir(out, "preprocess", [layout.root])  # before the work, not after
    items, exact = _collect(layout, max_overflow)
    check_source_splits(items, params)
    near = near_duplicate_groups([it["image"] for it in items])
    feats = extract_many(
        [it["image"] for it in items],
        [[(b.cx, b.cy, b.w, b.h) for b in it["boxes"]] for it in items],
        workers=params.workers,
        desc="reference features",
    )
    for it, f in zip(items, feats, strict=True):
        it |= {"features": f, "tone": f["tone_group"]}
        it["classes"] = sorted({layout.names[b.cls] for b in it["boxes"]})
    assignment, dropped = plan_split(items, params, near)
    rows, taken = [], set()
    with atomic_dir(out, owner="preprocess", inputs=[layout.root]) as tmp:
        for split in SPLITS:
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        for i, (it, split) in enumerate(zip(items, assignment, strict=True)):
            rows.append(None if i in dropped else _write_item(tmp, it, split, layout.names, taken))
        data_yaml = {"train": "images/train", "val": "images/val", "test": "images/test"}
        data_yaml["names"] = dict(enumerate(layout.names))
        (tmp / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False))
        table = pd.DataFrame([r for r in rows if r is not None])
        table.to_parquet(tmp / "reference_features.parquet", index=False)
        found = {
            "groups": [[rows[i]["file"] for i in g if rows[i]] for g in near],
            "dropped_from_training_side": sorted(
                Path(os.path.relpath(items[i]["image"], layout.root)).as_posix() for i in dropped
            ),
            "exact_duplicates_dropped": exact,
        }
        summary = split_report(table, layout.names, found)
        atomic_write_json(tmp / "summary.json", summary)
    if report is not None:
        atomic_write_json(report, summary)
    log.info("preprocess: %s", {k: v["images"] for k, v in summary["splits"].items()})
    return summary


def main(argv: list[str] | None = None) -> int:
    from skintwin.params import load_params
    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="validated dataset folder")
    parser.add_argument("--out", required=True, help="normalised dataset folder to write")
    parser.add_argument("--report", help="split report to write (small JSON for git)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        report = Path(args.report) if args.report else None
        run_preprocess(discover(args.data), params.preprocess, Path(args.out), report,
                       params.validate_.max_box_overflow)  # fmt: skip

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
