"""Prefect tasks for the labelled audit: measure the champion on labelled photos, write the
report, alert, and log the run. The logic lives in `skintwin.monitoring.audit`."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from skintwin.io import atomic_write_bytes, atomic_write_json
from skintwin.model.loaded import LoadedModel
from skintwin.monitoring import alerts, anchor, audit
from skintwin.monitoring.monitor import ModelMonitor
from skintwin.params import MonitorParams, Params
from skintwin.project import ProjectPaths
from tasks.monitoring_tasks import monitoring_run


@task(cache_policy=NO_CACHE, name="audit-labelled-sample")
def audit_labelled(model: LoadedModel, images_dir: str, params: Params, min_images: int) -> dict:
    """The champion's true figures on a labelled sample, beside its test figures and the
    label-free estimate of the same photos (nothing is written yet)."""
    result = audit.audit_sample(model, Path(images_dir), params, min_images)
    log = get_run_logger()
    log.info("audited %d labelled photos: %s", result["images"], ", ".join(result["slices"]))
    if result["falls"]:
        log.warning("true performance fell: %s", audit.audit_falls_line(result))
    return result


@task(cache_policy=NO_CACHE, name="write-audit")
def write_audit(result: dict, out_dir: str) -> str:
    """`audit.json` and `audit.md` in a new report folder, and the table as an artifact."""
    markdown = audit.audit_markdown(result)
    atomic_write_json(Path(out_dir) / "audit.json", result)
    atomic_write_bytes(Path(out_dir) / "audit.md", markdown.encode())
    return str(create_markdown_artifact(key="labelled-audit", markdown=markdown))


@task(cache_policy=NO_CACHE, name="raise-audit-alert", retries=1, retry_delay_seconds=[5])
def raise_audit_alert(root: str, result: dict, params: MonitorParams, subject: str) -> dict | None:
    """Alert when a true figure fell more than `monitor.estimate_drop` below the test
    figure: critical when its interval's top is still that far below; a warning when not,
    on a slice of `monitor.estimate_min_images` photos (a smaller group's unsure fall is
    in the report only: its own sampling error is that large)."""
    store = ModelMonitor(project_dir=root).store
    key = f"performance_audit:{subject}"
    loud = [f for f in result["falls"] if f["sure"] or f["images"] >= params.estimate_min_images]
    if not loud:
        if result["test_available"]:  # measured against the test figures: nothing fell
            store.clear_alert(key)
        return None
    level = "critical" if any(f["sure"] for f in loud) else "warning"
    summary = f"measured on labelled photos: {audit.audit_falls_line({'falls': loud})}"
    details = {"subject": subject, "falls": loud, "model": result["model"]}
    return alerts.raise_alert(
        store,
        ProjectPaths(Path(root)).alerts,
        "performance_audit",
        level,
        summary,
        details,
        key,
        params,
    )


@task(cache_policy=NO_CACHE, name="log-audit-to-mlflow", retries=3, retry_delay_seconds=[2, 5, 15])
def log_audit_to_mlflow(root: str, result: dict, subject: str, out_dir: str) -> str:
    """One run per audit: each slice's true figures, and the estimate's on the same photos."""
    import mlflow

    with monitoring_run(root, f"audit-{subject}", out_dir, "audit") as run:
        for name, s in result["slices"].items():
            figures = {f"true.{name}.{f}": s["true"][f]["value"] for f in s["true"]}
            estimated = s.get("estimate", {})
            figures |= {f"estimated.{name}.{f}": v["value"] for f, v in estimated.items()}
            mlflow.log_metrics(figures)
        mlflow.log_params({"subject": subject, "images": result["images"],
                           "model_version": result["model"]["version"]})  # fmt: skip
    return run.info.run_id


@task(cache_policy=NO_CACHE, name="keep-audit-errors", retries=1, retry_delay_seconds=[5])
def keep_audit_errors(root: str, result: dict, subject: str) -> int:
    """The estimate's error on each audited slice, kept in the store: later drift checks of
    this version anchor each tone group's estimate on it (`monitoring.anchor`)."""
    kept = anchor.log_audit(ModelMonitor(project_dir=root).store, result, subject)
    get_run_logger().info("kept the estimate's error on %d audited slice figures", kept)
    return kept
