"""The local control plane: Prefect server, MLflow server, work pool, deployments, worker.

    skintwin up        # start everything on loopback, deploy prefect.yaml (make up)
    skintwin down      # stop everything, free the ports (make down)
    skintwin status

Servers run in the background with their logs and pids under `.ops/`. Ports and stores
come from the environment, so a team moves to shared servers by configuration only:
SKINTWIN_PREFECT_PORT (4200), SKINTWIN_MLFLOW_PORT (5000), SKINTWIN_MLFLOW_BACKEND
(default `sqlite:///<project>/mlflow.db`, e.g. a postgresql:// URL) and
SKINTWIN_MLFLOW_ARTIFACTS (default `<project>/mlartifacts`, e.g. s3://bucket/mlflow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.ops import pidfiles
from skintwin.ops.processes import alive, bin_path, port_free, stop_group, tcp_port, wait_http
from skintwin.ops.team import TeamServices, require_packages
from skintwin.project import ProjectPaths

POOL = "skin-twin-local"
PROFILES = ("local", "team")
SERVICES = ("worker", "prefect-server", "mlflow-server", "s3-server")  # stopped in this order


@dataclass(frozen=True)
class Plane:
    """Where the control plane of a project lives."""

    root: Path
    prefect_port: int
    mlflow_port: int
    profile: str = "local"  # or "team": PostgreSQL + S3 (skintwin.ops.team)

    @property
    def state(self) -> Path:
        return ProjectPaths(self.root).ops_state

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
        env["PREFECT_HOME"] = str(ProjectPaths(self.root).prefect_home)  # not the user's
        if self.profile == "team":
            env.update(self.team().env())
        return env

    def team(self) -> TeamServices:
        return TeamServices.configured(self.state)


def plane(
    root: Path,
    prefect_port: int | None = None,
    mlflow_port: int | None = None,
    profile: str | None = None,
) -> Plane:
    """The plane of `root`; the profile is the one given, else the one running, else
    $SKINTWIN_PROFILE, else local."""
    root = root.resolve()
    if profile is None:
        running = (ProjectPaths(root).ops_state / "team.json").is_file()
        profile = "team" if running else os.environ.get("SKINTWIN_PROFILE") or "local"
    if profile not in PROFILES:
        raise SkinTwinError(f"profile: {profile!r} is not one of {', '.join(PROFILES)}")
    return Plane(
        root,
        prefect_port or _port("SKINTWIN_PREFECT_PORT", 4200),
        mlflow_port or _port("SKINTWIN_MLFLOW_PORT", 5000),
        profile,
    )


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable) or str(default)
    if (port := tcp_port(value)) is None:
        raise SkinTwinError(f"{variable}: {value!r} is not a TCP port (1–65535)")
    return port


def _spawn(p: Plane, name: str, cmd: list[str]) -> int:
    p.state.mkdir(parents=True, exist_ok=True)
    log = (p.state / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        cmd, cwd=p.root, env=p.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )  # its own process group: stop kills all
    pidfiles.record(p.state / f"{name}.pid", proc.pid)
    return proc.pid


def _wait(url: str, timeout: float, name: str, p: Plane) -> None:
    """Until `url` answers; an error as soon as the process exits (a port in use, say),
    with the last line of its log, not after `timeout`."""
    pid, log = pidfiles.ours(p.state / f"{name}.pid"), p.state / f"{name}.log"
    try:
        wait_http(url, timeout, gone=lambda: pid is None or not alive(pid))
    except SkinTwinError as exc:
        said = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = f" ({said[-1].strip()[:300]})" if said else ""
        raise SkinTwinError(f"{name}: {exc}{last}; see {log}") from None


def _run(p: Plane, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=p.root, env=p.env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SkinTwinError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def start_servers(p: Plane) -> None:
    """Prefect and MLflow servers on loopback, healthy when this returns."""
    paths, env = ProjectPaths(p.root), p.env()
    backend = env.get("SKINTWIN_MLFLOW_BACKEND") or f"sqlite:///{paths.mlflow_db}"
    artifacts = env.get("SKINTWIN_MLFLOW_ARTIFACTS") or str(paths.mlartifacts)
    _spawn(
        p,
        "prefect-server",
        [
            bin_path("prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(p.prefect_port),
        ],
    )
    _spawn(
        p,
        "mlflow-server",
        [
            bin_path("mlflow"),
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
    # names from JSON: the table cuts them to the terminal's width ("skin-twin-lo…")
    pools = json.loads(_run(p, bin_path("prefect"), "work-pool", "ls", "--output", "json"))
    if POOL not in {pool.get("name") for pool in pools}:
        _run(p, bin_path("prefect"), "work-pool", "create", POOL, "--type", "process")
    _run(p, bin_path("prefect"), "--no-prompt", "deploy", "--all")


def start_worker(p: Plane) -> None:
    _spawn(p, "worker", [bin_path("prefect"), "worker", "start", "--pool", POOL])


def start_team_services(p: Plane) -> None:
    """The team profile's PostgreSQL cluster and S3 API, ready when this returns."""
    require_packages()
    team = p.team()
    team.start_database(p.state)
    _spawn(p, "s3-server", [bin_path("moto_server"), "-H", "127.0.0.1", "-p", str(team.s3_port)])
    _wait(f"{team.s3_endpoint}/moto-api/", 60, "s3-server", p)
    team.prepare_storage(p.root, p.env())


def up(p: Plane, worker: bool = True) -> dict:
    """Start the plane; refused while it runs or its ports are taken, and what a failed
    or interrupted start started is stopped again (it once left servers no command knew)."""
    running = [name for name in SERVICES if pidfiles.ours(p.state / f"{name}.pid")]
    if running:
        raise SkinTwinError(f"already running: {', '.join(running)}; `skintwin down` first")
    taken = [str(port) for port in (p.prefect_port, p.mlflow_port) if not port_free(port)]
    if taken:
        raise SkinTwinError(f"port {', '.join(taken)} on 127.0.0.1 is in use by another program")
    try:
        if p.profile == "team":
            start_team_services(p)
        start_servers(p)
        deploy(p)
        if worker:
            start_worker(p)
    except BaseException:
        down(p)
        raise
    return status(p)


def down(p: Plane) -> list[str]:
    """Stop every process `up` started (worker first); returns their names."""
    stopped = []
    for name in SERVICES:
        pid_file = p.state / f"{name}.pid"
        pid = pidfiles.ours(pid_file)  # never a pid the system gave another process since
        if pid is not None:
            stop_group(pid)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    if p.team().stop_database(p.state):
        p.team().release_remote(p.root)
        stopped.append("postgres")
    return stopped


def status(p: Plane) -> dict:
    out = {
        "prefect_ui": f"http://127.0.0.1:{p.prefect_port}",
        "mlflow_ui": p.mlflow_uri,
        "work_pool": POOL,
        "profile": p.profile,
    }
    for name in SERVICES:
        pid = pidfiles.ours(p.state / f"{name}.pid")
        out[name] = "running" if pid is not None and alive(pid) else "stopped"
    return out
