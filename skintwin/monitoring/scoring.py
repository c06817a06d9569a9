"""Batch scoring: predict a folder of images with a model, log every prediction, and write
the batch's results (one CSV row per detection, a JSON summary)."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

from skintwin.data.dataset import list_images
from skintwin.data.features import load_rgb
from skintwin.errors import SkinTwinError
from skintwin.io import atomic_write_json
from skintwin.model.loaded import LoadedModel
from skintwin.monitoring.monitor import ModelMonitor

log = logging.getLogger(__name__)


def folder_images(folder: Path) -> list[Path]:
    """The images of a folder (searched recursively); an error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SkinTwinError(f"{folder}: image folder does not exist")
    images = list_images(folder)
    if not images:
        raise SkinTwinError(f"{folder}: no images found")
    return images


def score_files(
    model: LoadedModel,
    images: list[Path],
    monitor: ModelMonitor,
    source: str,
    conf: float,
    imgsz: int,
    chunk: int = 16,
) -> list[dict]:
    """Predict every image with `model`, log each prediction, return the logged rows.

    An image that cannot be decoded is logged as a failed row and the rest go on.
    """
    from tqdm import tqdm

    rows: list[dict] = []
    logged = {"source": source, "model_name": model.name, "model_version": model.version}
    for start in tqdm(range(0, len(images), chunk), desc="scoring", unit="batch", leave=False):
        decoded, good = [], []
        for path in images[start : start + chunk]:
            try:
                decoded.append(load_rgb(path))
                good.append(path)
            except SkinTwinError as exc:
                rows.append(monitor.log_prediction([], path, image_ref=str(path), **logged))
                log.warning("%s", exc)
        if not decoded:
            continue
        t0 = time.perf_counter()
        predictions = model.predict(decoded, conf=conf, imgsz=imgsz)
        latency = (time.perf_counter() - t0) * 1000 / len(decoded)
        for path, rgb, pred in zip(good, decoded, predictions, strict=True):
            rows.append(
                monitor.log_prediction(
                    pred, rgb, latency_ms=latency, image_ref=str(path), **logged
                )
            )
    monitor.flush()
    return rows


def write_batch_report(rows: list[dict], out: Path) -> dict:
    """predictions.csv (one row per detection) and summary.json of a scored batch."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "class_name", "confidence", "x1", "y1", "x2", "y2", "error"])
        for r in rows:
            if r.get("error") or not r["detections"]:
                writer.writerow([r["image_ref"], "", "", "", "", "", "", r.get("error") or ""])
            for d in r["detections"]:
                writer.writerow([r["image_ref"], d["class_name"], d["confidence"], *d["box"], ""])
    counts: dict[str, int] = {}
    for r in rows:
        for name, n in (r.get("class_counts") or {}).items():
            counts[name] = counts.get(name, 0) + n
    summary = {
        "images": len(rows),
        "failed": sum(1 for r in rows if r.get("error")),
        "detections": sum(r["n_detections"] for r in rows),
        "class_counts": counts,
        "mean_latency_ms": (sum(r["latency_ms"] or 0 for r in rows) / len(rows)) if rows else None,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary | {"out_dir": str(out)}
