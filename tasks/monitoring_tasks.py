"""Prefect tasks for production monitoring: load the champion, score, check drift, alert."""

from __future__ import annotations

import csv
import time
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from skintwin import monitoring
from skintwin.alerts import clear, raise_alert
from skintwin.io import atomic_write_json
from skintwin.loader import LoadedModel, ModelLoader
from skintwin.monitor import ModelMonitor
from skintwin.params import MonitorParams


@task(cache_policy=NO_CACHE, name="load-model", retries=2, retry_delay_seconds=[2, 10])
def load_model(root: str, model_name: str | None = None, alias: str = "champion") -> LoadedModel:
    """The model behind `alias` (falls back to the local copy when the registry is down)."""
    names = [model_name] if model_name else None
    model = ModelLoader(model_names=names, alias=alias, project_dir=root).load_all_models()
    loaded = next(iter(model.values()))
    get_run_logger().info("model %s version %s (%s)", loaded.name, loaded.version, loaded.source)
    return loaded


@task(cache_policy=NO_CACHE, name="score-images", task_run_name="score {source}")
def score_images(
    root: str, model: LoadedModel, images_dir: str, source: str, params: MonitorParams
) -> list[dict]:
    """Predict every image of a folder with the model and log each prediction."""
    images = monitoring.folder_images(Path(images_dir))
    monitor = ModelMonitor(project_dir=root, batch_size=64)
    rows = monitoring.score_images(model, images, monitor, source, params.conf, params.imgsz)
    failed = sum(1 for r in rows if r.get("error"))
    get_run_logger().info(
        "scored %d images from %s (%d unreadable)", len(rows), images_dir, failed
    )
    return rows


@task(cache_policy=NO_CACHE, name="write-batch-results")
def write_batch_results(rows: list[dict], out_dir: str) -> dict:
    """predictions.csv (one row per detection) and summary.json for a scored batch."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "class_name", "confidence", "x1", "y1", "x2", "y2", "error"])
        for r in rows:
            if r.get("error") or not r["detections"]:
                writer.writerow([r["image_ref"], "", "", "", "", "", "", r.get("error") or ""])
            for d in r["detections"]:
                writer.writerow([r["image_ref"], d["class_name"], d["confidence"], *d["box"], ""])
    counts: dict[str, int] = {}
    for r in rows:
        for name, n in (r.get("class_counts") or {}).items():
            counts[name] = counts.get(name, 0) + n
    summary = {
        "images": len(rows),
        "failed": sum(1 for r in rows if r.get("error")),
        "detections": sum(r["n_detections"] for r in rows),
        "class_counts": counts,
        "mean_latency_ms": (sum(r["latency_ms"] or 0 for r in rows) / len(rows)) if rows else None,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary | {"out_dir": str(out)}


@task(cache_policy=NO_CACHE, name="build-reference")
def build_reference(root: str, model: LoadedModel, params: MonitorParams):
    """Reference features: training images plus the model's predictions on held-out images."""
    return monitoring.reference_frame(Path(root), model, params)


@task(cache_policy=NO_CACHE, name="collect-current")
def collect_current(root: str, window_hours: float, source: str | None, model_name: str):
    """The prediction store's rows in the window (optionally one source)."""
    frame = monitoring.current_frame(
        ModelMonitor(project_dir=root), window_hours, source, model_name
    )
    get_run_logger().info("current window: %d predictions", len(frame))
    return frame


@task(cache_policy=NO_CACHE, name="check-drift")
def check_drift(root: str, reference, current, out_dir: str) -> dict:
    """Evidently drift report (HTML + JSON) over image and prediction features."""
    result = ModelMonitor(project_dir=root).detect_data_drift(current, reference, out_dir)
    doc = {
        "drift_detected": result.drift_detected,
        "enough_data": result.enough_data,
        "drift_share": result.drift_share,
        "drifted_columns": result.drifted_columns,
        "scores": result.scores,
        "report_html": result.report_html,
        **{k: v for k, v in result.details.items() if k in ("reason", "n_columns")},
    }
    if not result.enough_data:
        get_run_logger().warning(
            "not enough data for a drift verdict: %s", result.details["reason"]
        )
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(out_dir) / "drift_summary.json", doc)
    return doc


@task(cache_policy=NO_CACHE, name="raise-drift-alert", retries=1, retry_delay_seconds=[5])
def raise_drift_alert(root: str, result: dict, params: MonitorParams, subject: str) -> dict | None:
    """Alert on drift (de-duplicated); clear the state when the drift is over."""
    level = monitoring.severity(result, params)
    alert_dir = Path(root) / ".monitoring" / "alerts"
    key = f"data_drift:{subject}"
    if level is None:
        if result["enough_data"]:
            clear(alert_dir, key)
        return None
    summary = (
        f"{len(result['drifted_columns'])} of {result.get('n_columns', '?')} columns "
        f"drifted ({result['drift_share']:.0%}): {', '.join(result['drifted_columns'])}"
    )
    return raise_alert(
        alert_dir,
        "data_drift",
        level,
        summary,
        {"subject": subject, "report": result["report_html"], "scores": result["scores"]},
        key,
        params.dedup_hours,
        params.webhook_timeout_s,
        params.webhook_retries,
    )


@task(cache_policy=NO_CACHE, name="log-drift-to-mlflow", retries=3, retry_delay_seconds=[2, 5, 15])
def log_drift_to_mlflow(root: str, result: dict, subject: str, out_dir: str) -> str:
    """One run per drift check under the `skin-twin-monitoring` experiment."""
    import mlflow

    from skintwin.tracking import configure_tracking, experiment_id

    configure_tracking(Path(root))
    with mlflow.start_run(
        experiment_id=experiment_id("skin-twin-monitoring", Path(root)),
        run_name=f"drift-{subject}",
    ) as run:
        mlflow.log_metrics(
            {
                "drift_share": result["drift_share"],
                "drifted_columns": len(result["drifted_columns"]),
                "drift_detected": float(result["drift_detected"]),
            }
        )
        mlflow.log_params({"subject": subject, "enough_data": result["enough_data"]})
        for path in sorted(Path(out_dir).glob("*")):
            mlflow.log_artifact(str(path), artifact_path="drift")
    return run.info.run_id


def drift_markdown(result: dict, subject: str, alert: dict | None, out_dir: str) -> str:
    if not result["enough_data"]:
        return f"# Drift check: {subject}\n\n**Not enough data**: {result.get('reason')}\n"
    verdict = "**DRIFT DETECTED**" if result["drift_detected"] else "no drift"
    rows = "\n".join(
        f"| {c} | {s:.4g} | {'yes' if c in result['drifted_columns'] else ''} |"
        for c, s in sorted(result["scores"].items())
    )
    alert_line = f"Alert: {alert['severity']} ({alert['id']})" if alert else "Alert: none"
    return f"""# Drift check: {subject}

{verdict} — {result["drift_share"]:.0%} of columns drifted. {alert_line}

| column | score | drifted |
|---|---|---|
{rows}

Report: `{out_dir}/drift_report.html`
"""


@task(cache_policy=NO_CACHE, name="publish-drift-summary")
def publish_drift_summary(result: dict, subject: str, alert: dict | None, out_dir: str) -> str:
    artifact = create_markdown_artifact(
        key="drift-summary",
        markdown=drift_markdown(result, subject, alert, out_dir),
        description=f"Drift check of {subject}",
    )
    return str(artifact)


@task(cache_policy=NO_CACHE, name="publish-batch-summary")
def publish_batch_summary(summary: dict, model: LoadedModel, source: str) -> str:
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary["class_counts"].items())) or "none"
    md = (
        f"# Batch inference: {source}\n\nModel {model.name} v{model.version} "
        f"({model.source})\n\n- images: {summary['images']} ({summary['failed']} unreadable)\n"
        f"- detections: {summary['detections']} ({counts})\n"
        f"- results: `{summary['out_dir']}/predictions.csv`\n"
    )
    return str(create_markdown_artifact(key="batch-inference-summary", markdown=md))


def timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())
