from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from skintwin.errors import SkinTwinError
from skintwin.monitoring.store import PredictionStore


def _row(i: int, **extra) -> dict:
    return {
        "ts": 1000.0 + i,
        "model_name": "m",
        "model_version": "1",
        "latency_ms": float(i),
        "n_detections": i % 3,
        "mean_confidence": 0.5,
        "class_counts": {"acne": i % 3},
        "detections": [],
        **extra,
    }


def test_log_window_and_performance(tmp_path: Path) -> None:
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    store.log(_row(0, source="a"))
    store.log_many([_row(i, source="b") for i in range(1, 101)])
    store.log(_row(200, source="b", error="not a decodable image", model_version="2"))
    assert store.count() == 102
    assert len(store.window(source="a")) == 1
    assert len(store.window(since=1050.0)) == 52
    perf = store.performance()
    assert perf["m/1"]["count"] == 101
    assert perf["m/1"]["latency_ms_p50"] == pytest.approx(50, abs=1)
    assert perf["m/1"]["latency_ms_p99"] == pytest.approx(99, abs=1)
    assert perf["m/2"]["errors"] == 1
    doc = store.export_performance(tmp_path / "perf.json")
    assert (tmp_path / "perf.json").is_file() and "m/1" in doc["models"]


def test_bad_url_and_bad_row(tmp_path: Path) -> None:
    with pytest.raises(SkinTwinError, match="cannot be opened"):
        PredictionStore("sqlite:////nonexistent-dir/sub/p.db")
    with pytest.raises(SkinTwinError, match="cannot be opened"):
        PredictionStore("notadialect://x")
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(SkinTwinError, match="model_name"):
        store.log({"ts": 1.0})
    assert store.count() == 0


def _writer(url: str, worker: int, n: int) -> None:
    store = PredictionStore(url)
    for start in range(0, n, 500):
        store.log_many([_row(worker * n + i) for i in range(start, min(n, start + 500))])


def test_four_processes_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    PredictionStore(url)  # create the schema once
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w, 10_000)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    store = PredictionStore(url)
    assert store.count() == 40_000
    assert store.window()["ts"].nunique() == 40_000
