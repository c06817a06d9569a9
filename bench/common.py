"""Benchmark plumbing: sizes, timing, a results table with baselines and targets."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    """One figure beside its baseline from the same run."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    ok: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


@contextmanager
def stopwatch() -> dict:
    box: dict = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - start


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def table(rows: list[Row]) -> str:
    lines = [f"{'figure':46} {'value':>12} {'baseline':>24} {'ratio':>7}  {'target':14} ok"]
    for r in rows:
        base = f"{r.baseline:.3g} ({r.baseline_name})" if r.baseline is not None else "-"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        ok = {True: "yes", False: "NO", None: "-"}[r.ok]
        lines.append(
            f"{r.name:46} {r.value:>9.3g} {r.unit:2} {base:>24} {ratio:>7}  {r.target:14} {ok}"
        )
    return "\n".join(lines)


RESULTS = Path(__file__).parent / "results"  # what the benchmarks save (git ignores it)


def result_path(kind: str, size: str, out_dir: Path = RESULTS, suffix: str = ".json") -> Path:
    """A new file (or, `suffix` "", folder) of the results folder, named for what it holds
    and when it was run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{kind}-{size}-{time.strftime('%Y%m%dT%H%M%S')}{suffix}"


def save(rows: list[Row], size: str, out_dir: Path = RESULTS) -> Path:
    path = result_path("bench", size, out_dir)
    doc = {
        "size": size,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cores": __import__("os").cpu_count(),
        },
        "rows": [asdict(r) | {"ratio": r.ratio} for r in rows],
    }
    path.write_text(json.dumps(doc, indent=2))
    return path
