"""Throwaway copies of this project, for the tests and the benchmarks: the code, dvc.yaml
and a params.yaml of the caller's, in their own git + DVC repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

SOURCE = Path(__file__).resolve().parents[2]  # the checkout this package runs from


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's environment first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=check)


def scratch_project(root: Path, params: dict, with_flows: bool = False) -> Path:
    """A copy of the project at `root`: its own git repo, DVC, params and MLflow database.

    with_flows also copies flows/, tasks/ and prefect.yaml, for `prefect deploy`.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "change_control.yaml", "model_card.yaml"):
        shutil.copy(SOURCE / name, root / name)
    packages = ("skintwin", "flows", "tasks") if with_flows else ("skintwin",)
    for package in packages:
        shutil.copytree(
            SOURCE / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copytree(SOURCE / "models" / "pretrained", root / "models" / "pretrained")  # a dep
    if with_flows:
        shutil.copy(SOURCE / "prefect.yaml", root / "prefect.yaml")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], cwd=root)
    run(["git", "config", "user.email", "ci@example.com"], cwd=root)
    run(["git", "config", "user.name", "ci"], cwd=root)
    dvc("init", "-q", cwd=root)
    dvc("config", "core.analytics", "false", cwd=root)
    for name in (".gitignore", ".dvcignore"):
        shutil.copy(SOURCE / name, root / name)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "project"], cwd=root)
    return root
