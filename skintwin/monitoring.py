"""Production monitoring steps: score images, build the drift reference, judge drift.

Plain functions for the batch-inference and drift flows (and the application): they work
on the prediction store and on files outside git, so they are Prefect tasks, not DVC stages.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pandas as pd

from skintwin.dataset import list_images
from skintwin.errors import SkinTwinError
from skintwin.features import load_rgb
from skintwin.loader import LoadedModel
from skintwin.monitor import PREDICTION_FEATURES, ModelMonitor, prediction_row, store_frame
from skintwin.params import MonitorParams

log = logging.getLogger(__name__)


def score_images(
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
    for start in tqdm(range(0, len(images), chunk), desc="scoring", unit="batch", leave=False):
        batch = images[start : start + chunk]
        decoded, good = [], []
        for path in batch:
            try:
                decoded.append(load_rgb(path))
                good.append(path)
            except SkinTwinError as exc:
                rows.append(
                    monitor.log_prediction(
                        [],
                        path,
                        source=source,
                        image_ref=str(path),
                        model_name=model.name,
                        model_version=model.version,
                    )
                )
                log.warning("%s", exc)
        if not decoded:
            continue
        t0 = time.perf_counter()
        predictions = model.predict(decoded, conf=conf, imgsz=imgsz)
        latency = (time.perf_counter() - t0) * 1000 / len(decoded)
        for path, rgb, pred in zip(good, decoded, predictions, strict=True):
            rows.append(
                monitor.log_prediction(
                    pred,
                    rgb,
                    latency_ms=latency,
                    source=source,
                    image_ref=str(path),
                    model_name=model.name,
                    model_version=model.version,
                )
            )
    monitor.flush()
    return rows


def folder_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SkinTwinError(f"{folder}: image folder does not exist")
    images = list_images(folder)
    if not images:
        raise SkinTwinError(f"{folder}: no images found")
    return images


def reference_frame(root: Path, model: LoadedModel, params: MonitorParams) -> pd.DataFrame:
    """Training-distribution features plus `model`'s prediction features on held-out images.

    Image features come from the preprocess stage's reference table. Prediction features
    (detections per image, mean confidence) come from the model on the val and test splits,
    images it was not fitted on, so they compare fairly with production; they are cached per
    model version and reference table.
    """
    table_path = root / "data/processed/reference_features.parquet"
    if not table_path.is_file():
        raise SkinTwinError(
            f"{table_path}: missing reference features; run "
            "`dvc repro preprocess` (or the training flow) first"
        )
    digest = hashlib.sha256(table_path.read_bytes()).hexdigest()[:12]
    cache = root / ".monitoring" / "reference" / f"{model.name}-v{model.version}-{digest}.parquet"
    if cache.is_file():
        return pd.read_parquet(cache)
    table = pd.read_parquet(table_path)
    held_out = table[table["split"].isin(["val", "test"])].reset_index(drop=True)
    images = [root / "data/processed" / f for f in held_out["file"]]
    predictions = []
    for start in range(0, len(images), 16):
        predictions += model.predict(
            [str(p) for p in images[start : start + 16]], conf=params.conf, imgsz=params.imgsz
        )
    # the same prediction features as a logged production row, computed the same way
    rows = [prediction_row(p, model_name=model.name) for p in predictions]
    for column in PREDICTION_FEATURES:
        held_out[column] = [r[column] for r in rows]
    cache.parent.mkdir(parents=True, exist_ok=True)
    held_out.to_parquet(cache, index=False)
    return held_out


def current_frame(
    monitor: ModelMonitor,
    window_hours: float,
    source: str | None = None,
    model_name: str | None = None,
) -> pd.DataFrame:
    """The store's predictions of the last `window_hours` (optionally of one source)."""
    since = time.time() - window_hours * 3600
    return store_frame(monitor.store.window(since=since, source=source, model_name=model_name))


def severity(result: dict, params: MonitorParams) -> str | None:
    """None (no alert), "warning" or "critical" for a drift result."""
    if not result.get("enough_data", True) or not result["drift_detected"]:
        return None
    if result["drift_share"] >= params.critical_share:
        return "critical"
    if "tone_group" in result["drifted_columns"] or "ita" in result["drifted_columns"]:
        return "critical"  # the patient mix moved: per-group guarantees no longer hold
    return "warning"
