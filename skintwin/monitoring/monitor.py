"""Prediction logging and drift checks as the application calls them.

    monitor = ModelMonitor()
    monitor.log_prediction(prediction_dict, input_data=image_array)
    result = monitor.detect_data_drift(current_frame, reference_frame)

Each logged prediction stores the image's features (the same extractor as the reference
table) and the prediction's features, never the image itself. An image that cannot be
decoded is recorded as a failed row with its error, so nothing is lost and nothing crashes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skintwin.monitoring.journal import Journal
from skintwin.monitoring.records import prediction_row
from skintwin.monitoring.store import PredictionStore, default_url
from skintwin.project import ProjectPaths

log = logging.getLogger(__name__)


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
        self.paths = ProjectPaths.find(project_dir)
        self.root = self.paths.root
        self.store = PredictionStore(store_url or default_url(self.root))
        self.model_name, self.model_version = model_name, str(model_version)
        self.batch_size = max(1, batch_size)
        self._buffer: list[dict] = []
        # the service logs from its worker threads: a row appended to a list another
        # thread has just taken to write would be lost
        self._buffer_lock = threading.Lock()
        self.journal = Journal(self.paths.journal)

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
        with self._buffer_lock:
            self._buffer.append(row)
            full = len(self._buffer) >= self.batch_size
        if full:
            self.flush()
        return row

    def flush(self) -> int:
        """Write buffered rows in one transaction; if the store cannot take them, keep them
        in the local journal (replayed by a later flush). Returns the rows written now."""
        from sqlalchemy.exc import SQLAlchemyError

        with self._buffer_lock:
            rows, self._buffer = self._buffer, []
        if not rows:
            return 0
        try:
            self.store.log_many(rows)
        except SQLAlchemyError:
            self.journal.spill(rows)
            return 0
        self.replay_journal()
        return len(rows)

    def replay_journal(self) -> int:
        """Write journalled rows into the store (a no-op while it is still unavailable)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return self.journal.replay(self.store.log_many)
        except (SQLAlchemyError, OSError) as exc:  # never fails the write that came before
            log.warning("journal replay stopped: %s", exc)
            return 0

    def performance_metrics(self, window_hours: float = 24.0, export: bool = True) -> dict:
        """Count, errors and latency percentiles per model version over the window."""
        since = time.time() - window_hours * 3600
        if export:
            return self.store.export_performance(self.paths.performance, since)["models"]
        return self.store.performance(since)

    def detect_data_drift(
        self,
        current_data: pd.DataFrame,
        reference_data: pd.DataFrame,
        out_dir: str | Path | None = None,
    ) -> DriftResult:
        """Evidently drift over the image and prediction feature columns both frames share,
        with the tests and thresholds of params.yaml `monitor`."""
        from skintwin.monitoring.drift import check_drift
        from skintwin.params import load_params

        params = load_params(self.paths.params).monitor
        result = check_drift(
            reference_data, current_data, params, Path(out_dir) if out_dir else None
        )
        return DriftResult(
            result["drift_detected"],
            result["drift_share"],
            result["drifted_columns"],
            result["scores"],
            enough_data=result["enough_data"],
            details=result,
            report_html=result.get("html"),
        )
