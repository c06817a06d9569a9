"""Untrusted inputs, fuzzed with Hypothesis on a real champion (issue #11): flow parameters
through the `skintwin` command and command-line values either work or stop with one line
naming the field — no traceback, nothing written outside the project, and a failed run
leaves the prediction store as it was. (params.yaml values: tests/unit/test_fuzz.py.)"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skintwin.ops.cli import main as skintwin

pytestmark = pytest.mark.slow
FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TEXT = st.text(st.characters(min_codepoint=1, exclude_categories=("Cs",)), max_size=120)
NAMES = st.one_of(
    st.sampled_from(["clinic-a", "a" * 64, "a" * 65, "..", ".", "x/../../../../tmp/p", "é"]),
    TEXT,
)


def _snapshot(folder: Path) -> set[Path]:
    return {p for p in folder.iterdir()}


def _run(argv: list[str]) -> tuple[int, str]:
    """The `skintwin` command in-process: exit code and what it wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = skintwin(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    return int(code or 0), err.getvalue()


def _check(code: int, stderr: str, fields: tuple[str, ...]) -> None:
    assert "Traceback" not in stderr, stderr
    if code:
        last = [line for line in stderr.splitlines() if "error" in line][-1]
        assert any(f in last for f in fields), last


@pytest.fixture(scope="module")
def small_batch(champion: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "two"
    folder.mkdir()
    for image in sorted((champion / "batches/normal/images").iterdir())[:2]:
        shutil.copy(image, folder)
    return folder


@FUZZ
@given(
    source=st.one_of(st.none(), NAMES), which=st.sampled_from(["two", "missing", "file", "text"])
)
def test_batch_flow_parameters(champion: Path, small_batch: Path, source, which: str) -> None:
    from skintwin.monitoring.monitor import ModelMonitor

    images = {
        "two": str(small_batch),
        "missing": str(small_batch.parent / "nope"),
        "file": str(next(small_batch.iterdir())),
        "text": "x/../../" + (source or "y"),
    }[which]
    store = ModelMonitor(project_dir=champion).store
    before, around = store.count(), _snapshot(champion.parent)
    argv = ["--project-dir", str(champion), "score", "--images", images]
    code, stderr = _run(argv + (["--source", source] if source is not None else []))
    _check(code, stderr, ("source", "images_dir"))
    assert _snapshot(champion.parent) == around  # nothing written beside the project
    assert code == 0 or store.count() == before


@FUZZ
@given(hours=st.one_of(TEXT, st.sampled_from(["0", "-1", "nan", "inf", "1e9", "24", "0.5"])))
def test_window_and_since_hours(champion: Path, hours: str) -> None:
    for argv in (
        ["--project-dir", str(champion), "alerts", "--since-hours", hours],
        ["--project-dir", str(champion), "drift", "--source", "nobody", "--window-hours", hours],
    ):
        code, stderr = _run(argv)
        _check(code, stderr, ("--since-hours", "--window-hours"))


@FUZZ
@given(version=st.one_of(TEXT, st.integers(-5, 10**6).map(str)))
def test_lineage_version(champion: Path, version: str) -> None:
    code, stderr = _run(["--project-dir", str(champion), "lineage", "--version", version])
    _check(code, stderr, ("version",))
