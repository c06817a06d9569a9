"""Batch inference: score a folder of images with the champion and log every prediction.

skintwin score --images data/batches/today [--source clinic-a]
python -m flows.batch_inference --images data/batches/today   # the same
"""

from __future__ import annotations

import argparse

from prefect import flow

from skintwin.params import load_params
from skintwin.project import ProjectPaths
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
) -> dict:
    """Score `images_dir`; results under reports/batch/<time>-<source>/.

    Args:
        images_dir: folder of images (searched recursively).
        source: label stored with each prediction (default: the folder's name).
        alias: registry alias of the model to use.
        batch_id: id of this batch (default: derived from the source and the files); a
            rerun with the same id replaces the earlier run's predictions.
    """
    paths = ProjectPaths.find(project_dir)
    root = str(paths.root)
    params = load_params(paths.params).monitor
    batch = check_batch(images_dir, source, batch_id)
    model = load_model(root, alias=alias)
    rows = score_images(model, batch, params)
    summary = commit_batch(root, batch, rows)
    publish_batch_summary(summary, model, batch.source)
    return summary


def main(argv: list[str] | None = None) -> int:
    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description="Score a folder of images with the champion.")
    parser.add_argument("--images", required=True, help="folder of images")
    parser.add_argument("--source", help="label for these predictions (default: folder name)")
    parser.add_argument("--project-dir")
    args = parser.parse_args(argv)
    return run_main(
        lambda: print(batch_inference_flow(args.images, args.source, args.project_dir))
    )


if __name__ == "__main__":
    raise SystemExit(main())
