"""Fault tests: killed training, MLflow down at registration, a new registry opened by
several processes at once, killed store writer, full disk."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skintwin.params import load_params
from tests.conftest import REPO, MlflowServer, dvc, run

MONITOR = load_params(REPO / "params.yaml").monitor

pytestmark = pytest.mark.slow
NAME = "skin-twin-detector"


def _env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def test_training_killed_mid_run_restarts_cleanly(project: Path, prefect_api) -> None:
    import yaml
    from mlflow.tracking import MlflowClient

    from flows.training import training_flow

    assert training_flow(project_dir=str(project))["decision"]["promote"]
    champion = MlflowClient().get_model_version_by_alias(NAME, "champion").version
    before = (project / "models/train/run.json").read_text()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = 30
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "train"],
        cwd=project,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not list((project / "models").glob(".train.tmp-*/yolo/weights")):
        assert time.time() < deadline and proc.poll() is None, "training never started"
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # like an OOM kill or a lost machine
    proc.wait()

    # DVC removed the old output before running; nothing half-written took its place
    assert not (project / "models/train").exists()
    assert "train" in dvc("status", cwd=project).stdout  # DVC knows train is stale
    dvc("checkout", "models/train", cwd=project)  # and the last good one is in its cache
    assert (project / "models/train/run.json").read_text() == before
    assert MlflowClient().get_model_version_by_alias(NAME, "champion").version == champion
    assert len(MlflowClient().search_model_versions(f"name='{NAME}'")) == 1

    params["train"]["epochs"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    again = training_flow(project_dir=str(project))
    assert again["candidate"]["new"] is True
    assert not list((project / "models").glob(".train.tmp-*"))  # leftovers cleaned
    assert "Data and pipelines are up to date" in dvc("status", cwd=project).stdout


def test_mlflow_down_at_registration_fails_clearly(
    project: Path, tmp_path: Path, monkeypatch
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from skintwin.errors import SkinTwinError
    from skintwin.project import ProjectPaths
    from skintwin.registry import promotion

    server = MlflowServer(tmp_path / "server")
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        mlflow.set_tracking_uri(server.url)
        dvc("repro", cwd=project)
        paths = ProjectPaths(project)
        assert promotion.gate(paths, promotion.register(paths))["promote"]
        run(["git", "commit", "-qam", "x", "--allow-empty"], cwd=project)
        import yaml

        params = yaml.safe_load((project / "params.yaml").read_text())
        params["train"]["epochs"] = 2
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        dvc("repro", cwd=project)
    finally:
        server.stop()
    with pytest.raises(SkinTwinError, match="unreachable"):
        promotion.register(paths)
    registry = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}")
    versions = registry.search_model_versions(f"name='{NAME}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert str(registry.get_model_version_by_alias(NAME, "champion").version) == "1"


def _write_forever(url: str, ack: str) -> None:  # a child process
    from skintwin.monitoring.store import PredictionStore

    store = PredictionStore(url)
    n = 0
    while True:
        store.log_many(
            [{"ts": float(n + i), "model_name": "m", "model_version": "1"} for i in range(200)]
        )
        n += 200
        # acknowledged only after the commit returned; replaced atomically so that a kill
        # between truncate and write cannot leave an empty acknowledgement behind
        with open(f"{ack}.tmp", "w") as fh:
            fh.write(str(n))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(f"{ack}.tmp", ack)


def test_a_promotion_cut_off_before_its_record_is_finished_by_the_retry(
    project: Path, monkeypatch
) -> None:
    """MLflow fails while the gate tags its decision, after `champion` moved (the move and
    its history event are one step; the record comes after). The task's retry records the
    decision that moved it, from the event, instead of gating the version against itself
    ("no champion yet"), which lost the comparison that promoted it and logged a second
    move of the champion onto itself."""
    import json

    from skintwin.project import ProjectPaths
    from skintwin.registry import aliases, client, promotion

    dvc("repro", cwd=project)
    paths = ProjectPaths(project)
    candidate = promotion.register(paths)
    version = str(candidate["version"])
    real = client.record_decision

    def cut_off(*args, **kwargs):
        monkeypatch.setattr(client, "record_decision", real)  # only the first call fails
        raise RuntimeError("MLflow answered 503 while tagging")

    monkeypatch.setattr(client, "record_decision", cut_off)
    with pytest.raises(RuntimeError, match="503"):
        promotion.gate(paths, candidate)
    assert str(client.alias_version(NAME, client.CHAMPION).version) == version
    assert "gate.decision" not in client.get_version(NAME, version).tags

    again = promotion.gate(paths, candidate)  # the retry
    assert again["promote"] and again["resumed"]
    moves = [e for e in aliases.history(project).events(NAME) if e.alias == client.CHAMPION]
    assert [(m.to_version, m.action) for m in moves] == [(version, "promote")]
    tags = client.get_version(NAME, version).tags
    assert tags["gate.decision"] == "promoted" and "model_card" in tags
    assert tags["gate.reasons"] == "; ".join(json.loads(moves[0].record)["reasons"])
    assert aliases.verify(project, NAME) == []


def test_store_writer_killed_mid_batch_loses_no_acknowledged_row(tmp_path: Path) -> None:
    import multiprocessing as mp

    from skintwin.monitoring.store import PredictionStore

    url, ack = f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "ack"
    PredictionStore(url)
    proc = mp.get_context("spawn").Process(target=_write_forever, args=(url, str(ack)))
    proc.start()
    deadline = time.time() + 60
    while (not ack.exists() or int(ack.read_text() or 0) < 2000) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    acknowledged = int(ack.read_text())
    with sqlite3.connect(tmp_path / "p.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = PredictionStore(url).count()
    assert count >= acknowledged and count % 200 == 0  # whole batches only


def _open_store(root: str) -> None:
    from mlflow.tracking import MlflowClient

    from skintwin.training.tracking import configure_tracking

    configure_tracking(Path(root))
    MlflowClient().search_registered_models(max_results=1)


def test_processes_opening_a_new_registry_at_once_all_succeed(tmp_path: Path, monkeypatch) -> None:
    """The train step and the flow measuring the champion beside it both open a registry
    that does not exist yet; MLflow's table creation, run by both, used to collide."""
    import multiprocessing as mp

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the embedded default
    procs = [
        mp.get_context("spawn").Process(target=_open_store, args=(str(tmp_path),))
        for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 256 KiB tmpfs: a real ENOSPC, not a simulated one."""
    mount = tmp_path / "full"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_on_report_folder_is_a_clear_error(full_disk: Path) -> None:
    import numpy as np
    import pandas as pd

    from skintwin.errors import SkinTwinError
    from skintwin.monitoring.drift import run_drift

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"brightness": rng.normal(0, 1, 3000), "contrast": rng.normal(0, 1, 3000)})
    cur = ref + 1.0
    out = full_disk / "drift" / "20260101T000000-all"
    with pytest.raises(SkinTwinError, match="cannot write the drift report"):
        run_drift(ref, cur, MONITOR, out_dir=out)
    assert not out.exists()  # nothing half-written
    assert not list((full_disk / "drift").glob(".*tmp-*"))
