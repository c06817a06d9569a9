from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from skintwin.monitoring.alerts import raise_alert, severity
from skintwin.monitoring.store import PredictionStore
from skintwin.params import load_params
from tests.conftest import REPO

MONITOR = load_params(REPO / "params.yaml").monitor.model_copy(
    update={"dedup_hours": 24, "webhook_timeout_s": 0.5, "webhook_retries": 1}
)


def _store(tmp_path: Path) -> PredictionStore:
    return PredictionStore(f"sqlite:///{tmp_path / 'store.db'}")


def _alert(tmp_path: Path, level: str = "warning", key: str = "drift:a"):
    return raise_alert(
        _store(tmp_path),
        tmp_path,
        "data_drift",
        level,
        "3 columns drifted",
        {"x": 1},
        key,
        MONITOR,
    )


def _files(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*-data_drift-*.json"))]


def test_dedup_escalation_and_clear(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SKINTWIN_ALERT_WEBHOOK", raising=False)
    assert _alert(tmp_path) is not None
    assert _alert(tmp_path) is None  # same ongoing drift: suppressed
    assert _alert(tmp_path, key="drift:b") is not None  # another subject alerts
    assert _alert(tmp_path, "critical") is not None  # escalation alerts
    assert _store(tmp_path).clear_alert("drift:a")
    assert _alert(tmp_path) is not None  # drift came back after it was over
    alerts = _files(tmp_path)
    assert len(alerts) == 4
    assert {a["severity"] for a in alerts} == {"warning", "critical"}
    assert all({"kind", "severity", "time", "details"} <= set(a) for a in alerts)


class _Hook(BaseHTTPRequestHandler):
    bodies: ClassVar[list] = []
    delay = 0.0
    status = 200

    def do_POST(self) -> None:
        time.sleep(self.delay)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.bodies.append(json.loads(body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.bodies, _Hook.delay, _Hook.status = [], 0.0, 200
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


def test_a_failed_webhook_is_posted_again_while_the_alert_stands(
    tmp_path: Path, hook, monkeypatch
) -> None:
    """The receiver is down when the drift alerts; the next check finds the same drift
    (suppressed) and posts the standing alert again; once delivered, never again."""
    monkeypatch.setenv("SKINTWIN_ALERT_WEBHOOK", f"http://127.0.0.1:{hook.server_port}/x")
    _Hook.status = 503
    assert _alert(tmp_path)["webhook"]["delivered"] is False
    assert len(_Hook.bodies) == 2  # the first try and its retry
    _Hook.status = 200
    assert _alert(tmp_path) is None
    assert len(_Hook.bodies) == 3
    [standing] = _files(tmp_path)
    assert standing["webhook"]["delivered"] is True and standing["webhook"]["resent"]
    assert _alert(tmp_path) is None
    assert len(_Hook.bodies) == 3


def test_a_failed_write_leaves_no_claim(tmp_path: Path, monkeypatch) -> None:
    """The alert file cannot be written (here its folder is a file; a full disk does the
    same): nothing is claimed, so the task's retry raises the alert, once."""
    monkeypatch.delenv("SKINTWIN_ALERT_WEBHOOK", raising=False)
    store, folder = _store(tmp_path), tmp_path / "alerts"
    folder.write_text("not a folder")
    args = (store, folder, "data_drift", "critical", "tone mix", {}, "drift:a", MONITOR)
    with pytest.raises(OSError):
        raise_alert(*args)
    assert store.ongoing_alerts(0.0) == []
    folder.unlink()
    assert raise_alert(*args) is not None
    assert raise_alert(*args) is None
    assert len(list(folder.iterdir())) == 1  # the alert, no file left pending


def _other_than_v4(last: dict) -> bool:
    return last["details"]["version"] != "4"


def _raise_v4(args: tuple[str, str]) -> bool:
    url, folder = args
    details = {"version": "4"}
    alert = raise_alert(
        PredictionStore(url), Path(folder), "data_drift", "warning", "v4 drifted", details,
        "drift:all", MONITOR, _other_than_v4,
    )  # fmt: skip
    return alert is not None


def test_concurrent_checks_that_say_more_raise_one_alert(tmp_path: Path, monkeypatch) -> None:
    """v3 alerted; six checks of the new champion v4 at once each find that alert standing
    and say more than it: one replaces it, the others see a duplicate."""
    import multiprocessing as mp

    monkeypatch.delenv("SKINTWIN_ALERT_WEBHOOK", raising=False)
    url, folder = f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "alerts"
    store = PredictionStore(url)
    args = ("data_drift", "warning", "v3 drifted", {"version": "3"}, "drift:all", MONITOR)
    assert raise_alert(store, folder, *args) is not None
    with mp.get_context("spawn").Pool(6) as pool:
        wins = pool.map(_raise_v4, [(url, str(folder))] * 6)
    assert sum(wins) == 1
    versions = [json.loads(p.read_text())["details"]["version"] for p in folder.iterdir()]
    assert sorted(versions) == ["3", "4"]


def _claim(args: tuple[str, float]) -> bool:
    url, now = args
    return PredictionStore(url).claim_alert("drift:all", "critical", 2, now, 3600.0)


def test_concurrent_claims_raise_one_alert(tmp_path: Path) -> None:
    """Eight processes claim the same alert at once: exactly one wins."""
    import multiprocessing as mp
    import time

    url = f"sqlite:///{tmp_path / 'store.db'}"
    PredictionStore(url)  # create the tables before the race
    with mp.get_context("spawn").Pool(8) as pool:
        wins = pool.map(_claim, [(url, time.time())] * 8)
    assert sum(wins) == 1


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"drift_detected": False, "drift_share": 0.0, "drifted_columns": []}, None),
        ({"enough_data": False, "drift_detected": True, "drift_share": 1.0}, None),
        ({"drift_detected": True, "drift_share": 0.3, "drifted_columns": ["blur"]}, "warning"),
        ({"drift_detected": True, "drift_share": 0.6, "drifted_columns": ["a"]}, "critical"),
        # the patient mix moved: critical whatever the share
        ({"drift_detected": True, "drift_share": 0.2, "moved": {"tone mix": ["ita"]}}, "critical"),
        # ... but not when the photos changed and the tone estimate moved with them
        (
            {"drift_detected": True, "drift_share": 0.2, "moved": {"apparent tone mix": ["ita"]}},
            "warning",
        ),
    ],
)
def test_severity(result: dict, expected: str | None) -> None:
    assert severity(result, MONITOR) == expected


@pytest.mark.parametrize(
    ("method", "score", "threshold", "drifted"),
    [
        ("ks", 0.001, 0.01, True),  # a p-value below the threshold is drift
        ("ks", 0.5, 0.01, False),
        ("chisquare", 0.009, 0.01, True),
        ("wasserstein", 0.2, 0.1, True),  # a distance at or above the threshold is drift
        ("wasserstein", 0.05, 0.1, False),
        ("psi", 0.1, 0.1, True),
    ],
)
def test_drift_direction_follows_the_method(
    method: str, score: float, threshold: float, drifted: bool
) -> None:
    from skintwin.monitoring.drift import drifted as verdict

    assert verdict(method, score, threshold) is drifted


def test_an_unconfirmed_fall_neither_alerts_nor_ends_the_alert(
    tmp_path: Path, monkeypatch
) -> None:
    """Window 1 fell where drift was seen: alerted. Window 2 fell again, but the drift
    check just missed: set aside, and the alert's state is kept (else window 3 would page
    again as new). Window 3 holds its figures: the condition is over. Window 4 falls where
    the check could not compare the features within tone groups: alerted, saying so."""
    from skintwin.monitoring.monitor import ModelMonitor
    from skintwin.monitoring.performance import corroborate, estimate_window
    from tasks.alert_tasks import raise_performance_alert
    from tests.unit.test_estimator import simulate
    from tests.unit.test_performance import CALM, PARAMS, _doc, _window

    monkeypatch.delenv("SKINTWIN_MONITOR_DB", raising=False)
    for name in ("params.yaml", "dvc.yaml"):  # a project folder, its store its own
        (tmp_path / name).write_text((REPO / name).read_text())
    root, key = str(tmp_path), "performance:clinic-a"
    fell = estimate_window(_doc(), _window(simulate(5, tp_conf=(1.5, 3))), PARAMS)
    held = estimate_window(_doc(), _window(simulate(5)), PARAMS)
    assert fell["falls"] and not held["falls"]

    def keys() -> list[str]:
        return [a["key"] for a in ModelMonitor(project_dir=root).store.ongoing_alerts(0.0)]

    assert raise_performance_alert.fn(root, fell, PARAMS, "clinic-a")["severity"] == "warning"
    assert keys() == [key]
    unconfirmed = corroborate(fell, CALM, PARAMS)
    assert raise_performance_alert.fn(root, unconfirmed, PARAMS, "clinic-a") is None
    assert keys() == [key]
    assert raise_performance_alert.fn(root, held, PARAMS, "clinic-a") is None
    assert keys() == []
    blind = corroborate(fell, {**CALM, "within_groups": {"tests": 0}}, PARAMS)
    sent = raise_performance_alert.fn(root, blind, PARAMS, "clinic-a")  # silence, unchecked
    assert "could not compare" in sent["summary"] and sent["details"]["unchecked"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> str:
    """A project folder whose store and alerts are its own."""
    monkeypatch.delenv("SKINTWIN_MONITOR_DB", raising=False)
    monkeypatch.delenv("SKINTWIN_ALERT_WEBHOOK", raising=False)
    for name in ("params.yaml", "dvc.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    return str(tmp_path)


def _champion(version: str):
    from skintwin.model.loaded import LoadedModel

    return LoadedModel("skin-twin-detector", version, "champion", "local", Path("best.pt"), None)


def test_a_performance_alert_is_raised_again_when_it_says_more(project: str) -> None:
    """After one fall alerted, the same fall is ongoing, but a slice and figure it did not
    name, a fall `estimate_drop` deeper than alerted, or a new version's fall alert again."""
    from tasks.alert_tasks import raise_performance_alert

    steps = [
        ("3", [("all", "recall", 0.06)], True),
        ("3", [("all", "recall", 0.06)], False),  # the same fall, next window
        ("3", [("all", "recall", 0.09)], False),  # a little deeper: the same condition
        ("3", [("all", "recall", 0.06), ("dark", "recall", 0.08)], True),  # recall on dark
        ("3", [("all", "recall", 0.12), ("dark", "recall", 0.08)], True),  # 0.06 deeper
        ("4", [("all", "recall", 0.12), ("dark", "recall", 0.08)], True),  # a new champion
        ("4", [("all", "recall", 0.12)], False),
    ]
    for version, falls, alerts in steps:
        estimate = {
            "available": True,
            "slices": {},
            "falls": [{"slice": s, "figure": f, "drop": d, "now": 0.9 - d} for s, f, d in falls],
        }
        alert = raise_performance_alert.fn(project, estimate, MONITOR, "all", _champion(version))
        assert (alert is not None) is alerts, (version, falls)
        if alert:
            assert alert["summary"].startswith(f"skin-twin-detector v{version}: ")
            assert alert["details"]["model"] == {"name": "skin-twin-detector", "version": version}


def test_a_new_champion_s_drift_alerts_on_its_own(project: str) -> None:
    from skintwin.monitoring.monitor import ModelMonitor
    from tasks.alert_tasks import raise_drift_alert

    result = {
        "enough_data": True,
        "drift_detected": True,
        "drift_share": 0.25,
        "drifted_columns": ["brightness", "contrast", "sharpness"],
        "n_columns": 12,
        "moved": {"acquisition": ["brightness", "contrast", "sharpness"]},
        "scores": {},
    }
    raised = [
        raise_drift_alert.fn(project, result, MONITOR, "clinic-a", _champion(v)) is not None
        for v in ("3", "3", "4", "4")
    ]
    assert raised == [True, False, True, False]
    ongoing = ModelMonitor(project_dir=project).store.ongoing_alerts(0.0)
    assert [a["key"] for a in ongoing] == ["data_drift:clinic-a"]


def test_the_artifact_says_which_alert_was_raised_and_which_is_ongoing() -> None:
    """A de-duplicated alert once read "Alert: none" beside a drift and a fall."""
    from skintwin.monitoring.summaries import alert_line

    result = {"drift_detected": True, "performance": {"falls": [{"slice": "dark"}]}}
    raised = {"drift": None, "performance": {"severity": "warning", "id": "abc"}}
    assert alert_line(result, raised) == (
        "Alerts: drift ongoing (alerted within `monitor.dedup_hours`); performance warning (abc)"
    )
    calm = {"drift_detected": False, "performance": {"falls": []}}
    assert alert_line(calm, {"drift": None, "performance": None}) == "Alerts: none"


def test_the_demo_says_ongoing_for_a_drift_alerted_already() -> None:
    """A second `make demo` printed "alert=-" beside a critical drift alerted minutes ago."""
    from skintwin.ops.demo import alert_shown

    drifted = {"drift_detected": True}
    assert alert_shown({"alert": None, "result": drifted}) == "ongoing"
    assert alert_shown({"alert": {"severity": "critical"}, "result": drifted}) == "critical"
    assert alert_shown({"alert": None, "result": {"drift_detected": False}}) is None


def test_a_drift_hovering_at_the_share_alerts_once(project: str) -> None:
    """2 of 12 columns, then 1, then 2 again: it was cleared and raised every other window.
    A window clears it only when nothing moved and every test ran."""
    from tasks.alert_tasks import raise_drift_alert

    def window(columns: list[str], embedding: bool = True) -> dict:
        share = len(columns) / 12
        return {
            "enough_data": True,
            "drift_detected": share >= MONITOR.drift_share,
            "drift_share": share,
            "drifted_columns": columns,
            "n_columns": 12,
            "moved": {"acquisition": columns} if columns else {},
            "scores": {},
            "embedding": {"available": embedding},
            "within_groups": {"tests": 4},
        }

    two, one = ["brightness", "contrast"], ["brightness"]
    plan = [two, one, two, ([], False), two, [], two]
    raised = []
    for step in plan:
        columns, embedding = step if isinstance(step, tuple) else (step, True)
        raised.append(
            raise_drift_alert.fn(project, window(columns, embedding), MONITOR, "c") is not None
        )
    assert raised == [True, False, False, False, False, False, True]
