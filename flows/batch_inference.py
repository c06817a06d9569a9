"""Batch inference: score a folder of images with the champion and log every prediction.

skintwin score --images data/batches/today [--source clinic-a]
python -m flows.batch_inference --images data/batches/today   # the same

A folder of `monitor.dask_min_images` or more is scored in chunks on Prefect's Dask task
runner (a local cluster of `monitor.dask_workers` processes, or the scheduler at
$SKINTWIN_DASK_ADDRESS); each chunk is a task run of the `score-on-dask` subflow.
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed

from skintwin.errors import SkinTwinError
from skintwin.model.loaded import ModelRef
from skintwin.monitoring.scoring import plan_batch
from skintwin.params import MonitorParams, load_params
from skintwin.project import ProjectPaths
from tasks.dask_scoring import commit_staged, dask_runner, drop_staged, report_batch, score_chunk
from tasks.monitoring_tasks import (
    check_batch,
    commit_batch,
    load_model,
    publish_batch_summary,
    score_images,
)


@flow(name="batch-inference", log_prints=True)
def batch_inference_flow(
    images_dir: str,
    source: str | None = None,
    project_dir: str | None = None,
    alias: str = "champion",
    batch_id: str | None = None,
    dask_workers: int | None = None,
) -> dict:
    """Score `images_dir`; results under reports/batch/<time>-<source>/.

    Args:
        images_dir: folder of images (searched recursively).
        source: label stored with each prediction (default: the folder's name).
        alias: registry alias of the model to use.
        batch_id: id of this batch (default: derived from the source and the files); a
            rerun with the same id replaces the earlier run's predictions.
        dask_workers: 0 scores in this process; N scores on Dask with N local workers;
            default: Dask for folders of `monitor.dask_min_images` or more.
    """
    if dask_workers is not None and not 0 <= dask_workers <= 256:
        raise SkinTwinError(f"dask_workers: {dask_workers} is not from 0 to 256")
    paths = ProjectPaths.find(project_dir)
    root = str(paths.root)
    params = load_params(paths.params).monitor
    batch = check_batch(images_dir, source, batch_id)
    model = load_model(root, alias=alias)
    if dask_workers is None:
        dask_workers = params.dask_workers if len(batch.images) >= params.dask_min_images else 0
    if dask_workers > 0:
        on_dask = dask_scoring_flow.with_options(task_runner=dask_runner(dask_workers))
        where = (str(batch.folder), batch.source, batch.batch_id)  # not the file list: a
        rows = on_dask(root, model.ref(), *where, params)  # flow run's parameters are bounded
        summary = report_batch(root, batch, rows)
    else:
        summary = commit_batch(root, batch, score_images(model, batch, params))
    publish_batch_summary(summary, model, batch.source)
    return summary


@flow(name="score-on-dask", log_prints=True)
def dask_scoring_flow(
    root: str, model: ModelRef, images_dir: str, source: str, batch_id: str, params: MonitorParams
) -> list[dict]:
    """Score the batch in chunks of `monitor.chunk_images` on the flow's Dask task runner:
    the chunks store their rows under a stand-in id, and the batch takes them when every
    chunk is done; a chunk out of retries fails the run and takes back what the others
    stored. Progress is a Prefect progress artifact."""
    batch = plan_batch(Path(images_dir), source, batch_id)
    staged = batch.staged(uuid.uuid4().hex)
    drop_staged(root, staged)  # what a run of this batch that was killed left behind
    parts = staged.chunks(params.chunk_images)
    futures, first = {}, 0
    for part in parts:
        last = first + len(part.images) - 1
        futures[score_chunk.submit(root, model, part, params, first, last)] = len(futures)
        first = last + 1
    progress = create_progress_artifact(
        0.0, key="batch-progress", description=f"{batch.source}: {len(parts)} chunks"
    )
    results: list[list[dict]] = [[] for _ in parts]
    failed: list[BaseException] = []
    for done, future in enumerate(as_completed(list(futures)), start=1):
        try:
            results[futures[future]] = future.result()
        except Exception as exc:  # out of retries: let the others end, then take it back
            failed.append(exc)
        update_progress_artifact(progress, 100.0 * done / len(parts))
        print(f"{done}/{len(parts)} chunks done, {len(failed)} failed")
    if failed:
        drop_staged(root, staged)
        raise failed[0]
    commit_staged(root, staged, batch)
    return [row | {"batch_id": batch.batch_id} for rows in results for row in rows]


def main(argv: list[str] | None = None) -> int:
    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description="Score a folder of images with the champion.")
    parser.add_argument("--images", required=True, help="folder of images")
    parser.add_argument("--source", help="label for these predictions (default: folder name)")
    parser.add_argument("--project-dir")
    parser.add_argument("--dask-workers", type=int, choices=range(257), metavar="0-256",
                        help="0: in this process; N: on Dask with N local workers")  # fmt: skip
    args = parser.parse_args(argv)
    return run_main(
        lambda: print(
            batch_inference_flow(
                args.images, args.source, args.project_dir, dask_workers=args.dask_workers
            )
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
