"""Batch scoring: predict a folder of images with a model and commit the batch whole.

Inputs are checked before any work (the source name, the folder, every file name); images
are scored with nothing written; then the report folder and the store rows are committed
together. A batch has an id (derived from its source and files, or given), so a rerun
replaces the earlier run's rows instead of doubling them. An image that cannot be used (not
an image, too many pixels, damaged) becomes a failed row; the rest are scored.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from skintwin.data.dataset import list_images
from skintwin.data.images import ImageError, decode_image
from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir, atomic_write_json
from skintwin.model.loaded import LoadedModel
from skintwin.monitoring.records import prediction_row
from skintwin.monitoring.store import STAGED, PredictionStore
from skintwin.project import inside, safe_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """A folder of images to score, checked: its id, source label and image files."""

    batch_id: str
    source: str
    folder: Path
    images: list[Path]
    run: str = ""  # a staged run's token (`staged`): its rows' ids are its own

    def ref(self, image: Path) -> str:
        """The image's name as stored: relative to the folder, any bytes made printable."""
        rel = os.fsencode(image.relative_to(self.folder))
        return rel.decode("utf-8", "backslashreplace")

    def uid(self, ref: str) -> str:
        """The stored row's id for image `ref` of this batch (and run): the same on every
        retry, so a chunk written twice is stored once."""
        key = f"{self.batch_id}\0{self.run}\0{ref}" if self.run else f"{self.batch_id}\0{ref}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def staged(self, run: str) -> Batch:
        """This batch as run `run` writes it in parts: under a stand-in id that no window
        reads, given the real id in one transaction when every part is stored
        (`PredictionStore.commit_staged`), so an earlier run stays whole until then. The
        id is the same for every run of the batch (the next run clears what a killed one
        left); the rows' ids are the run's own (never an earlier run's, still stored)."""
        digest = hashlib.sha256(f"{self.batch_id}\0staged".encode()).hexdigest()[:32]
        return Batch(f"{STAGED}{digest}", self.source, self.folder, self.images, run)

    def chunks(self, size: int) -> list[Batch]:
        """This batch cut into parts of at most `size` images (same id, source, folder)."""
        return [
            Batch(self.batch_id, self.source, self.folder, self.images[i : i + size], self.run)
            for i in range(0, len(self.images), size)
        ]


def plan_batch(folder: Path, source: str, batch_id: str | None = None) -> Batch:
    """Check a batch before any work: a valid source name, a folder with images."""
    source = safe_name(source, "source")
    folder = Path(folder)
    if not folder.is_dir():
        raise SkinTwinError(f"images_dir: {_printable(folder)} is not a folder")
    images = list_images(folder)
    if not images:
        raise SkinTwinError(f"images_dir: no images in {_printable(folder)}")
    if batch_id is None:
        digest = hashlib.sha256(f"{source}\0{folder.resolve()}".encode())
        for image in images:
            stat = image.stat()
            digest.update(os.fsencode(image.relative_to(folder)) + b"\0")
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}\0".encode())
        batch_id = f"{source[:47]}-{digest.hexdigest()[:16]}"
    return Batch(safe_name(batch_id, "batch_id"), source, folder, images)


def score_batch(
    model: LoadedModel,
    batch: Batch,
    conf: float,
    imgsz: int,
    max_pixels: int,
    chunk: int = 16,
    progress: bool = True,
) -> list[dict]:
    """Predict every image of `batch`; returns one store row per image, writing nothing."""
    from tqdm import tqdm

    rows: list[dict] = []
    tags = {"source": batch.source, "model_name": model.name, "model_version": model.version}
    steps = range(0, len(batch.images), chunk)
    for start in tqdm(steps, desc="scoring", unit="batch", disable=not progress):
        decoded, names = [], []
        for path in batch.images[start : start + chunk]:
            try:
                decoded.append(decode_image(path, max_pixels, label=batch.ref(path)))
                names.append(batch.ref(path))
            except ImageError as exc:
                ref = batch.ref(path)
                rows.append(prediction_row([], None, image_ref=ref, uid=batch.uid(ref), **tags))
                rows[-1]["error"] = str(exc)
                log.warning("%s", exc)
        if not decoded:
            continue
        t0 = time.perf_counter()
        predictions = model.predict(decoded, conf=conf, imgsz=imgsz)
        ms = (time.perf_counter() - t0) * 1000 / len(decoded)
        for name, rgb, pred in zip(names, decoded, predictions, strict=True):
            extra = {"latency_ms": ms, "image_ref": name, "uid": batch.uid(name)}
            rows.append(prediction_row(pred, rgb, **extra, **tags))
    return rows


def commit_batch(
    store: PredictionStore, batch: Batch, rows: list[dict], report_dir: Path | None
) -> dict:
    """The report folder (when asked) and the store rows, together: if the store write
    fails the report is not published; a rerun of the batch replaces its rows."""
    if report_dir is None:
        store.replace_batch(batch.batch_id, rows)
        return _summary(rows) | {"batch_id": batch.batch_id}
    return write_report(batch, rows, report_dir, lambda: store.replace_batch(batch.batch_id, rows))


def write_report(
    batch: Batch, rows: list[dict], report_dir: Path, before_publish=lambda: None
) -> dict:
    """`predictions.csv` and `summary.json` in `report_dir`, published whole once
    `before_publish` (the store write, when there is one) has succeeded."""
    summary = _summary(rows) | {"batch_id": batch.batch_id}
    with atomic_dir(report_dir, owner="batch") as tmp:
        _write_predictions_csv(rows, tmp / "predictions.csv")
        atomic_write_json(tmp / "summary.json", summary)
        before_publish()
    return summary | {"out_dir": str(report_dir)}


def report_dir(base: Path, source: str, stamp: str) -> Path:
    """`base/<stamp>-<source>`, refused if it would land outside `base`."""
    return inside(base, f"{stamp}-{safe_name(source, 'source')}")


def _write_predictions_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "class_name", "confidence", "x1", "y1", "x2", "y2", "error"])
        for r in rows:
            if r.get("error") or not r["detections"]:
                writer.writerow([r["image_ref"], "", "", "", "", "", "", r.get("error") or ""])
            for d in r["detections"]:
                writer.writerow([r["image_ref"], d["class_name"], d["confidence"], *d["box"], ""])


def _summary(rows: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for r in rows:
        for name, n in (r.get("class_counts") or {}).items():
            counts[name] = counts.get(name, 0) + n
    latencies = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
    return {
        "images": len(rows),
        "failed": sum(1 for r in rows if r.get("error")),
        "detections": sum(r["n_detections"] for r in rows),
        "class_counts": counts,
        "mean_latency_ms": sum(latencies) / len(latencies) if latencies else None,
    }


def _printable(path: Path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")
