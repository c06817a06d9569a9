"""Drift-check speed: the drift flow's check over a large window of the store beside a raw
Evidently call on the same frames, and embedding drift over many stored rows beside reading
them (`python -m bench --only monitoring`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import Row, timed
from bench.monitoring import fake_rows


def drift_rows(work: Path, s: dict) -> list[Row]:
    from skintwin.monitoring.drift import run_drift
    from skintwin.monitoring.records import store_frame
    from skintwin.monitoring.store import PredictionStore
    from skintwin.names import CATEGORICAL_DRIFT_COLUMNS, NUMERIC_DRIFT_COLUMNS
    from skintwin.ops.scratch import SOURCE
    from skintwin.params import load_params

    store = PredictionStore(f"sqlite:///{work / 'drift.db'}")
    n = s["drift_rows"]
    for i in range(0, n, 20_000):
        store.log_many(fake_rows(min(20_000, n - i), i, np.random.default_rng(i + 1), True))
    # as the drift flow reads rows: the prediction-mix columns derived from the detections
    reference = store_frame(pd.DataFrame(fake_rows(5_000, 0, np.random.default_rng(99), True)))
    numeric = [c for c in NUMERIC_DRIFT_COLUMNS if c in reference]
    categorical = list(CATEGORICAL_DRIFT_COLUMNS)
    params = load_params(SOURCE / "params.yaml").monitor

    def ours() -> dict:
        current = store.window(source="bench")
        return run_drift(reference, current, params, out_dir=work / "report")

    ours_s, result = timed(ours)
    assert result["current_rows"] == n
    current = store_frame(store.window(source="bench"))

    def raw() -> None:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        cols = numeric + categorical
        Report([DataDriftPreset(columns=cols)]).run(
            current_data=current[cols], reference_data=reference[cols]
        )

    raw_s, _ = timed(raw)
    return [
        *_embedding_drift(work, n, params, reference),
        Row(
            f"drift report over {n // 1000}k logged rows (read + HTML)",
            ours_s,
            "s",
            raw_s,
            "raw Evidently run",
            "≤ 15 s",
            ours_s <= 15,
        ),
    ]


def _embedding_drift(work: Path, n: int, params, reference: pd.DataFrame) -> list[Row]:
    """Embedding drift over `n` stored rows of 128 dimensions: read from the store and
    tested (the window through its seeded sample of `monitor.embed_max_rows`)."""
    from skintwin.model.embedding import to_bytes
    from skintwin.monitoring.embedding_drift import embedding_drift
    from skintwin.monitoring.store import PredictionStore

    store = PredictionStore(f"sqlite:///{work / 'embeddings.db'}")
    rng = np.random.default_rng(7)
    for i in range(0, n, 20_000):
        rows = fake_rows(min(20_000, n - i), i, rng, True)
        for r in rows:
            r["embedding"] = to_bytes(rng.normal(size=128))
        store.log_many(rows)
    ref = reference.assign(embedding=[to_bytes(v) for v in rng.normal(size=(len(reference), 128))])

    def ours() -> dict:
        return embedding_drift(ref, store.window(source="bench"), params)

    ours_s, result = timed(ours)
    assert result["available"] and result["tests"]["all"]["images"][1] == n
    read_s, _ = timed(lambda: store.window(source="bench"))
    return [
        Row(
            f"embedding drift over {n // 1000}k rows × 128 dims (read + MMD, all + 6 groups)",
            ours_s,
            "s",
            read_s,
            "reading the rows alone",
            "≤ 30 s",
            ours_s <= 30,
        )
    ]
