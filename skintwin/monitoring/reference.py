"""The two sides of a drift check: the training reference and a window of production."""

from __future__ import annotations

import hashlib
import logging
import os
import time

import pandas as pd
from pyarrow import ArrowException

from skintwin.errors import SkinTwinError
from skintwin.model.loaded import LoadedModel
from skintwin.monitoring.records import prediction_row, store_frame
from skintwin.monitoring.store import PredictionStore
from skintwin.names import PREDICTION_CATEGORIES, PREDICTION_FEATURES
from skintwin.params import MonitorParams
from skintwin.project import ProjectPaths

log = logging.getLogger(__name__)
# which prediction columns a cached reference holds: a cache of fewer columns is rebuilt
_COLUMNS = (*PREDICTION_FEATURES, *PREDICTION_CATEGORIES, "embedding")
_COLUMNS_TAG = hashlib.sha256(",".join(_COLUMNS).encode()).hexdigest()[:6]


def reference_frame(
    paths: ProjectPaths, model: LoadedModel, params: MonitorParams
) -> pd.DataFrame:
    """Training-distribution features plus `model`'s prediction features on held-out images.

    Image features come from the preprocess stage's reference table. Prediction features
    (detections per image, mean confidence, ...) and the embedding (when the version has a
    projection) come from the model on the val and test splits,
    images it was not fitted on, so they compare fairly with production; they are cached per
    model version and reference table.
    """
    table_path = paths.reference_features
    if not table_path.is_file():
        raise SkinTwinError(
            f"{table_path}: missing reference features; run "
            "`dvc repro preprocess` (or the training flow) first"
        )
    digest = hashlib.sha256(table_path.read_bytes()).hexdigest()[:12]
    name = f"{model.name}-v{model.version}-{digest}-{_COLUMNS_TAG}.parquet"
    cache = paths.reference_cache / name
    if cache.is_file():
        try:
            return pd.read_parquet(cache)
        except (OSError, ValueError, ArrowException):  # cut short: rebuild it
            log.warning("reference cache %s is unreadable: rebuilding it", cache.name)
    table = pd.read_parquet(table_path)
    held_out = table[table["split"].isin(["val", "test"])].reset_index(drop=True)
    images = [paths.processed / f for f in held_out["file"]]
    predictions = []
    for start in range(0, len(images), 16):
        predictions += model.predict(
            [str(p) for p in images[start : start + 16]], conf=params.conf, imgsz=params.imgsz
        )
    # the same prediction features as a logged production row, computed the same way
    rows = [prediction_row(p, model_name=model.name) for p in predictions]
    for column in _COLUMNS:
        held_out[column] = [r[column] for r in rows]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    held_out.to_parquet(tmp, index=False)
    os.replace(tmp, cache)  # a cache is whole or absent, never a truncated file
    return held_out


def current_frame(
    store: PredictionStore,
    window_hours: float,
    source: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    batch_id: str | None = None,
) -> pd.DataFrame:
    """The store's predictions of the last `window_hours` (optionally of one source, and of
    one model version: the one the reference and the estimator belong to; another version's
    detections, confidences and embeddings, in a projection of its own, compare with
    nothing of this one's; and of one scored batch)."""
    since = time.time() - window_hours * 3600
    mine = {"source": source, "model_name": model_name, "batch_id": batch_id}
    frame = store_frame(store.window(since, model_version=model_version, **mine))
    if model_version is not None:  # what the window held of other versions, to say so
        seen = store.window(since, columns=("model_version",), **mine)["model_version"]
        seen = seen.astype(str)
        others = seen[seen != str(model_version)].value_counts()
        frame.attrs["other_versions"] = {str(v): int(n) for v, n in others.items()}
    return frame
