"""Prefect task that reproduces one DVC stage: DVC decides whether it is stale, Prefect runs it."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_write_bytes

_RAN = re.compile(r"^Running stage '([^']+)'")
_SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")


def stage_env() -> dict[str, str]:
    """The environment for stage commands: this interpreter first on PATH, run ids passed on."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SKINTWIN_FLOW_RUN_ID"] = str(flow_run.get_id() or "")
    return env


@task(cache_policy=NO_CACHE, name="reproduce-stage", task_run_name="dvc repro {stage}")
def reproduce_stage(
    stage: str, root: str, force: bool = False, started: queue.SimpleQueue | None = None
) -> dict:
    """`dvc repro <stage>` (and any stale upstream stage), its output forwarded to the run log.

    `started`, when given, receives True as soon as DVC starts running `stage` itself, or
    False once the task ends without having started it (up to date, or failed before).

    Returns:
        {"stage", "ran": [stages run], "skipped": [stages found unchanged], "seconds"}.
    """
    logger = get_run_logger()
    start = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "dvc",
        "repro",
        stage,
        *(["--force", "--single-item"] if force else []),
    ]
    ran, skipped = [], []
    try:
        _follow(cmd, root, stage, ran, skipped, started)
    finally:
        if started is not None and stage not in ran:
            started.put(False)
    if stage in skipped:
        logger.info("stage '%s' is up to date: DVC skipped it", stage)
    seconds = round(time.perf_counter() - start, 2)
    return {"stage": stage, "ran": ran, "skipped": skipped, "seconds": seconds}


def _follow(cmd, root, stage, ran, skipped, started) -> None:
    """Run `cmd`, forwarding its lines to the run log and noting the stages run and skipped."""
    logger = get_run_logger()
    tail: list[str] = []
    with subprocess.Popen(
        cmd,
        cwd=root,
        env=stage_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        for raw in proc.stdout:
            # Progress bars redraw with carriage returns: keep only the final state of a line.
            line = raw.rstrip("\n").split("\r")[-1].replace("\x1b[K", "").rstrip()
            if not line:
                continue
            if m := _RAN.match(line):
                ran.append(m.group(1))
                if started is not None and m.group(1) == stage:
                    started.put(True)
            if m := _SKIPPED.match(line):
                skipped.append(m.group(1))
            tail = [*tail[-40:], line]
            logger.info(line)
    if proc.returncode != 0:
        raise SkinTwinError(
            f"dvc repro {stage} failed (exit {proc.returncode}):\n" + "\n".join(tail)
        )


# What a new dataset's `dvc repro validate preprocess` changes before it fails: params.yaml
# (its `data.path`), the lock, and the stages' git-kept reports, which DVC deletes before
# it runs a stage (uncached outputs: no `dvc checkout` brings them back).
KEPT = (
    "params.yaml",
    "dvc.lock",
    "reports/validate/data_report.json",
    "reports/preprocess/split_report.json",
)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """The `KEPT` files' bytes (None: absent), for `put_back`."""
    return {name: (root / name).read_bytes() if (root / name).is_file() else None for name in KEPT}


def put_back(root: Path, before: dict[str, bytes | None], stages: tuple[str, ...]) -> None:
    """The project as it was at `snapshot`: the `KEPT` files, then the cached outputs of
    `stages` DVC removed (`data/processed`) from its cache, as far as it holds them."""
    for name, data in before.items():
        if data is None:
            (root / name).unlink(missing_ok=True)
        else:
            atomic_write_bytes(root / name, data)
    subprocess.run(
        [sys.executable, "-m", "dvc", "checkout", "--quiet", *stages],
        cwd=root, env=stage_env(), capture_output=True, check=False,
    )  # fmt: skip
