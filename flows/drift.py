"""Drift monitoring: compare a window of production predictions with the training reference.

    skintwin drift                            # the last monitor.window_hours of the store
    skintwin drift --source clinic-a          # only predictions logged with that source
    skintwin drift --images DIR               # score a folder first, then check it
    python -m flows.drift [...]               # the same

Writes reports/drift/<time>-<token>-<subject>/ (Evidently HTML + JSON), a Prefect artifact,
an MLflow run under `skin-twin-monitoring`, and an alert when drift crosses params.yaml
thresholds. A critical alert with `monitor.retrain_on_critical` starts training: through the
`training/manual` deployment when a Prefect server is configured, else as a subflow.
"""

from __future__ import annotations

import argparse
import os

from prefect import flow
from prefect.logging import get_run_logger

from flows.training import training_flow
from skintwin.errors import SkinTwinError
from skintwin.monitoring.scoring import report_dir
from skintwin.params import load_params
from skintwin.project import ProjectPaths, safe_name
from tasks.alert_tasks import raise_drift_alert, raise_performance_alert
from tasks.deployments import start_deployment
from tasks.monitoring_tasks import (
    build_reference,
    check_batch,
    check_drift,
    collect_current,
    commit_batch,
    estimate_performance,
    load_model,
    log_drift_to_mlflow,
    publish_drift_summary,
    score_images,
    timestamp,
)


@flow(name="drift", log_prints=True)
def drift_flow(
    window_hours: float | None = None,
    source: str | None = None,
    images_dir: str | None = None,
    project_dir: str | None = None,
) -> dict:
    """Check production inputs and predictions for drift against the training reference.

    Args:
        window_hours: how far back to read the store (default `monitor.window_hours`).
        source: only predictions logged with this source.
        images_dir: score this folder first (logged with source = its name) and check its
            photos alone (not what else the source's window holds).
    """
    paths = ProjectPaths.find(project_dir)
    root = str(paths.root)
    params = load_params(paths.params).monitor
    window = check_window(window_hours, params.window_hours)
    subject = safe_name(source, "source") if source else "all"
    batch = check_batch(images_dir, source, None) if images_dir else None
    model = load_model(root)
    if batch is not None:
        commit_batch(root, batch, score_images(model, batch, params), with_report=False)
        subject = source = batch.source
    reference = build_reference(root, model, params)
    current = collect_current(root, window, source, model, batch.batch_id if batch else None)
    out_dir = str(report_dir(paths.drift_reports, subject, timestamp()))
    result = check_drift(reference, current, params, out_dir)
    result["performance"] = estimate_performance(
        root, model, current, result, params, out_dir, subject
    )
    alert = raise_drift_alert(root, result, params, subject, model)
    # retraining starts before anything else can fail: a later run would find the alert
    # raised already (de-duplicated) and not start it
    retraining = None
    if alert and alert["severity"] == "critical" and params.retrain_on_critical:
        retraining = _retrain(root)
    fall = raise_performance_alert(root, result["performance"], params, subject, model)
    log_drift_to_mlflow(root, result, subject, out_dir)
    publish_drift_summary(result, subject, {"drift": alert, "performance": fall}, out_dir)
    get_run_logger().info(
        "drift verdict for %s: %s (report %s)", subject, result["drift_detected"], out_dir
    )
    return {"result": result, "alert": alert, "report_dir": out_dir, "retraining": retraining}


def check_window(window_hours: float | None, default: float) -> float:
    """The window to read, in hours: the default when not given, else a positive number."""
    if window_hours is None:
        return default
    if not (isinstance(window_hours, int | float) and 0 < window_hours <= 24 * 366):
        raise SkinTwinError(f"window_hours: {window_hours!r} is not 0 < hours ≤ 8784")
    return float(window_hours)


def _retrain(root: str) -> dict:
    """The training deployment when a Prefect server runs the show, else a subflow here."""
    if os.environ.get("PREFECT_API_URL"):
        return {"via": "deployment", "flow_run": start_deployment()}
    get_run_logger().info("no Prefect server configured: retraining as a subflow")
    decision = training_flow(project_dir=root)["decision"]
    return {"via": "subflow", "promoted": decision.get("promote")}


def main(argv: list[str] | None = None) -> int:
    import json

    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description="Run a drift check.")
    parser.add_argument("--window-hours", type=float)
    parser.add_argument("--source")
    parser.add_argument("--images", help="score this folder first, then check it")
    parser.add_argument("--project-dir")
    args = parser.parse_args(argv)

    def body() -> None:
        out = drift_flow(args.window_hours, args.source, args.images, args.project_dir)
        verdict = {"drift_detected": out["result"]["drift_detected"]}
        print(json.dumps({k: out[k] for k in ("alert", "report_dir")} | verdict, default=str))

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
