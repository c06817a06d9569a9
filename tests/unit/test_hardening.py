"""Hardening findings that need no trained model: outputs that would replace folders they do
not own, the store locked past its busy timeout, settings that used to crash later, masked
credentials, the webhook that could hold a run, ongoing alerts (issue #11)."""

from __future__ import annotations

import copy
import importlib.util
import json
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from skintwin.errors import SkinTwinError
from skintwin.params import load_params, parse_params
from tests.conftest import REPO, write_dataset

MONITOR = load_params(REPO / "params.yaml").monitor


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 1, one `error:` line naming what is at fault, no traceback."""
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(w in errors[0] for w in words), errors[0]


# ---- 1. an output folder never replaces one it does not own --------------------------------


def test_preprocess_refuses_an_output_folder_that_holds_its_input(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    dataset = write_dataset(tmp_path / "D" / "ds", n=6)
    (tmp_path / "D" / "notes.txt").write_text("a user's own file")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = _cli(
        *("-m", "skintwin.steps.preprocess", "--data", str(dataset), "--out", "D"),
        *("--params", str(params)),
        cwd=tmp_path,
    )
    _one_line_error(proc, "holds the input")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    # `--out .` is the project itself: refused before any work, nothing left behind
    proc = _cli(
        *("-m", "skintwin.steps.preprocess", "--data", str(dataset), "--out", "."),
        *("--params", str(params)),
        cwd=tmp_path,
    )
    _one_line_error(proc, "holds the input")
    assert not list(tmp_path.parent.glob(".*.tmp-*")) and not list(tmp_path.glob(".*tmp-*"))


def test_generate_refuses_a_folder_it_does_not_own_and_reuses_its_own(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["generate"].update(n_images=4, image_size=64)
    params.write_text(yaml.safe_dump(raw))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    gen = ("-m", "skintwin.steps.generate", "--params", str(params), "--out")
    _one_line_error(_cli(*gen, "mine", cwd=tmp_path), "not empty", "generate")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    for _ in range(2):  # its own earlier output is replaced, as `dvc repro` expects
        assert _cli(*gen, "demo", cwd=tmp_path).returncode == 0
    assert len(list((tmp_path / "demo" / "images").iterdir())) == 4
    assert (tmp_path / "demo").stat().st_mode & 0o777 == 0o755  # not left private
    assert (tmp_path / "demo" / "data.yaml").stat().st_mode & 0o777 == 0o644


# ---- 2. the store locked past its busy timeout: nothing acknowledged is dropped ---------------


def test_locked_store_spills_to_the_journal_and_replays(tmp_path: Path, monkeypatch) -> None:
    from skintwin.monitoring.monitor import ModelMonitor

    monkeypatch.setenv("SKINTWIN_STORE_BUSY_TIMEOUT_S", "0.3")
    url = f"sqlite:///{tmp_path / 'p.db'}"
    monitor = ModelMonitor(url, project_dir=REPO, batch_size=100)
    monitor.journal.folder = tmp_path / "journal"  # keep the repo's .monitoring untouched
    lock = sqlite3.connect(tmp_path / "p.db")
    lock.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    for i in range(5):
        monitor.log_prediction({"detections": []}, model_name="m", image_ref=f"img{i}")
    assert monitor.flush() == 0  # not written now ...
    assert monitor.journal.spilled == 5 and monitor.journal.pending() == 5  # ... but kept
    lock.rollback()
    lock.close()
    assert monitor.replay_journal() == 5
    assert monitor.replay_journal() == 0  # replayed once
    assert monitor.store.count() == 5 and monitor.journal.pending() == 0


def test_a_replay_repeated_after_a_crash_never_doubles_rows(tmp_path: Path) -> None:
    from skintwin.monitoring.journal import Journal
    from skintwin.monitoring.records import prediction_row
    from skintwin.monitoring.store import PredictionStore

    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    rows = [prediction_row({"detections": []}, model_name="m") for _ in range(3)]
    journal = Journal(tmp_path / "journal")
    path = journal.spill(rows)
    store.log_many(rows)  # written, but the process died before deleting the file
    assert path.is_file()
    journal.replay(store.log_many)
    assert store.count() == 3


def test_a_claim_is_aged_from_its_claim_not_its_spill(tmp_path: Path) -> None:
    """Rows spilled during an outage of more than the stale-claim age (600 s): a second
    replayer (the service's poll thread beside a request's flush) took a live claim for a
    dead one, renamed it back, and the first replay failed on its vanished file. That
    failure ended the poll loop: no champion reload and no replay ever again."""
    import os
    import time

    from skintwin.monitoring.journal import Journal
    from skintwin.monitoring.records import prediction_row
    from skintwin.monitoring.store import PredictionStore

    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    journal = Journal(tmp_path / "journal")
    path = journal.spill([prediction_row({"detections": []}, model_name="m") for _ in range(3)])
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))  # spilled an hour ago, replayed now
    other = Journal(journal.folder)
    seen: list[int] = []

    def write_while_another_replays(rows: list[dict]) -> None:
        seen.append(other.replay(store.log_many))  # finds only the live claim
        store.log_many(rows)

    assert journal.replay(write_while_another_replays) == 3
    assert seen == [0] and store.count() == 3 and journal.pending() == 0


def test_journal_files_that_vanish_while_listed_are_not_an_error(tmp_path: Path) -> None:
    """A replay deletes files while /metrics counts them; a file listed and gone by the time
    it is read (here a dangling link, gone for good) counts as nothing rather than a 500."""
    from skintwin.monitoring.journal import Journal
    from skintwin.monitoring.records import prediction_row
    from skintwin.monitoring.store import PredictionStore

    journal = Journal(tmp_path / "journal")
    journal.spill([prediction_row({"detections": []}, model_name="m") for _ in range(2)])
    gone = journal.folder / "1.0-1-gone.jsonl"
    gone.symlink_to(journal.folder / "replayed.jsonl")
    (journal.folder / ".claimed-1-2.0-1-gone.jsonl").symlink_to(journal.folder / "nowhere")
    assert journal.pending() == 2
    gone.unlink()  # the claim left behind still has to be passed over by the replay
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    assert journal.replay(store.log_many) == 2 and store.count() == 2


# ---- 6. an explicit project folder without dvc.yaml is an error -----------------------------


def test_project_dir_without_dvc_yaml_is_an_error(tmp_path: Path) -> None:
    proc = _cli("-m", "skintwin", "--project-dir", str(tmp_path / "nope"), "where", cwd=REPO)
    _one_line_error(proc, "no dvc.yaml here")
    proc = _cli("-m", "skintwin", "where", cwd=tmp_path, SKINTWIN_HOME=str(tmp_path))
    _one_line_error(proc, "SKINTWIN_HOME")


# ---- 9. the webhook cannot hold the run, break it, or fill memory ----------------------------


class _Webhook(BaseHTTPRequestHandler):
    mode = "trickle"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if _Webhook.mode == "trickle":  # headers one byte every 0.5 s, for ever
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * 1000:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.5)
        else:  # a huge body
            self.send_response(200)
            self.send_header("Content-Length", str(3 * 2**30))
            self.end_headers()
            chunk = b"x" * 2**20
            for _ in range(3 * 2**10):
                self.wfile.write(chunk)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def _raise(tmp_path: Path, monkeypatch, url: str) -> tuple[dict, float]:
    from skintwin.monitoring.alerts import raise_alert
    from skintwin.monitoring.store import PredictionStore

    monkeypatch.setenv("SKINTWIN_ALERT_WEBHOOK", url)
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    params = MONITOR.model_copy(update={"webhook_timeout_s": 1.0, "webhook_retries": 1})
    start = time.perf_counter()
    alert = raise_alert(store, tmp_path, "data_drift", "critical", "s", {}, "k", params)
    return alert, time.perf_counter() - start


def test_a_trickling_webhook_is_cut_off_and_the_alert_file_is_written(
    tmp_path: Path, monkeypatch, webhook: str
) -> None:
    _Webhook.mode = "trickle"
    alert, seconds = _raise(tmp_path, monkeypatch, webhook)
    assert seconds < 6  # 2 attempts × 1 s + 1 s back-off, not "as long as it likes"
    assert alert["webhook"]["delivered"] is False and "Timeout" in alert["webhook"]["error"]
    files = list(tmp_path.glob("*-data_drift-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["webhook"]["delivered"] is False


def test_a_huge_webhook_answer_is_not_read(tmp_path: Path, monkeypatch, webhook: str) -> None:
    import resource

    _Webhook.mode = "huge"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    alert, _ = _raise(tmp_path, monkeypatch, webhook)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100 and alert is not None and len(list(tmp_path.glob("*.json"))) == 1


def test_a_malformed_webhook_url_is_recorded_not_raised(tmp_path: Path, monkeypatch) -> None:
    alert, _ = _raise(tmp_path, monkeypatch, "https://host:443x/T")
    assert alert["webhook"]["delivered"] is False and alert["webhook"]["error"]
    assert len(list(tmp_path.glob("*-data_drift-*.json"))) == 1


# ---- 11. credentials are masked everywhere ---------------------------------------------------


def test_store_errors_and_where_mask_the_password(tmp_path: Path) -> None:
    from skintwin.monitoring.store import PredictionStore

    for url in (
        "postgresql+psycopg://alice:s3cret@127.0.0.1:1/db",
        "mysql+nodriver://alice:s3cret@127.0.0.1/db",
    ):
        with pytest.raises(SkinTwinError) as err:
            PredictionStore(url)
        assert "s3cret" not in str(err.value) and "alice:***@" in str(err.value)
    proc = _cli(
        "-m",
        "skintwin",
        "where",
        cwd=REPO,
        SKINTWIN_MONITOR_DB="postgresql+psycopg://alice:s3cret@127.0.0.1:1/db",
        MLFLOW_TRACKING_URI="http://bob:hunter2@127.0.0.1:1",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )
    assert "s3cret" not in proc.stdout + proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr


def test_a_missing_driver_says_how_to_install_it() -> None:
    """A URL whose driver is not installed (MySQL's here; PostgreSQL's is a dev extra)."""
    from skintwin.monitoring.store import PredictionStore

    if importlib.util.find_spec("pymysql") is not None:
        pytest.skip("pymysql is installed here: no missing driver to name")
    with pytest.raises(SkinTwinError, match=r"pip install 'pymysql'"):
        PredictionStore("mysql+pymysql://u:p@127.0.0.1:1/db")


# ---- 13. a suppressed duplicate keeps the alert on for CI ------------------------------------


def test_an_ongoing_critical_drift_keeps_failing_ci(tmp_path: Path) -> None:
    """A daily check against a 24 h de-duplication window: the second day's run is
    suppressed, and `skintwin alerts --fail-on critical` must still fail."""
    from skintwin.monitoring.store import PredictionStore

    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    day = 24 * 3600
    assert store.claim_alert("drift:all", "critical", 2, time.time() - day + 60, day)
    assert not store.claim_alert("drift:all", "critical", 2, time.time(), day)  # suppressed
    ongoing = store.ongoing_alerts(time.time() - 3600)
    assert [(c["key"], c["severity"]) for c in ongoing] == [("drift:all", "critical")]


# ---- settings accepted before, crashing later -------------------------------------------------


@pytest.mark.parametrize(
    ("dotted", "value", "named"),
    [
        ("monitor.cat_method", "wasserstein", "monitor.cat_method"),
        ("monitor.num_method", "fisher_exact", "monitor.num_method"),
        ("monitor.per_column", {"tone_group": {"method": "ks", "threshold": 0.1}}, "tone_group"),
        ("monitor.per_column", {"shoe_size": {"method": "ks", "threshold": 0.1}}, "shoe_size"),
        ("generate.seed", -1, "generate.seed"),
        ("monitor.webhook_timeout_s", float("inf"), "monitor.webhook_timeout_s"),
        ("monitor.window_hours", float("nan"), "monitor.window_hours"),
    ],
)
def test_settings_that_crashed_later_fail_at_load(
    base_params: dict, dotted: str, value: object, named: str
) -> None:
    raw = copy.deepcopy(base_params)
    section, key = dotted.split(".")
    raw[section][key] = value
    with pytest.raises(SkinTwinError) as err:
        parse_params(raw)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_non_utf8_params_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_bytes((REPO / "params.yaml").read_bytes().replace(b"seed: 7", b"seed: 7 # \xff"))
    with pytest.raises(SkinTwinError, match="not UTF-8"):
        load_params(bad)


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["-m", "skintwin.steps.generate", "--out", "x", "--n-images", "0"], {}, "n_images"),
        (["-m", "skintwin", "drift", "--window-hours", "0"], {}, "--window-hours"),
        (["-m", "skintwin", "alerts", "--since-hours", "nan"], {}, "--since-hours"),
        (["-m", "skintwin", "serve"], {"SKINTWIN_RELOAD_INTERVAL_S": "0"}, "RELOAD_INTERVAL"),
        (["-m", "skintwin", "serve"], {"SKINTWIN_MAX_UPLOAD_MB": "nan"}, "MAX_UPLOAD_MB"),
    ],
)
def test_bad_command_line_values_fail_naming_the_field(
    tmp_path: Path, argv: list[str], env: dict, named: str
) -> None:
    proc = _cli(*argv, cwd=REPO, **env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert named in proc.stderr.splitlines()[-1], proc.stderr


def test_lineage_without_a_registry_creates_nothing(tmp_path: Path) -> None:
    from skintwin.ops.scratch import scratch_project

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    root = scratch_project(tmp_path / "p", raw)
    import os

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [sys.executable, "-m", "skintwin", "lineage"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    _one_line_error(proc, "no MLflow registry here yet")
    assert not (root / "mlflow.db").exists()
