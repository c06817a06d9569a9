"""The local control plane: Prefect server, MLflow server, work pool, deployments, worker.

    python -m skintwin.ops up      # start everything on loopback, deploy prefect.yaml
    python -m skintwin.ops down    # stop everything, free the ports
    python -m skintwin.ops status

Servers run in the background with their logs and pids under `.ops/`. Ports and stores
come from the environment, so a team moves to shared servers by configuration only:
SKINTWIN_PREFECT_PORT (4200), SKINTWIN_MLFLOW_PORT (5000), SKINTWIN_MLFLOW_BACKEND
(default `sqlite:///<project>/mlflow.db`, e.g. a postgresql:// URL) and
SKINTWIN_MLFLOW_ARTIFACTS (default `<project>/mlartifacts`, e.g. s3://bucket/mlflow).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from skintwin.errors import SkinTwinError

POOL = "skin-twin-local"


@dataclass(frozen=True)
class Plane:
    """Where the control plane of a project lives."""

    root: Path
    prefect_port: int
    mlflow_port: int

    @property
    def state(self) -> Path:
        return self.root / ".ops"

    @property
    def prefect_api(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def env(self) -> dict[str, str]:
        """The environment of every command and of the worker's flow runs."""
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            {
                "PREFECT_API_URL": self.prefect_api,
                "PREFECT_SERVER_API_PORT": str(self.prefect_port),
                "PREFECT_UI_API_URL": self.prefect_api,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "MLFLOW_TRACKING_URI": self.mlflow_uri,
                "SKINTWIN_HOME": str(self.root),
            }
        )
        env["PREFECT_HOME"] = str(self.root / ".prefect")  # the project's runs, not the user's
        return env


def plane(root: Path, prefect_port: int | None = None, mlflow_port: int | None = None) -> Plane:
    return Plane(
        root.resolve(),
        prefect_port or int(os.environ.get("SKINTWIN_PREFECT_PORT", 4200)),
        mlflow_port or int(os.environ.get("SKINTWIN_MLFLOW_PORT", 5000)),
    )


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _spawn(p: Plane, name: str, cmd: list[str]) -> int:
    p.state.mkdir(parents=True, exist_ok=True)
    log = (p.state / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        cmd, cwd=p.root, env=p.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )  # its own process group: stop kills all
    (p.state / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def wait_http(url: str, timeout: float = 90.0) -> None:
    """Return once `url` answers 200; SkinTwinError after `timeout` seconds."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SkinTwinError(f"{url} did not answer within {timeout:.0f} s")


def _wait(url: str, timeout: float, name: str, p: Plane) -> None:
    try:
        wait_http(url, timeout)
    except SkinTwinError as exc:
        raise SkinTwinError(f"{name}: {exc}; see {p.state / (name + '.log')}") from None


def _run(p: Plane, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=p.root, env=p.env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SkinTwinError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def start_servers(p: Plane) -> None:
    """Prefect and MLflow servers on loopback, healthy when this returns."""
    backend = os.environ.get("SKINTWIN_MLFLOW_BACKEND", f"sqlite:///{p.root / 'mlflow.db'}")
    artifacts = os.environ.get("SKINTWIN_MLFLOW_ARTIFACTS", str(p.root / "mlartifacts"))
    _spawn(
        p,
        "prefect-server",
        [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(p.prefect_port)],
    )
    _spawn(
        p,
        "mlflow-server",
        [
            _bin("mlflow"),
            "server",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            artifacts,
            "--host",
            "127.0.0.1",
            "--port",
            str(p.mlflow_port),
            "--workers",
            "1",
        ],
    )
    _wait(f"{p.prefect_api}/health", 120, "prefect-server", p)
    _wait(f"{p.mlflow_uri}/health", 120, "mlflow-server", p)


def deploy(p: Plane) -> None:
    """Create the process work pool (if missing) and deploy every prefect.yaml deployment."""
    pools = _run(p, _bin("prefect"), "work-pool", "ls")
    if POOL not in pools:
        _run(p, _bin("prefect"), "work-pool", "create", POOL, "--type", "process")
    _run(p, _bin("prefect"), "--no-prompt", "deploy", "--all")


def start_worker(p: Plane) -> None:
    _spawn(p, "worker", [_bin("prefect"), "worker", "start", "--pool", POOL])


def up(p: Plane, worker: bool = True) -> dict:
    start_servers(p)
    deploy(p)
    if worker:
        start_worker(p)
    return status(p)


def down(p: Plane) -> list[str]:
    """Stop every process `up` started (worker first); returns their names."""
    stopped = []
    for name in ("worker", "prefect-server", "mlflow-server"):
        pid_file = p.state / f"{name}.pid"
        if not pid_file.is_file():
            continue
        pid = int(pid_file.read_text())
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + wait
            while time.time() < deadline and _alive(pid):
                time.sleep(0.2)
            if not _alive(pid):
                break
        pid_file.unlink(missing_ok=True)
        stopped.append(name)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):  # reap our own child if it is a zombie
        os.waitpid(pid, os.WNOHANG)
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def status(p: Plane) -> dict:
    out = {
        "prefect_ui": f"http://127.0.0.1:{p.prefect_port}",
        "mlflow_ui": p.mlflow_uri,
        "work_pool": POOL,
    }
    for name in ("prefect-server", "mlflow-server", "worker"):
        pid_file = p.state / f"{name}.pid"
        out[name] = (
            "running" if pid_file.is_file() and _alive(int(pid_file.read_text())) else "stopped"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    from skintwin.cli_util import run_main
    from skintwin.project import resolve_root

    parser = argparse.ArgumentParser(description="Local control plane.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--no-worker", action="store_true")
    args = parser.parse_args(argv)

    def body() -> None:
        p = plane(resolve_root())
        if args.command == "up":
            result = up(p, worker=not args.no_worker)
            print(json.dumps(result, indent=2))
            print(f"\nexport PREFECT_API_URL={p.prefect_api} MLFLOW_TRACKING_URI={p.mlflow_uri}")
        elif args.command == "down":
            print("stopped:", ", ".join(down(p)) or "nothing was running")
        else:
            print(json.dumps(status(p), indent=2))

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
