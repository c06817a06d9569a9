"""Background processes on loopback: wait for health, stop a process group, free ports, and
the launchers the tests and benchmarks share (the service, an MLflow server, load clients)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from skintwin.errors import SkinTwinError


def wait_http(url: str, timeout: float = 90.0, gone: Callable[[], bool] | None = None) -> None:
    """Return once `url` answers 200; SkinTwinError after `timeout` seconds, or as soon as
    `gone()` says the process that was to answer has exited."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if gone is not None and gone():
            raise SkinTwinError(f"exited before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SkinTwinError(f"{url} did not answer within {timeout:.0f} s")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, and that this process was not
    given before: the OS hands a port just closed out again (8 repeats in 500 calls), and
    two servers given ports in a row, before either listens, then took the same one."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no TCP port on 127.0.0.1 left that this process was not given")


def tcp_port(text: str) -> int | None:
    """`text` as a TCP port (1–65535), or None: the OS takes 99999 modulo 65536."""
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    """Whether the process group led by `pid` still runs (reaping our own zombie)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_group(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace_s`."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline and alive(pid):
            time.sleep(0.2)
        if not alive(pid):
            return


def bin_path(name: str) -> str:
    """A console script of this environment (prefect, mlflow, dvc, yolo, skintwin)."""
    return str(Path(sys.executable).parent / name)


def start_service(project: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """`skintwin serve` on 127.0.0.1:port for `project`, healthy when this returns."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "skintwin",
                "serve",
                "--port",
                str(port),
                "--project-dir",
                str(project),
            ],
            env=dict(os.environ, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=120)
    except SkinTwinError:
        proc.terminate()
        raise SkinTwinError(f"service did not start:\n{log.read_text()[-2000:]}") from None
    return proc


class MlflowServer:
    """A real `mlflow server` on loopback with a SQLite backend; stop() frees its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                bin_path("mlflow"),
                "server",
                *("--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}"),
                *("--artifacts-destination", str(workdir / "artifacts")),
                *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_http(f"{self.url}/health")

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_group(self.proc.pid, grace_s=30.0)
            self.proc.wait()


async def load_clients(url: str, images: list[bytes], n: int, seconds: float) -> dict:
    """`n` keep-alive clients posting as fast as answered for `seconds` (the load bench and
    the overload test): statuses, latencies (ms) of the 200s, and whether every 503/429
    carried Retry-After."""
    import asyncio
    from collections import Counter

    import httpx

    statuses: Counter = Counter()
    latencies: list[float] = []
    retry_ok = True
    stop = time.perf_counter() + seconds

    async def client(k: int, c: httpx.AsyncClient) -> None:
        nonlocal retry_ok
        i = k
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                r = await c.post(url, content=images[i % len(images)])
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            statuses[r.status_code] += 1
            if r.status_code == 200:
                latencies.append((time.perf_counter() - t) * 1000)
            elif r.status_code in (429, 503):
                retry_ok &= "retry-after" in r.headers
                await asyncio.sleep(min(1.0, float(r.headers.get("retry-after", 1))) / 4)
            i += 1

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c:
        await asyncio.gather(*(client(k, c) for k in range(n)))
    return {"statuses": statuses, "latencies": sorted(latencies), "retry_after": retry_ok}
