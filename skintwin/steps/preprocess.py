"""preprocess: de-duplicate, split and normalise a validated dataset; write reference features.

Output folder: `images/{train,val,test}`, `labels/{train,val,test}`, a `data.yaml`
Ultralytics trains on, `reference_features.parquet` (one row per image: split, size,
brightness, contrast, saturation, sharpness, ITA, tone group, label counts) and
`summary.json` (counts per split × class × tone group).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml
from PIL import Image

from skintwin.data.dataset import Layout, discover, label_path, list_images, parse_labels
from skintwin.data.features import extract_many
from skintwin.data.images import decode_image, needs_normalising
from skintwin.data.splits import SPLITS, stratified_split
from skintwin.io import atomic_dir, atomic_write_json, check_output_dir
from skintwin.params import PreprocessParams

log = logging.getLogger(__name__)


def _collect(layout: Layout) -> tuple[list[dict], int]:
    """Every unique image with its label boxes; exact duplicates (same bytes) dropped."""
    seen: set[str] = set()
    items, dropped = [], 0
    for source_split, folder in sorted(layout.splits.items()):
        for image in list_images(folder):
            digest = hashlib.sha256(image.read_bytes()).hexdigest()
            if digest in seen:
                dropped += 1
                continue
            seen.add(digest)
            lbl = label_path(image)
            boxes = parse_labels(lbl, len(layout.names))[0] if lbl.exists() else []
            items.append({"image": image, "source_split": source_split, "boxes": boxes})
    return items, dropped


def _unique_name(name: str, item: dict, taken: set[str]) -> str:
    if name in taken:
        name = f"{item['source_split']}_{name}"
    taken.add(name)
    return name


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


def run_preprocess(layout: Layout, params: PreprocessParams, out: Path) -> dict:
    """Write the normalised dataset and reference features into `out` (atomically).

    Returns:
        Counts: images kept, duplicates dropped, images per split.
    """
    check_output_dir(out, "preprocess", [layout.root])  # before the work, not after
    items, dropped = _collect(layout)
    feats = extract_many(
        [it["image"] for it in items],
        [[(b.cx, b.cy, b.w, b.h) for b in it["boxes"]] for it in items],
        workers=params.workers,
        desc="reference features",
    )
    for it, f in zip(items, feats, strict=True):
        it["features"] = f
        it["classes"] = sorted({layout.names[b.cls] for b in it["boxes"]})
    assignment = stratified_split(
        [(it["classes"], it["features"]["tone_group"]) for it in items],
        params.val_fraction,
        params.test_fraction,
        params.seed,
    )
    rows, taken = [], set()
    with atomic_dir(out, owner="preprocess", inputs=[layout.root]) as tmp:
        for split in SPLITS:
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        for it, split in zip(items, assignment, strict=True):
            name = _place_image(it, tmp / "images" / split, taken)
            if it["boxes"]:
                lines = [f"{b.cls} {b.cx:.6f} {b.cy:.6f} {b.w:.6f} {b.h:.6f}" for b in it["boxes"]]
                (tmp / "labels" / split / Path(name).with_suffix(".txt")).write_text(
                    "\n".join(lines) + "\n"
                )
            counts = Counter(layout.names[b.cls] for b in it["boxes"])
            rows.append(
                {
                    "file": f"images/{split}/{name}",
                    "split": split,
                    **it["features"],
                    "n_labels": len(it["boxes"]),
                    **{f"n_{c}": counts.get(c, 0) for c in layout.names},
                }
            )
        (tmp / "data.yaml").write_text(
            yaml.safe_dump(
                {
                    "train": "images/train",
                    "val": "images/val",
                    "test": "images/test",
                    "names": dict(enumerate(layout.names)),
                },
                sort_keys=False,
            )
        )
        table = pd.DataFrame(rows)
        table.to_parquet(tmp / "reference_features.parquet", index=False)
        summary = _summary(table, layout.names, dropped)
        atomic_write_json(tmp / "summary.json", summary)
    log.info("preprocess: %s", summary["splits"])
    return summary


def _summary(table: pd.DataFrame, names: tuple[str, ...], dropped: int) -> dict:
    splits = {}
    for split in SPLITS:
        part = table[table["split"] == split]
        splits[split] = {
            "images": len(part),
            "classes": {c: int((part[f"n_{c}"] > 0).sum()) for c in names},
            "tone_groups": {str(k): int(v) for k, v in part["tone_group"].value_counts().items()},
        }
    return {"images": len(table), "duplicates_dropped": dropped, "splits": splits}


def main(argv: list[str] | None = None) -> int:
    from skintwin.params import load_params
    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="validated dataset folder")
    parser.add_argument("--out", required=True, help="normalised dataset folder to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        run_preprocess(discover(args.data), params.preprocess, Path(args.out))

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
