"""generate: the demo skin-lesion dataset (and production-like batches for drift).

Writes the YOLO flat layout: `images/`, `labels/`, `data.yaml` with the class names, and
`metadata.csv` with each image's true skin-tone group and ITA, so that the tone estimate
can be checked against the truth.
"""

from __future__ import annotations

import argparse
import csv
import logging
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import yaml

from skintwin.data.synth import SHIFTS, Shift, encode_jpeg, paint
from skintwin.io import atomic_dir
from skintwin.names import LESION_CLASSES
from skintwin.params import GenerateParams

log = logging.getLogger(__name__)


def _write_one(index: int, out: Path, params: GenerateParams, shift: Shift, labels: bool):
    p = paint(
        params.seed,
        index,
        params.image_size,
        params.class_weights,
        params.tone_weights,
        params.max_lesions,
        params.background_fraction,
        shift,
    )
    name = f"skin_{params.seed}_{index:05d}"
    (out / "images" / f"{name}.jpg").write_bytes(encode_jpeg(p.rgb, p.jpeg_quality))
    if labels and p.boxes:
        rows = [f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in p.boxes]
        (out / "labels" / f"{name}.txt").write_text("\n".join(rows) + "\n")
    counts = [sum(1 for b in p.boxes if b[0] == k) for k in range(len(LESION_CLASSES))]
    return [f"{name}.jpg", p.tone_group, f"{p.ita:.2f}", len(p.boxes), *counts]


def run_generate(
    out: Path, params: GenerateParams, shift: str = "none", labels: bool = True, workers: int = 2
) -> dict:
    """Paint `params.n_images` images into `out` (replaced atomically).

    Args:
        shift: a name from `synth.SHIFTS`; anything but "none" makes a production-like batch.
        labels: write YOLO label files (a production batch usually has none).

    Returns:
        Image count, tone-group counts and the output folder.
    """
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; choose from {sorted(SHIFTS)}")
    with atomic_dir(out, owner="generate") as tmp:
        (tmp / "images").mkdir()
        if labels:
            (tmp / "labels").mkdir()
        job = partial(_write_one, out=tmp, params=params, shift=SHIFTS[shift], labels=labels)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(job, range(params.n_images), chunksize=16))
        (tmp / "data.yaml").write_text(yaml.safe_dump({"names": list(LESION_CLASSES)}))
        with (tmp / "metadata.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["file", "tone_group", "ita", "n_lesions", *[f"n_{c}" for c in LESION_CLASSES]]
            )
            writer.writerows(rows)
    groups: dict[str, int] = {}
    for row in rows:
        groups[row[1]] = groups.get(row[1], 0) + 1
    log.info("generated %d images (shift=%s) in %s", len(rows), shift, out)
    return {"images": len(rows), "tone_groups": groups, "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    from skintwin.params import load_params, with_overrides
    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="dataset folder to (re)write")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--shift", default="none", choices=sorted(SHIFTS))
    parser.add_argument("--n-images", type=int, help="override generate.n_images (batches)")
    parser.add_argument("--seed", type=int, help="override generate.seed (batches)")
    parser.add_argument("--no-labels", action="store_true", help="images only (a batch)")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        gen = with_overrides(params.generate, "generate", n_images=args.n_images, seed=args.seed)
        run_generate(
            Path(args.out), gen, args.shift, not args.no_labels, params.preprocess.workers
        )

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
