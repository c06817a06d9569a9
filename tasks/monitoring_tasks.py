"""Prefect tasks for production monitoring: load the champion, score, check drift,
estimate performance (the alerts: `tasks.alert_tasks`).

Each task wraps one library call; the logic lives in `skintwin.monitoring`.
"""

from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from skintwin.data.images import max_pixels_from_env
from skintwin.model.loaded import LoadedModel
from skintwin.monitoring import (
    anchor,
    drift,
    performance,
    reference,
    scoring,
    summaries,
)
from skintwin.monitoring.monitor import ModelMonitor
from skintwin.params import MonitorParams
from skintwin.project import ProjectPaths, slug
from skintwin.serving.loader import ModelLoader


def _paths(root: str) -> ProjectPaths:
    return ProjectPaths(Path(root))


@task(cache_policy=NO_CACHE, name="load-model", retries=2, retry_delay_seconds=[2, 10])
def load_model(root: str, model_name: str | None = None, alias: str = "champion") -> LoadedModel:
    """The model behind `alias` (falls back to the local copy when the registry is down)."""
    names = [model_name] if model_name else None
    models = ModelLoader(model_names=names, alias=alias, project_dir=root).load_all_models()
    loaded = next(iter(models.values()))
    get_run_logger().info("model %s version %s (%s)", loaded.name, loaded.version, loaded.source)
    return loaded


@task(cache_policy=NO_CACHE, name="check-batch")
def check_batch(images_dir: str, source: str | None, batch_id: str | None) -> scoring.Batch:
    """Check the inputs before any work: source name, folder, images; fix the batch id."""
    name = source if source is not None else slug(Path(images_dir).name)
    batch = scoring.plan_batch(Path(images_dir), name, batch_id)
    get_run_logger().info("batch %s: %d images", batch.batch_id, len(batch.images))
    return batch


@task(cache_policy=NO_CACHE, name="score-images", task_run_name="score {batch.source}")
def score_images(model: LoadedModel, batch: scoring.Batch, params: MonitorParams) -> list[dict]:
    """Predict every image of the batch (nothing is written yet)."""
    rows = scoring.score_batch(model, batch, params.conf, params.imgsz, max_pixels_from_env())
    failed = sum(1 for r in rows if r.get("error"))
    get_run_logger().info("scored %d images (%d unusable)", len(rows), failed)
    return rows


@task(cache_policy=NO_CACHE, name="commit-batch", retries=2, retry_delay_seconds=[5, 30])
def commit_batch(
    root: str, batch: scoring.Batch, rows: list[dict], with_report: bool = True
) -> dict:
    """Store the rows (replacing an earlier run of this batch) and write the report."""
    paths = _paths(root)
    out = (
        scoring.report_dir(paths.batch_reports, batch.source, timestamp()) if with_report else None
    )
    return scoring.commit_batch(ModelMonitor(project_dir=root).store, batch, rows, out)


@task(cache_policy=NO_CACHE, name="build-reference")
def build_reference(root: str, model: LoadedModel, params: MonitorParams) -> pd.DataFrame:
    """Reference features: training images plus the model's predictions on held-out images."""
    return reference.reference_frame(_paths(root), model, params)


@task(cache_policy=NO_CACHE, name="collect-current")
def collect_current(
    root: str,
    window_hours: float,
    source: str | None,
    model: LoadedModel,
    batch_id: str | None = None,
) -> pd.DataFrame:
    """The prediction store's rows in the window (optionally one source, or one scored
    batch) made by `model`'s version: after a promotion, the earlier champion's rows stay
    out of its successor's drift check and estimate."""
    store = ModelMonitor(project_dir=root).store
    frame = reference.current_frame(
        store, window_hours, source, model.name, model.version, batch_id
    )
    get_run_logger().info("current window: %d predictions of v%s", len(frame), model.version)
    return frame


@task(cache_policy=NO_CACHE, name="check-drift")
def check_drift(
    reference_frame: pd.DataFrame, current: pd.DataFrame, params: MonitorParams, out_dir: str
) -> dict:
    """Evidently drift report (HTML + JSON) over image and prediction features."""
    result = drift.check_drift(reference_frame, current, params, Path(out_dir))
    if not result["enough_data"]:
        get_run_logger().warning("not enough data for a drift verdict: %s", result["reason"])
    return result


@task(cache_policy=NO_CACHE, name="estimate-performance")
def estimate_performance(
    root: str,
    model: LoadedModel,
    current: pd.DataFrame,
    result: dict,
    params: MonitorParams,
    out_dir: str,
    subject: str,
) -> dict:
    """The champion's mAP50 and recall on the window, estimated without labels, overall and
    per tone group (each group anchored on the version's last labelled audit, if recent:
    `monitoring.anchor`); a fall alerts only where the drift check saw something move
    (`performance.corroborate`); a panel of the drift report (HTML), `performance_estimate.json`,
    and rows of the store's `performance_estimates` table."""
    if not result["enough_data"]:
        return {"available": False, "reason": result["reason"], "falls": []}
    store = ModelMonitor(project_dir=root).store
    estimate = performance.estimate_window(model.estimator_doc(), current, params)
    estimate = performance.corroborate(estimate, result, params)
    audit = anchor.latest_audit(store, model.name, model.version, anchor.anchor_since(params))
    estimate = anchor.anchor_window(estimate, audit, params)
    performance.write(estimate, Path(out_dir), model.name, model.version)
    store.log_estimate(estimate, subject, model.name, model.version)
    if estimate["falls"]:
        get_run_logger().warning(
            "estimated performance fell: %s", performance.falls_line(estimate)
        )
    if estimate.get("unchecked"):
        get_run_logger().warning(
            "the fall is alerted though nothing else was seen to move: %s",
            performance.unchecked_line(estimate),
        )
    if estimate.get("unconfirmed"):
        get_run_logger().info(
            "estimated performance fell where nothing else moved (not alerted): %s",
            performance.falls_line(estimate, "unconfirmed"),
        )
    return estimate


@contextmanager
def monitoring_run(root: str, run_name: str, out_dir: str, folder: str):
    """An MLflow run under the `skin-twin-monitoring` experiment; the report folder's files
    are logged under `folder` when the body is done."""
    import mlflow

    from skintwin.training.tracking import MONITORING_EXPERIMENT, configure_tracking, experiment_id

    configure_tracking(Path(root))
    experiment = experiment_id(MONITORING_EXPERIMENT, Path(root))
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        yield run
        for path in sorted(Path(out_dir).glob("*")):
            mlflow.log_artifact(str(path), artifact_path=folder)


@task(cache_policy=NO_CACHE, name="log-drift-to-mlflow", retries=3, retry_delay_seconds=[2, 5, 15])
def log_drift_to_mlflow(root: str, result: dict, subject: str, out_dir: str) -> str:
    """One run per drift check under the `skin-twin-monitoring` experiment."""
    import mlflow

    with monitoring_run(root, f"drift-{subject}", out_dir, "drift") as run:
        mlflow.log_metrics(
            {
                "drift_share": result["drift_share"],
                "drifted_columns": len(result["drifted_columns"]),
                "drift_detected": float(result["drift_detected"]),
            }
        )
        for name, figures in (result.get("performance") or {}).get("slices", {}).items():
            mlflow.log_metrics(
                {f"estimated.{name}.{f}": figures[f]["value"] for f in ("mAP50", "recall")}
            )
        mlflow.log_params({"subject": subject, "enough_data": result["enough_data"]})
    return run.info.run_id


@task(cache_policy=NO_CACHE, name="publish-drift-summary")
def publish_drift_summary(
    result: dict, subject: str, raised: dict[str, dict | None], out_dir: str
) -> str:
    """The drift check as a Prefect artifact; `raised`: each alert task's alert (or None)."""
    markdown = summaries.drift_markdown(result, subject, raised, out_dir)
    return str(
        create_markdown_artifact(
            key="drift-summary", markdown=markdown, description=f"Drift check of {subject}"
        )
    )


@task(cache_policy=NO_CACHE, name="publish-batch-summary")
def publish_batch_summary(summary: dict, model: LoadedModel, source: str) -> str:
    markdown = summaries.batch_markdown(summary, model.name, model.version, model.source, source)
    return str(create_markdown_artifact(key="batch-inference-summary", markdown=markdown))


def timestamp() -> str:
    """A report folder's stamp: the UTC second, then a token of its own, so that two runs
    in one second (two drift checks of a source at once) never write the same folder."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
