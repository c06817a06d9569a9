"""Which processes `skintwin up` started: each pid file holds the pid and the process's
start time, so that `down` and `status` never take a pid the system gave to another
process since for one of ours (`down` once killed whatever process group a stale file
named), and a damaged file is a stale one, not a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from skintwin.io import atomic_write_json

# what each service runs, to recognise a pid file written before start times were kept
PROGRAMS = {
    "worker": "prefect",
    "prefect-server": "prefect",
    "mlflow-server": "mlflow",
    "s3-server": "moto_server",
}


def record(path: Path, pid: int) -> None:
    """Keep `pid` and its start time in `path` (written whole, or not at all)."""
    atomic_write_json(path, {"pid": pid, "started": psutil.Process(pid).create_time()})


def ours(path: Path) -> int | None:
    """The pid `path` names, if that process still runs and is the one `up` started."""
    try:
        text = path.read_text().strip()
        doc = json.loads(text) if text.startswith("{") else {"pid": int(text)}
        pid, started = int(doc["pid"]), doc.get("started")
        proc = psutil.Process(pid)
        if started is not None:
            return pid if abs(proc.create_time() - float(started)) < 0.01 else None
        program = PROGRAMS.get(path.stem, path.stem)  # an older file: the pid alone
        return pid if any(program in part for part in proc.cmdline()) else None
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None  # no file, a damaged one, a process gone or not ours
