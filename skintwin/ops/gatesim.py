"""Real detections for the gate's simulation (`registry/simulation.py`): a trained model
scored by Ultralytics' validator on a freshly generated, labelled set whose true tone
groups are known — as many images per group as the check needs, independent of the
training project's own test split. Used by `python -m bench` and the tests."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from skintwin.params import Params
from skintwin.steps.generate import run_generate
from skintwin.training.detstats import DetectionStats
from skintwin.training.validator import run_val


def labelled_detections(
    weights: Path, params: Params, n_images: int, seed: int, work: Path, shift: str = "none"
) -> tuple[DetectionStats, tuple[str, ...], tuple[str, ...]]:
    """(per-image rows, each image's true tone group, class names) of `weights` on
    `n_images` generated images (all six groups equally likely unless `shift` says)."""
    folder = work / f"labelled-{shift}-{seed}-{n_images}"
    gen = params.generate.model_copy(update={"n_images": n_images, "seed": seed})
    run_generate(folder, gen, shift=shift, workers=params.preprocess.workers)
    doc = yaml.safe_load((folder / "data.yaml").read_text())
    doc |= {"train": "images", "val": "images", "test": "images"}
    (folder / "data.yaml").write_text(yaml.safe_dump(doc))
    truth = {r["file"]: r["tone_group"] for r in csv.DictReader((folder / "metadata.csv").open())}
    capture = run_val(weights, folder, params.evaluate, params.train.device)
    for row in capture.rows:
        row["file"] = Path(row["file"]).name
    stats = DetectionStats.from_rows(capture.rows)
    return stats, tuple(truth[f] for f in stats.files), tuple(doc["names"])


def above(stats: DetectionStats, conf: float) -> DetectionStats:
    """Only the detections at or above `conf` (the simulation's speed-up)."""
    return stats.keep_detections(stats.conf >= conf)
