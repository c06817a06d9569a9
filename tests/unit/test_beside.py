"""`runtime.Beside`: work in a forked second process, its answer or its error back."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skintwin.errors import SkinTwinError

SCRIPT = """
import os, signal, sys
from skintwin.errors import SkinTwinError
from skintwin.runtime import Beside

def where(x):
    return os.getpid(), x * 2

def fails():
    raise SkinTwinError("data/x.yaml: no test split")

def dies():
    os.kill(os.getpid(), signal.SIGKILL)

with Beside(where, 21) as job:
    pid, value = job.result()
    print("forked", job.forked, pid != os.getpid(), value)
with Beside(fails) as job:
    try:
        job.result()
    except SkinTwinError as exc:
        print("error", exc)
with Beside(dies) as job:
    try:
        job.result()
    except SkinTwinError as exc:
        print("died", exc)
import torch  # noqa: F401 - from here on a fork could hang: the work runs in this process
with Beside(where, 1) as job:
    pid, value = job.result()
    print("inline", job.forked, pid == os.getpid(), value)
"""


def test_beside_forks_and_brings_back_answers_and_errors() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    assert out == [
        "forked True True 42",
        "error data/x.yaml: no test split",
        "died dies: its process ended without an answer (exit code -9)",
        "inline False True 2",
    ]


def test_beside_runs_in_turn_once_torch_is_loaded() -> None:
    """In this test process PyTorch is loaded: the work runs here, errors as they are."""
    import torch  # noqa: F401

    from skintwin.runtime import Beside

    def fails() -> None:
        raise SkinTwinError("bad")

    with Beside(fails) as job, pytest.raises(SkinTwinError, match="bad"):
        assert not job.forked
        job.result()
