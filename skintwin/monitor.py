"""Prediction logging and drift checks as the application calls them.

    monitor = ModelMonitor()
    monitor.log_prediction(prediction_dict, input_data=image_array)
    result = monitor.detect_data_drift(current_frame, reference_frame)

Each logged prediction stores the image's features (the same extractor as the reference
table) and the prediction's features, never the image itself. An image that cannot be
decoded is recorded as a failed row with its error, so nothing is lost and nothing crashes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skintwin.errors import SkinTwinError
from skintwin.features import IMAGE_FEATURES, image_features, load_rgb
from skintwin.store import PredictionStore, default_url

log = logging.getLogger(__name__)

PREDICTION_FEATURES = ("n_detections", "mean_confidence")
NUMERIC_DRIFT_COLUMNS = (*IMAGE_FEATURES, *PREDICTION_FEATURES)
CATEGORICAL_DRIFT_COLUMNS = ("tone_group",)


def _detections(prediction: dict | list) -> list[dict]:
    """The detections of a prediction in any of the shapes the application produces."""
    if isinstance(prediction, list):
        items = prediction
    else:
        items = prediction.get("detections", prediction.get("predictions", []))
    out = []
    for d in items or []:
        out.append(
            {
                "class_name": str(d.get("class_name", d.get("class", d.get("name", "")))),
                "confidence": float(d.get("confidence", d.get("conf", d.get("score", 0.0)))),
                "box": [float(v) for v in d.get("box", d.get("bbox", [])) or []],
            }
        )
    return out


def prediction_row(
    prediction: dict | list,
    image=None,
    *,
    model_name: str,
    model_version: str = "",
    latency_ms: float | None = None,
    source: str = "",
    image_ref: str | None = None,
) -> dict:
    """One store row: prediction features plus the image's features (or the decode error)."""
    dets = _detections(prediction)
    counts: dict[str, int] = {}
    for d in dets:
        counts[d["class_name"]] = counts.get(d["class_name"], 0) + 1
    row = {
        "ts": time.time(),
        "model_name": model_name,
        "model_version": str(model_version),
        "source": source,
        "latency_ms": latency_ms,
        "n_detections": len(dets),
        "mean_confidence": float(np.mean([d["confidence"] for d in dets])) if dets else 0.0,
        "class_counts": counts,
        "detections": dets,
        "image_ref": image_ref,
    }
    if image is None:
        return row
    try:
        rgb = load_rgb(image)
    except SkinTwinError as exc:
        row["error"] = str(exc)
        return row
    h, w = rgb.shape[:2]
    boxes = [
        ((b[0] + b[2]) / 2 / w, (b[1] + b[3]) / 2 / h, (b[2] - b[0]) / w, (b[3] - b[1]) / h)
        for b in (d["box"] for d in dets)
        if len(b) == 4
    ]
    row.update(image_features(rgb, boxes))
    return row


@dataclass
class DriftResult:
    """A drift verdict with the evidence behind it."""

    drift_detected: bool
    drift_share: float
    drifted_columns: list[str]
    scores: dict[str, float]
    enough_data: bool = True
    details: dict = field(default_factory=dict)
    report_html: str | None = None


class ModelMonitor:
    """Log predictions into the store and check inputs for drift.

    Args:
        store_url: SQLAlchemy URL; default $SKINTWIN_MONITOR_DB or the project's SQLite file.
        model_name, model_version: recorded with each prediction unless given per call.
        batch_size: buffer this many rows before writing (1 = write each at once).
    """

    def __init__(
        self,
        store_url: str | None = None,
        model_name: str = "skin-twin-detector",
        model_version: str = "",
        project_dir: str | Path | None = None,
        batch_size: int = 1,
    ) -> None:
        from skintwin.project import resolve_root

        self.root = resolve_root(project_dir)
        self.store = PredictionStore(store_url or default_url(self.root))
        self.model_name, self.model_version = model_name, str(model_version)
        self.batch_size = max(1, batch_size)
        self._buffer: list[dict] = []

    def log_prediction(
        self,
        prediction_dict: dict | list,
        input_data=None,
        *,
        latency_ms: float | None = None,
        source: str = "app",
        model_name: str | None = None,
        model_version: str | None = None,
        image_ref: str | None = None,
    ) -> dict:
        """Record one prediction; returns the stored row (with `error` if the image was bad)."""
        row = prediction_row(
            prediction_dict,
            input_data,
            model_name=model_name or self.model_name,
            model_version=model_version or self.model_version,
            latency_ms=latency_ms,
            source=source,
            image_ref=image_ref,
        )
        if row.get("error"):
            log.warning("prediction logged without image features: %s", row["error"])
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_size:
            self.flush()
        return row

    def flush(self) -> int:
        """Write buffered rows in one transaction."""
        rows, self._buffer = self._buffer, []
        return self.store.log_many(rows)

    def performance_metrics(self, window_hours: float = 24.0, export: bool = True) -> dict:
        """Count, errors and latency percentiles per model version over the window."""
        since = time.time() - window_hours * 3600
        if export:
            path = self.root / ".monitoring" / "performance_metrics.json"
            return self.store.export_performance(path, since)["models"]
        return self.store.performance(since)

    def detect_data_drift(
        self,
        current_data: pd.DataFrame,
        reference_data: pd.DataFrame,
        out_dir: str | Path | None = None,
    ) -> DriftResult:
        """Evidently drift over the image and prediction feature columns both frames share."""
        from skintwin.drift import run_drift
        from skintwin.params import load_params

        p = load_params(self.root / "params.yaml").monitor
        if len(current_data) < p.min_rows:
            return DriftResult(
                False,
                0.0,
                [],
                {},
                enough_data=False,
                details={
                    "reason": f"{len(current_data)} current rows < monitor.min_rows {p.min_rows}"
                },
            )
        result = run_drift(
            reference_data,
            current_data,
            [c for c in NUMERIC_DRIFT_COLUMNS if c in reference_data],
            [c for c in CATEGORICAL_DRIFT_COLUMNS if c in reference_data],
            num_method=p.num_method,
            num_threshold=p.num_threshold,
            cat_method=p.cat_method,
            cat_threshold=p.cat_threshold,
            drift_share=p.drift_share,
            per_column={c: t.model_dump() for c, t in p.per_column.items()},
            out_dir=Path(out_dir) if out_dir else None,
        )
        return DriftResult(
            result["dataset_drift"],
            result["drift_share"],
            result["drifted_columns"],
            {c: v["score"] for c, v in result["columns"].items()},
            details=result,
            report_html=result.get("html"),
        )


def store_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Store rows as a drift-ready frame: failed rows dropped, JSON columns parsed."""
    ok = frame[frame["error"].isna()] if "error" in frame else frame
    ok = ok.copy()
    if "class_counts" in ok:
        ok["class_counts"] = ok["class_counts"].map(lambda s: json.loads(s) if s else {})
    return ok
