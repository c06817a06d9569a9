"""Prefect tasks for batch inference in chunks, on Prefect's Dask task runner.

Each chunk is one task run (retried on failure, visible in the Prefect UI with its image
count); it scores its images on a Dask worker and writes their rows in one transaction,
with ids derived from the batch and the image, so a chunk that is retried after its write
went through is stored once. The chunks write under a stand-in batch id
(`Batch.staged`), which no window reads; the batch takes their rows in one transaction
once all are stored, and a run that fails takes back what it wrote: an earlier run of the
batch stays whole, and no half batch is ever monitored. The model travels as a reference
(`ModelRef`) and is opened once per worker process.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from skintwin.data.images import max_pixels_from_env
from skintwin.model.loaded import ModelRef
from skintwin.monitoring import scoring
from skintwin.monitoring.monitor import ModelMonitor
from skintwin.params import MonitorParams

ADDRESS_ENV = "SKINTWIN_DASK_ADDRESS"  # a running scheduler, e.g. tcp://10.0.0.5:8786


def dask_runner(workers: int):
    """The scheduler at $SKINTWIN_DASK_ADDRESS, else a local cluster of `workers` processes
    with one thread each (inference already uses the cores it is given)."""
    from prefect_dask import DaskTaskRunner

    address = os.environ.get(ADDRESS_ENV)
    if address:
        return DaskTaskRunner(address=address)
    threads = max(1, (os.cpu_count() or 1) // workers)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",  # any free port, never a clash
            "env": {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
        }
    )


@task(cache_policy=NO_CACHE, name="drop-staged", retries=2, retry_delay_seconds=[5, 30])
def drop_staged(root: str, staged: scoring.Batch) -> int:
    """Forget what a failed or killed run stored of its batch (its stand-in id's rows)."""
    return ModelMonitor(project_dir=root).store.replace_batch(staged.batch_id, [])


@task(cache_policy=NO_CACHE, name="commit-staged", retries=2, retry_delay_seconds=[5, 30])
def commit_staged(root: str, staged: scoring.Batch, batch: scoring.Batch) -> int:
    """Every chunk is stored: the run's rows become the batch, in place of an earlier run."""
    store = ModelMonitor(project_dir=root).store
    return store.commit_staged(staged.batch_id, batch.batch_id, len(batch.images))


@task(
    cache_policy=NO_CACHE,
    name="score-chunk",
    task_run_name="score {batch.source} images {first}-{last}",
    retries=2,
    retry_delay_seconds=[3, 15],
)
def score_chunk(
    root: str,
    model: ModelRef,
    batch: scoring.Batch,
    params: MonitorParams,
    first: int,
    last: int,
) -> list[dict]:
    """Score one chunk and store its rows (one transaction; a retry stores nothing twice)."""
    rows = scoring.score_batch(
        model.open(), batch, params.conf, params.imgsz, max_pixels_from_env(), progress=False
    )
    stored = [r | {"batch_id": batch.batch_id} for r in rows]
    ModelMonitor(project_dir=root).store.log_many(stored)
    failed = sum(1 for r in rows if r.get("error"))
    get_run_logger().info("images %d-%d: %d scored, %d unusable", first, last, len(rows), failed)
    return [_light(r) for r in rows]


def _light(row: dict) -> dict:
    """What the flow needs back for the report: no embedding."""
    return {k: v for k, v in row.items() if k != "embedding"}


@task(cache_policy=NO_CACHE, name="report-batch")
def report_batch(root: str, batch: scoring.Batch, rows: list[dict]) -> dict:
    """The batch's report folder, from the rows its chunks stored."""
    from skintwin.project import ProjectPaths
    from tasks.monitoring_tasks import timestamp

    out = scoring.report_dir(ProjectPaths(Path(root)).batch_reports, batch.source, timestamp())
    return scoring.write_report(batch, rows, out)
