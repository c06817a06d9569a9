"""Alerts: JSON files under `.monitoring/alerts/`, an optional webhook, de-duplication.

An alert is written once per ongoing condition: the same kind, subject and severity within
`monitor.dedup_hours` is recorded as suppressed, not raised again. A higher severity
always alerts. A webhook that fails or times out is retried, then recorded on the alert;
it never fails the run.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path

from skintwin.io import atomic_write_json

log = logging.getLogger(__name__)
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def _state_path(alert_dir: Path) -> Path:
    return alert_dir / "state.json"


def _load_state(alert_dir: Path) -> dict:
    path = _state_path(alert_dir)
    return json.loads(path.read_text()) if path.is_file() else {}


def should_alert(
    alert_dir: Path, key: str, severity: str, dedup_hours: float, now: float | None = None
) -> bool:
    """False when the same condition already alerted at this severity or higher recently."""
    now = now or time.time()
    last = _load_state(alert_dir).get(key)
    if not last:
        return True
    recent = now - last["time"] < dedup_hours * 3600
    return not (recent and SEVERITY_RANK[severity] <= SEVERITY_RANK[last["severity"]])


def _remember(alert_dir: Path, key: str, severity: str, now: float) -> None:
    state = _load_state(alert_dir)
    state[key] = {"severity": severity, "time": now}
    atomic_write_json(_state_path(alert_dir), state)


def clear(alert_dir: Path, key: str) -> None:
    """Forget a condition once it is over, so that its return alerts again."""
    state = _load_state(alert_dir)
    if state.pop(key, None) is not None:
        atomic_write_json(_state_path(alert_dir), state)


def post_webhook(url: str, alert: dict, timeout_s: float, retries: int) -> dict:
    """POST a Slack-compatible body; returns {"delivered", "attempts", "error"}."""
    import httpx

    text = f"[{alert['severity'].upper()}] {alert['kind']}: {alert['summary']}"
    body = {"text": text, "attachments": [{"text": json.dumps(alert["details"])[:3000]}]}
    error = None
    for attempt in range(1, retries + 2):
        try:
            response = httpx.post(url, json=body, timeout=timeout_s)
            response.raise_for_status()
            return {"delivered": True, "attempts": attempt, "error": None}
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            if attempt <= retries:
                time.sleep(min(2.0 ** (attempt - 1), 10.0))
    log.warning("alert webhook failed after %d attempts: %s", retries + 1, error)
    return {"delivered": False, "attempts": retries + 1, "error": error}


def raise_alert(
    alert_dir: Path,
    kind: str,
    severity: str,
    summary: str,
    details: dict,
    key: str,
    dedup_hours: float,
    webhook_timeout_s: float = 5.0,
    webhook_retries: int = 2,
) -> dict | None:
    """Write (and post) an alert unless it duplicates an ongoing one; returns it or None."""
    now = time.time()
    if not should_alert(alert_dir, key, severity, dedup_hours, now):
        log.info(
            "alert %s (%s) suppressed: already raised within %s h", key, severity, dedup_hours
        )
        return None
    alert = {
        "id": uuid.uuid4().hex[:12],
        "kind": kind,
        "severity": severity,
        "time": now,
        "time_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "summary": summary,
        "key": key,
        "details": details,
    }
    url = os.environ.get("SKINTWIN_ALERT_WEBHOOK")
    alert["webhook"] = (
        post_webhook(url, alert, webhook_timeout_s, webhook_retries) if url else None
    )
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    atomic_write_json(alert_dir / f"{stamp}-{kind}-{alert['id']}.json", alert)
    _remember(alert_dir, key, severity, now)
    log.warning("ALERT [%s] %s: %s", severity, kind, summary)
    return alert
