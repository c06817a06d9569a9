"""Prefect tasks for the drift flow's alerts: drift, and a fall of the label-free
performance estimate; each de-duplicated, and cleared when its condition is over.

Within `monitor.dedup_hours` a condition alerts again when it says more than its last
alert: another model version (a new champion's drift or fall is its own), or a fall on a
slice and figure the last alert did not name, or one `monitor.estimate_drop` deeper."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from skintwin.model.loaded import LoadedModel
from skintwin.monitoring import alerts, performance, summaries
from skintwin.monitoring.monitor import ModelMonitor
from skintwin.params import MonitorParams
from skintwin.project import ProjectPaths


def _identity(model: LoadedModel | None) -> dict | None:
    """The model's name and version as an alert records them; None when not given."""
    return {"name": model.name, "version": str(model.version)} if model is not None else None


def _named(identity: dict | None, summary: str) -> str:
    """The summary, led by the model it is about."""
    return f"{identity['name']} v{identity['version']}: {summary}" if identity else summary


def _other_version(last: dict, identity: dict | None) -> bool:
    """True when `last` alerted on another model (or version) than `identity`."""
    before = last["details"].get("model")
    return identity is not None and before is not None and before != identity


def _deeper_falls(last: dict, falls: list[dict], by: float) -> bool:
    """True when `falls` hold a slice and figure that `last` did not, or one that fell at
    least `by` further than it had there."""
    before = {(f["slice"], f["figure"]): f["drop"] for f in last["details"].get("falls", [])}
    for fall in falls:
        seen = before.get((fall["slice"], fall["figure"]))
        if seen is None or fall["drop"] >= seen + by:
            return True
    return False


@task(cache_policy=NO_CACHE, name="raise-performance-alert", retries=1, retry_delay_seconds=[5])
def raise_performance_alert(
    root: str,
    estimate: dict,
    params: MonitorParams,
    subject: str,
    model: LoadedModel | None = None,
) -> dict | None:
    """Alert when an estimated figure of `model` fell more than `monitor.estimate_drop`
    (de-duplicated, unless it says more than the last alert); clear the state when all is
    clear (`performance.all_clear`: an unconfirmed fall does neither)."""
    store = ModelMonitor(project_dir=root).store
    key = f"performance:{subject}"
    if not estimate["falls"]:
        if performance.all_clear(estimate):
            store.clear_alert(key)
        return None
    identity = _identity(model)
    summary = f"estimated without labels: {performance.falls_line(estimate)}"
    details = {"subject": subject, "model": identity, "falls": estimate["falls"]}
    if estimate.get("unchecked"):  # alerted though nothing was seen to move: why
        details["unchecked"] = estimate["unchecked"]
        summary += f" ({performance.unchecked_line(estimate)})"

    def tells_more(last: dict) -> bool:
        return _other_version(last, identity) or _deeper_falls(
            last, estimate["falls"], params.estimate_drop
        )

    folder = ProjectPaths(Path(root)).alerts
    summary = _named(identity, summary)
    return alerts.raise_alert(
        store, folder, "performance", "warning", summary, details, key, params, tells_more
    )


@task(cache_policy=NO_CACHE, name="raise-drift-alert", retries=1, retry_delay_seconds=[5])
def raise_drift_alert(
    root: str, result: dict, params: MonitorParams, subject: str, model: LoadedModel | None = None
) -> dict | None:
    """Alert on drift of `model`'s window (de-duplicated, unless the model version changed);
    clear the state when the drift is over: a window where nothing moved, not even below
    `drift_share`, and every test ran (a drift hovering at the share would otherwise end
    and alert again every other window, and a blind check would end it unseen)."""
    store = ModelMonitor(project_dir=root).store
    level = alerts.severity(result, params)
    key = f"data_drift:{subject}"
    if level is None:
        if result["enough_data"] and not result.get("moved") and not performance.unchecked(result):
            store.clear_alert(key)
        return None
    identity = _identity(model)
    summary = (
        f"{summaries.moved_line(result)}; {len(result['drifted_columns'])} of "
        f"{result.get('n_columns', '?')} columns drifted ({result['drift_share']:.0%})"
    )
    details = {
        "subject": subject,
        "model": identity,
        "report": result.get("html"),
        "moved": result.get("moved", {}),
        "scores": result["scores"],
    }

    def tells_more(last: dict) -> bool:
        return _other_version(last, identity)

    folder = ProjectPaths(Path(root)).alerts
    summary = _named(identity, summary)
    return alerts.raise_alert(
        store, folder, "data_drift", level, summary, details, key, params, tells_more
    )
