from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from skintwin.alerts import clear, raise_alert


def _alert(tmp_path: Path, severity: str = "warning", key: str = "drift:a"):
    return raise_alert(
        tmp_path,
        "data_drift",
        severity,
        "3 columns drifted",
        {"x": 1},
        key,
        dedup_hours=24,
        webhook_timeout_s=0.5,
        webhook_retries=1,
    )


def _files(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*-data_drift-*.json"))]


def test_dedup_escalation_and_clear(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SKINTWIN_ALERT_WEBHOOK", raising=False)
    assert _alert(tmp_path) is not None
    assert _alert(tmp_path) is None  # same ongoing drift: suppressed
    assert _alert(tmp_path, key="drift:b") is not None  # another subject alerts
    assert _alert(tmp_path, "critical") is not None  # escalation alerts
    clear(tmp_path, "drift:a")
    assert _alert(tmp_path) is not None  # drift came back after it was over
    alerts = _files(tmp_path)
    assert len(alerts) == 4
    assert {a["severity"] for a in alerts} == {"warning", "critical"}
    assert all({"kind", "severity", "time", "details"} <= set(a) for a in alerts)


class _Hook(BaseHTTPRequestHandler):
    bodies: ClassVar[list] = []
    delay = 0.0

    def do_POST(self) -> None:
        time.sleep(self.delay)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.bodies.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.bodies, _Hook.delay = [], 0.0
    yield server
    server.shutdown()
    server.server_close()


def test_webhook_gets_slack_body(tmp_path: Path, hook, monkeypatch) -> None:
    monkeypatch.setenv("SKINTWIN_ALERT_WEBHOOK", f"http://127.0.0.1:{hook.server_port}/x")
    alert = _alert(tmp_path)
    assert alert["webhook"]["delivered"] is True
    assert _Hook.bodies[0]["text"].startswith("[WARNING] data_drift")


def test_webhook_timeout_is_recorded_not_raised(tmp_path: Path, hook, monkeypatch) -> None:
    monkeypatch.setenv("SKINTWIN_ALERT_WEBHOOK", f"http://127.0.0.1:{hook.server_port}/x")
    _Hook.delay = 2.0
    alert = _alert(tmp_path)
    assert alert["webhook"]["delivered"] is False
    assert alert["webhook"]["attempts"] == 2
    assert "Timeout" in alert["webhook"]["error"]
    assert _files(tmp_path)[0]["webhook"]["delivered"] is False
