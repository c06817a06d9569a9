"""The promotion gate's error rates on real detections of the benchmark's trained model:
equivalent candidates (re-drawn as another seed would) and candidates that lose a third of
their true positives on the dark group, each judged by the real gate, counts printed."""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import Row

SIZES = {"small": {"images": 360, "reps": 100}, "default": {"images": 540, "reps": 200}}


def run(work: Path, size: str, project: Path) -> list[Row]:
    from skintwin.ops.gatesim import above, labelled_detections
    from skintwin.params import load_params
    from skintwin.registry.simulation import gate_rates

    s = SIZES[size]
    params = load_params(project / "params.yaml")
    weights = project / "models/train/weights/best.pt"
    work.mkdir(parents=True, exist_ok=True)
    stats, groups, names = labelled_detections(weights, params, s["images"], 5, work)
    promote = params.promote.model_copy(update={"bootstrap": 200})
    start = time.perf_counter()
    r = gate_rates(above(stats, 0.01), groups, names, promote, s["reps"], sigma=1.5)
    print(f"gate simulation: {r} in {time.perf_counter() - start:.0f} s")
    n = r.reps
    per_group = s["images"] // 6

    def rate(label: str, k: int, target: float) -> Row:
        return Row(
            f"gate: {label} ({k} of {n})",
            100 * k / n,
            "%",
            target=f"≥ {target:.0f}%",
            ok=100 * k / n >= target,
        )

    return [
        rate("equivalent not blocked for fairness", r.equivalent_not_blocked, 95),
        rate("equivalent not promoted as better", r.equivalent_not_promoted, 90),
        rate(f"dark loses 1/3 of TPs: blocked, n={per_group}", r.degraded_blocked, 90),
    ]
