"""Prefect tasks for the drift flow's alerts: drift, and a fall of the label-free
performance estimate; each de-duplicated, and cleared when its condition is over."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from skintwin.monitoring import alerts, performance, summaries
from skintwin.monitoring.monitor import ModelMonitor
from skintwin.params import MonitorParams
from skintwin.project import ProjectPaths


@task(cache_policy=NO_CACHE, name="raise-performance-alert", retries=1, retry_delay_seconds=[5])
def raise_performance_alert(
    root: str, estimate: dict, params: MonitorParams, subject: str
) -> dict | None:
    """Alert when an estimated figure fell more than `monitor.estimate_drop` (de-duplicated);
    clear the state when all is clear (`performance.all_clear`: an unconfirmed fall does
    neither)."""
    store = ModelMonitor(project_dir=root).store
    key = f"performance:{subject}"
    if not estimate["falls"]:
        if performance.all_clear(estimate):
            store.clear_alert(key)
        return None
    summary = f"estimated without labels: {performance.falls_line(estimate)}"
    details = {"subject": subject, "falls": estimate["falls"]}
    if estimate.get("unchecked"):  # alerted though nothing was seen to move: why
        details["unchecked"] = estimate["unchecked"]
        summary += f" ({performance.unchecked_line(estimate)})"
    folder = ProjectPaths(Path(root)).alerts
    return alerts.raise_alert(
        store, folder, "performance", "warning", summary, details, key, params
    )


@task(cache_policy=NO_CACHE, name="raise-drift-alert", retries=1, retry_delay_seconds=[5])
def raise_drift_alert(root: str, result: dict, params: MonitorParams, subject: str) -> dict | None:
    """Alert on drift (de-duplicated); clear the state when the drift is over."""
    store = ModelMonitor(project_dir=root).store
    level = alerts.severity(result, params)
    key = f"data_drift:{subject}"
    if level is None:
        if result["enough_data"]:
            store.clear_alert(key)
        return None
    summary = (
        f"{summaries.moved_line(result)}; {len(result['drifted_columns'])} of "
        f"{result.get('n_columns', '?')} columns drifted ({result['drift_share']:.0%})"
    )
    details = {
        "subject": subject,
        "report": result.get("html"),
        "moved": result.get("moved", {}),
        "scores": result["scores"],
    }
    folder = ProjectPaths(Path(root)).alerts
    return alerts.raise_alert(store, folder, "data_drift", level, summary, details, key, params)
