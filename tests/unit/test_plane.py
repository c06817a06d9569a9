"""`skintwin up`, `down` and `status` know their own processes: a pid the system gave to
another process since is left alone, a taken port or a plane already up is refused before
anything starts, and a server that dies starting is reported at once, in its own words."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from skintwin.errors import SkinTwinError
from skintwin.ops import pidfiles
from skintwin.ops import plane as ops
from skintwin.ops.processes import alive, free_port


def _plane(tmp_path: Path, prefect_port: int | None = None) -> ops.Plane:
    return ops.Plane(tmp_path, prefect_port or free_port(), free_port())


def test_down_never_stops_a_process_it_did_not_start(tmp_path: Path) -> None:
    """The worker's pid, reused by another program: `down` killed that program's group."""
    p = _plane(tmp_path)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        p.state.mkdir(parents=True)
        (p.state / "worker.pid").write_text(str(other.pid))  # an old file: the pid alone
        (p.state / "mlflow-server.pid").write_text(f'{{"pid": {other.pid}, "started": 1.0}}')
        (p.state / "prefect-server.pid").write_text("")  # a write cut short
        assert ops.status(p)["worker"] == "stopped"
        assert ops.down(p) == [] and alive(other.pid)
        assert not list(p.state.glob("*.pid"))  # stale files go
    finally:
        other.kill()
        other.wait()


def test_up_refuses_while_its_processes_run_and_down_stops_them(tmp_path: Path) -> None:
    p = _plane(tmp_path)
    pid = ops._spawn(p, "worker", ["sleep", "60"])
    assert pidfiles.ours(p.state / "worker.pid") == pid
    assert ops.status(p)["worker"] == "running"
    with pytest.raises(SkinTwinError, match="already running: worker"):
        ops.up(p)
    assert ops.down(p) == ["worker"] and not alive(pid)


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        p = _plane(tmp_path, held.getsockname()[1])
        with pytest.raises(SkinTwinError, match=f"port {p.prefect_port} .* in use"):
            ops.up(p)
    assert not p.state.exists() or not list(p.state.glob("*.pid"))


def test_a_server_that_exits_while_starting_is_reported_at_once(tmp_path: Path) -> None:
    """It waited the whole 120 s for a server that had died on a taken port."""
    p = _plane(tmp_path)
    ops._spawn(p, "prefect-server", ["sh", "-c", "echo 'Port 4200 is already in use.'"])
    started = time.time()
    with pytest.raises(SkinTwinError, match=r"exited before .*\(Port 4200 is already in use\.\)"):
        ops._wait(f"http://127.0.0.1:{free_port()}/api/health", 120, "prefect-server", p)
    assert time.time() - started < 30


def test_a_port_variable_that_is_not_a_port_is_named(monkeypatch, tmp_path: Path) -> None:
    for value in ("abc", "5k", "99999", "0"):
        monkeypatch.setenv("SKINTWIN_MLFLOW_PORT", value)
        with pytest.raises(SkinTwinError, match=f"SKINTWIN_MLFLOW_PORT: '{value}' is not a TCP"):
            ops.plane(tmp_path)
    monkeypatch.setenv("SKINTWIN_MLFLOW_PORT", "5001")
    assert ops.plane(tmp_path).mlflow_port == 5001


def test_ctrl_c_and_a_port_out_of_range_are_answered_without_a_traceback(capsys) -> None:
    from skintwin.ops.cli import main
    from skintwin.runtime import run_main

    def interrupted() -> None:
        raise KeyboardInterrupt

    assert run_main(interrupted) == 130 and "interrupted" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # it listened on 99999 % 65536
        main(["serve", "--port", "99999"])
    assert "not a TCP port" in capsys.readouterr().err
