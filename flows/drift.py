"""Drift monitoring: compare a window of production predictions with the training reference.

    python -m flows.drift                         # the last monitor.window_hours of the store
    python -m flows.drift --source clinic-a       # only predictions logged with that source
    python -m flows.drift --images DIR            # score a folder first, then check it

Writes reports/drift/<time>-<subject>/ (Evidently HTML + JSON), a Prefect artifact, an MLflow
run under `skin-twin-monitoring`, and an alert when drift crosses params.yaml thresholds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow
from prefect.logging import get_run_logger

from skintwin.params import load_params
from skintwin.project import resolve_root
from tasks.monitoring_tasks import (
    build_reference,
    check_drift,
    collect_current,
    load_model,
    log_drift_to_mlflow,
    publish_drift_summary,
    raise_drift_alert,
    score_images,
    timestamp,
)
from tasks.retraining import trigger_retraining


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
        images_dir: score this folder first (logged with source = its name) and check it.
    """
    root = str(resolve_root(project_dir))
    params = load_params(Path(root) / "params.yaml").monitor
    window = window_hours or params.window_hours
    model = load_model(root)
    if images_dir:
        source = source or Path(images_dir).name
        score_images(root, model, images_dir, source, params)
    subject = source or "all"
    reference = build_reference(root, model, params)
    current = collect_current(root, window, source, model.name)
    out_dir = str(Path(root) / "reports" / "drift" / f"{timestamp()}-{subject}")
    result = check_drift(root, reference, current, out_dir)
    alert = raise_drift_alert(root, result, params, subject)
    log_drift_to_mlflow(root, result, subject, out_dir)
    publish_drift_summary(result, subject, alert, out_dir)
    retraining = None
    if alert and alert["severity"] == "critical" and params.retrain_on_critical:
        retraining = trigger_retraining(root)
    get_run_logger().info(
        "drift verdict for %s: %s (report %s)", subject, result["drift_detected"], out_dir
    )
    return {"result": result, "alert": alert, "report_dir": out_dir, "retraining": retraining}


def main(argv: list[str] | None = None) -> int:
    import json

    from skintwin.cli_util import run_main

    parser = argparse.ArgumentParser(description="Run a drift check.")
    parser.add_argument("--window-hours", type=float)
    parser.add_argument("--source")
    parser.add_argument("--images", help="score this folder first, then check it")
    parser.add_argument("--project-dir")
    args = parser.parse_args(argv)

    def body() -> None:
        out = drift_flow(args.window_hours, args.source, args.images, args.project_dir)
        print(
            json.dumps(
                {k: out[k] for k in ("alert", "report_dir")}
                | {"drift_detected": out["result"]["drift_detected"]},
                default=str,
            )
        )

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
