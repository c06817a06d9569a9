"""Alerts: how severe a drift is, JSON files under `.monitoring/alerts/`, an optional
webhook, and de-duplication.

An alert is written once per ongoing condition: the same key at the same or a lower
severity within `monitor.dedup_hours` is suppressed; a higher severity always alerts, and
so does one its caller finds says more than the last (`raise_alert`'s `tells_more`). The
de-duplication state lives in the prediction store's database (see `PredictionStore.
claim_alert`), so two drift checks at once raise one alert; it is claimed only once the
alert's file is written. A webhook that fails or times out is retried, then recorded on
the alert, and posted again by a later check that finds the alert still standing; it never
fails the run.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from skintwin.io import atomic_write_json
from skintwin.monitoring.store import PredictionStore
from skintwin.params import MonitorParams
from skintwin.redact import mask_text

log = logging.getLogger(__name__)
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def severity(result: dict, params: MonitorParams) -> str | None:
    """None (no alert), "warning" or "critical" for a drift result."""
    if not result.get("enough_data", True) or not result["drift_detected"]:
        return None
    if result["drift_share"] >= params.critical_share:
        return "critical"
    if "tone mix" in result.get("moved", {}):
        return "critical"  # the patient mix moved: per-group guarantees no longer hold
    return "warning"


_MAX_RESPONSE_BYTES = 64 * 1024  # a webhook answers "ok"; never read a large body


async def _post_once(url: str, body: dict, timeout_s: float) -> None:
    """One POST; the whole exchange (connect, send, headers, body) within `timeout_s`."""
    import httpx

    async with (
        httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
        client.stream("POST", url, json=body) as response,
    ):
        read = 0
        async for chunk in response.aiter_bytes():
            read += len(chunk)
            if read > _MAX_RESPONSE_BYTES:
                break
        response.raise_for_status()


def _post_bounded(url: str, body: dict, timeout_s: float) -> None:
    """Run `_post_once` under a hard deadline, in a thread of its own (callers may already
    run an event loop). Raises on any failure, including the deadline."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def bounded() -> None:
        await asyncio.wait_for(_post_once(url, body, timeout_s), timeout=timeout_s)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, bounded()).result()


def post_webhook(url: str, alert: dict, timeout_s: float, retries: int) -> dict:
    """POST a Slack-compatible body; returns {"delivered", "attempts", "error"}.

    Each attempt is bounded as a whole (not per read: a server trickling bytes cannot hold
    the run), the response body read is capped, and no failure escapes: a malformed URL,
    a refusal or a timeout is recorded on the alert.
    """
    text = f"[{alert['severity'].upper()}] {alert['kind']}: {alert['summary']}"
    body = {"text": text, "attachments": [{"text": json.dumps(alert["details"])[:3000]}]}
    error = None
    for attempt in range(1, retries + 2):
        try:
            _post_bounded(url, body, timeout_s)
            return {"delivered": True, "attempts": attempt, "error": None}
        except TimeoutError:
            error = f"TimeoutError: no complete answer within {timeout_s:g} s"
        except Exception as exc:  # InvalidURL, HTTPStatusError, connection errors, ...
            error = f"{type(exc).__name__}: {mask_text(str(exc))[:300]}"
        if attempt <= retries:
            time.sleep(min(2.0 ** (attempt - 1), 10.0))
    log.warning("alert webhook failed after %d attempts: %s", retries + 1, error)
    return {"delivered": False, "attempts": retries + 1, "error": error}


def raise_alert(
    store: PredictionStore,
    alert_dir: Path,
    kind: str,
    level: str,
    summary: str,
    details: dict,
    key: str,
    params: MonitorParams,
    tells_more: Callable[[dict], bool] | None = None,
) -> dict | None:
    """Write (and post) an alert unless it duplicates an ongoing one; returns it or None.

    The file is written first, under a name no reader lists, and becomes the alert once the
    claim in the store is won: a write that fails leaves no claim behind, so the retry (or
    the next check) alerts. A suppressed check re-posts the standing alert if its webhook
    failed. `tells_more(last)` says whether this alert says more than `last`, the key's
    alert within `dedup_hours` (another model version, a new fall): then it replaces that
    alert's claim, and only that one, so of concurrent checks one alerts.
    """
    now = time.time()
    window_s = params.dedup_hours * 3600
    dedup_s = window_s
    last = latest_alert(alert_dir, key, now - window_s)
    if last is not None and tells_more is not None and tells_more(last):
        dedup_s = now - last["time"]  # the claim stands since `last` was raised: replace it
    url = os.environ.get("SKINTWIN_ALERT_WEBHOOK")
    alert = {
        "id": uuid.uuid4().hex[:12],
        "kind": kind,
        "severity": level,
        "time": now,
        "time_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "summary": summary,
        "key": key,
        "details": details,
        "webhook": {"delivered": False, "attempts": 0, "error": "not sent yet"} if url else None,
    }
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    path = Path(alert_dir) / f"{stamp}-{kind}-{alert['id']}.json"
    pending = path.with_name(f".{path.stem}.pending")
    atomic_write_json(pending, alert)
    try:
        claimed = store.claim_alert(key, level, SEVERITY_RANK[level], now, dedup_s)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    if not claimed:
        pending.unlink(missing_ok=True)
        log.info("alert %s (%s) suppressed: raised within %s h", key, level, params.dedup_hours)
        _redeliver(alert_dir, key, url, params, now)
        return None
    try:
        pending.replace(path)
    except OSError:
        store.clear_alert(key)  # no alert was made: the next check must not see one
        raise
    log.warning("ALERT [%s] %s: %s", level, kind, summary)
    if url:
        alert["webhook"] = post_webhook(
            url, alert, params.webhook_timeout_s, params.webhook_retries
        )
        atomic_write_json(path, alert)
    return alert


def _redeliver(
    alert_dir: Path, key: str, url: str | None, params: MonitorParams, now: float
) -> None:
    """Post the key's standing alert again when its webhook failed, or was never sent by a
    run that stopped (not while a run may still be sending it); record the outcome on it."""
    last = latest_alert(alert_dir, key, now - params.dedup_hours * 3600)
    hook = (last or {}).get("webhook")
    if not url or not hook or hook["delivered"]:
        return
    sending_s = (params.webhook_retries + 1) * (params.webhook_timeout_s + 10.0)
    if hook["attempts"] == 0 and now - last["time"] < sending_s:
        return
    last["webhook"] = post_webhook(url, last, params.webhook_timeout_s, params.webhook_retries)
    last["webhook"]["resent"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    atomic_write_json(last.pop("path"), last)
    log.info("alert %s re-sent: delivered %s", key, last["webhook"]["delivered"])


def _alert_files(alert_dir: Path, since: float) -> Iterator[tuple[Path, dict]]:
    """Each alert file written since `since` (Unix seconds), oldest first, with its path.
    Files are named by their UTC second, so older ones are passed over unread."""
    oldest = time.strftime("%Y%m%dT%H%M%S", time.gmtime(since))
    for path in sorted(Path(alert_dir).glob("*-*.json")):
        if path.name[:15] >= oldest:
            alert = json.loads(path.read_text())
            if alert.get("time", 0) >= since:
                yield path, alert


def latest_alert(alert_dir: Path, key: str, since: float) -> dict | None:
    """The newest alert file of `key` written since `since`, with its "path"; else None."""
    found = [{**a, "path": p} for p, a in _alert_files(alert_dir, since) if a.get("key") == key]
    return max(found, key=lambda alert: alert["time"], default=None)


def recent_alerts(alert_dir: Path, since: float) -> list[dict]:
    """The alert files written since `since` (Unix seconds), oldest first."""
    return [alert for _, alert in _alert_files(alert_dir, since)]
