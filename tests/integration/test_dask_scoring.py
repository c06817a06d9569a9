"""Batch inference on Prefect's Dask task runner: chunks on two worker processes, a chunk
that fails while the store is locked is retried, every image is stored exactly once, and a
run whose chunk runs out of retries leaves the store as it found it."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def _lock_after_first_chunk(
    db: Path, hold_s: float, done: threading.Event, above: int = 0
) -> None:
    """Once a chunk has committed (the store holds more than `above` rows), hold the
    store's write lock for `hold_s` seconds."""
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with sqlite3.connect(db, timeout=0.05) as conn:
                if conn.execute("SELECT count(*) FROM predictions").fetchone()[0] > above:
                    break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    done.set()
    time.sleep(hold_s)
    conn.execute("ROLLBACK")
    conn.close()


@contextmanager
def _chaos(champion: Path, db: Path, hold_s: float, above: int = 0):
    """Chunks of 8 images (80 images: 10 chunks) while a thread holds the store's lock for
    `hold_s` s once it has more than `above` rows; yields the event set when it locked."""
    params_file = champion / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["monitor"]["chunk_images"] = 8
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    locked = threading.Event()
    locker = threading.Thread(target=_lock_after_first_chunk, args=(db, hold_s, locked, above))
    locker.start()
    try:
        yield locked
    finally:
        params_file.write_text(original)
        locker.join()


def _score(champion: Path) -> dict:
    from flows.batch_inference import batch_inference_flow

    return batch_inference_flow(
        str(champion / "batches"), source="dask-chaos", project_dir=str(champion),
        dask_workers=2,
    )  # fmt: skip


def test_dask_chunks_are_retried_and_every_image_is_stored_once(
    champion: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        TaskRunFilter,
        TaskRunFilterName,
    )

    from skintwin.monitoring.scoring import plan_batch
    from skintwin.monitoring.store import PredictionStore

    db = tmp_path / "store.db"
    monkeypatch.setenv("SKINTWIN_MONITOR_DB", f"sqlite:///{db}")
    monkeypatch.setenv("SKINTWIN_STORE_BUSY_TIMEOUT_S", "0.2")  # a locked store fails fast
    store = PredictionStore(f"sqlite:///{db}")  # the tables, for the locking thread to watch
    with _chaos(champion, db, 4.0) as locked:
        summary = _score(champion)
    assert locked.is_set()
    assert summary["images"] == 80
    frame = store.window(source="dask-chaos")
    assert len(frame) == 80 and frame["image_ref"].nunique() == 80
    assert frame["batch_id"].eq(summary["batch_id"]).all()
    assert frame["embedding"].notna().all()  # the workers opened the version's projection
    csv = (Path(summary["out_dir"]) / "predictions.csv").read_text()
    assert csv.count("normal/") + csv.count("lighting/") >= 80

    with get_client(sync_client=True) as client:
        chunks = client.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="score dask-chaos images"))
        )
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["batch-progress"]))
        )
    assert [(a.type, a.data) for a in progress] == [("progress", 100.0)]  # one bar, full
    assert len(chunks) == 10 and all(c.state.is_completed() for c in chunks)
    retried = [c.name for c in chunks if c.run_count > 1]
    assert retried, "no chunk met the locked store"

    batch = plan_batch(champion / "batches", "dask-chaos", summary["batch_id"])
    killed = batch.staged("killed")  # a run of the batch killed after storing a chunk
    store.log_many([{"ts": 1.0, "model_name": "m", "uid": "k", "batch_id": killed.batch_id}])
    rerun = _score(champion)
    assert rerun["batch_id"] == summary["batch_id"]
    assert store.count() == 80  # the rerun replaced the batch and cleared what a killed
    # run of it had left; nothing doubled

    # a rerun whose chunk runs out of retries (the store locked past them, after another
    # chunk of the rerun was stored) fails and takes back what it stored: the earlier run
    # stays as it was
    before = store.window(source="dask-chaos").set_index("uid")["ts"].sort_index()
    with _chaos(champion, db, 25.0, above=80) as locked, pytest.raises(Exception, match="locked"):
        _score(champion)
    assert locked.is_set()  # a chunk of the failed run had been stored
    after = store.window(source="dask-chaos").set_index("uid")["ts"].sort_index()
    assert store.count() == 80 and after.equals(before)
