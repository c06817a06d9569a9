"""Monitoring benchmarks: prediction logging, drift over many rows, feature extraction.

Baselines in the same run: rewriting one JSON history file per prediction (the naive
approach), a raw Evidently call on the same frames, single-process feature extraction.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench.common import Row, timed

SIZES = {
    "small": {"grow_to": 50_000, "drift_rows": 20_000, "images": 60, "json_rows": 1_000},
    "default": {"grow_to": 200_000, "drift_rows": 100_000, "images": 200, "json_rows": 2_000},
}


def fake_rows(
    n: int, start: int = 0, rng: np.random.Generator | None = None, boxes: bool = False
) -> list[dict]:
    """Rows as the service stores them; `boxes`: with the detections their counts describe
    (the drift check's prediction-mix columns), else none (the logging rates' rows, as
    measured since the first run)."""
    rng = rng or np.random.default_rng(start)
    groups = ["very_light", "light", "intermediate", "tan", "brown", "dark"]
    return [
        {
            "ts": 1.7e9 + start + i,
            "model_name": "bench",
            "model_version": "1",
            "source": "bench",
            "latency_ms": float(rng.gamma(4, 5)),
            "n_detections": 2,
            "mean_confidence": 0.7,
            "class_counts": '{"acne": 2}',
            "detections": _two_acne(rng) if boxes else "[]",
            "width": 640.0,
            "height": 640.0,
            "brightness": float(rng.normal(150, 10)),
            "contrast": float(rng.normal(20, 3)),
            "saturation": float(rng.normal(60, 5)),
            "sharpness": float(rng.normal(30, 8)),
            "ita": float(rng.normal(30, 15)),
            "tone_group": groups[i % 6],
        }
        for i in range(n)
    ]


def _two_acne(rng: np.random.Generator) -> str:
    sides = rng.uniform(20, 80, 2)
    boxes = [[100.0, 100.0, 100.0 + side, 100.0 + side] for side in sides]
    return json.dumps([{"class_name": "acne", "confidence": 0.7, "box": b} for b in boxes])


def _rate_one_by_one(store, n: int, start: int) -> float:
    rows = fake_rows(n, start)
    t, _ = timed(lambda: [store.log(r) for r in rows])
    return n / t


def _rate_batched(store, n: int, start: int, batch: int = 500) -> float:
    rows = fake_rows(n, start)
    t, _ = timed(lambda: [store.log_many(rows[i : i + batch]) for i in range(0, n, batch)])
    return n / t


def _naive_json(path: Path, n: int) -> float:
    rows = fake_rows(n)

    def append_all() -> None:
        for r in rows:
            history = json.loads(path.read_text()) if path.exists() else []
            history.append(r)
            path.write_text(json.dumps(history))

    t, _ = timed(append_all)
    return n / t


def _logging(work: Path, s: dict) -> list[Row]:
    from skintwin.monitoring.store import PredictionStore

    store = PredictionStore(f"sqlite:///{work / 'bench.db'}")
    _rate_batched(store, 10_000, 0)  # grow to 10k
    batched_small = _rate_batched(store, 10_000, 10_000)
    single_small = _rate_one_by_one(store, 1_000, 20_000)
    filled = store.count()
    while filled < s["grow_to"]:
        store.log_many(fake_rows(min(20_000, s["grow_to"] - filled), 10**6 + filled))
        filled = store.count()
    batched_big = _rate_batched(store, 10_000, 2 * 10**6)
    single_big = _rate_one_by_one(store, 1_000, 3 * 10**6)
    naive = _naive_json(work / "history.json", s["json_rows"])
    big = f"{s['grow_to'] // 1000}k"
    return [
        Row(
            "logging batched (500/txn), rows/s",
            batched_small,
            "/s",
            naive,
            "naive JSON file",
            "≥ 5000/s",
            batched_small >= 5000,
        ),
        Row(
            "logging one by one, rows/s",
            single_small,
            "/s",
            naive,
            "naive JSON file",
            "≥ 500/s",
            single_small >= 500,
        ),
        Row(
            f"batched rate at {big} rows vs at 10k",
            batched_big,
            "/s",
            batched_small,
            "at 10k rows",
            "no slowdown",
            batched_big / batched_small >= 0.8,
        ),
        Row(
            f"one-by-one rate at {big} rows vs at 10k",
            single_big,
            "/s",
            single_small,
            "at 10k rows",
            "no slowdown",
            single_big / single_small >= 0.8,
        ),
    ]


def _features(work: Path, s: dict) -> list[Row]:
    from skintwin.data.features import extract_many
    from skintwin.data.synth import encode_jpeg, paint
    from skintwin.names import LESION_CLASSES, TONE_GROUPS

    folder = work / "jpegs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(s["images"]):
        p = paint(
            5, i, 640, dict.fromkeys(LESION_CLASSES, 1.0), dict.fromkeys(TONE_GROUPS, 1.0), 3, 0.0
        )
        path = folder / f"{i}.jpg"
        path.write_bytes(encode_jpeg(p.rgb, 85))
        paths.append(path)
    one_s, _ = timed(lambda: extract_many(paths, workers=1))
    two_s, _ = timed(lambda: extract_many(paths, workers=2))
    n = len(paths)
    return [
        Row(
            "feature extraction 640×640 JPEG, 2 processes",
            n / two_s,
            "/s",
            n / one_s,
            "1 process",
            "≥ 100/s",
            n / two_s >= 100,
        )
    ]


def run(work: Path, size: str) -> list[Row]:
    work.mkdir(parents=True, exist_ok=True)
    s = SIZES[size]
    start = time.perf_counter()
    from bench.drift_speed import drift_rows  # it reuses this module's fake rows

    rows = _logging(work, s) + drift_rows(work, s) + _features(work, s)
    print(f"monitoring benchmarks: {time.perf_counter() - start:.0f} s")
    return rows
