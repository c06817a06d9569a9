"""The promotion gate's error rates on real detections of the benchmark's trained model:
equivalent candidates (re-drawn as another seed would) and candidates that lose a third of
their true positives on the dark group, each judged by the real gate, counts printed."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.common import Row

SIZES = {"small": {"images": 360, "reps": 100}, "default": {"images": 540, "reps": 200}}


# A model good enough to simulate a gate on (test mAP50 near 0.9 in 20 epochs at 128 px),
# trained here when the training benchmark's model is too weak (the small size's is).
_GATE_MODEL = {"n_images": 400, "image_size": 128, "seed": 21, "epochs": 20, "imgsz": 128}
_MIN_MAP50 = 0.5
MILD = 1 / 8  # a loss of true positives near the tolerance


def _model(work: Path, project: Path) -> Path:
    """The project whose model the simulation uses: `project`, or a stronger one."""
    import yaml

    from skintwin.ops.scratch import SOURCE, dvc, scratch_project

    metrics = json.loads((project / "reports/evaluate/metrics.json").read_text())
    if metrics["test"]["mAP50"] >= _MIN_MAP50:
        return project
    if (work / "model" / "reports/evaluate/metrics.json").is_file():
        return work / "model"  # trained for the gate bench of this run; the drift bench's too
    m = _GATE_MODEL
    print(
        f"gate: the training benchmark's model has test mAP50 {metrics['test']['mAP50']:.2f}, "
        f"too weak to simulate a gate on; training a {m['epochs']}-epoch model for it"
    )
    params = yaml.safe_load((SOURCE / "params.yaml").read_text())
    params["generate"].update(n_images=m["n_images"], image_size=m["image_size"], seed=m["seed"])
    params["validate"]["min_images_per_class"] = 3
    params["preprocess"]["min_test_per_group"] = 0
    params["train"].update(epochs=m["epochs"], imgsz=m["imgsz"], workers=0, plots=False)
    params["evaluate"]["imgsz"] = m["imgsz"]
    root = scratch_project(work / "model", params)
    dvc("repro", "evaluate", cwd=root)
    return root


def run(work: Path, size: str, project: Path) -> list[Row]:
    from skintwin.ops.gatesim import above, labelled_detections
    from skintwin.params import load_params
    from skintwin.registry.simulation import gate_rates

    s = SIZES[size]
    work.mkdir(parents=True, exist_ok=True)
    project = _model(work, project)
    params = load_params(project / "params.yaml")
    weights = project / "models/train/weights/best.pt"
    stats, groups, names = labelled_detections(weights, params, s["images"], 5, work)
    promote = params.promote.model_copy(update={"bootstrap": 200})
    start = time.perf_counter()
    r = gate_rates(above(stats, 0.01), groups, names, promote, s["reps"], sigma=1.5)
    print(f"gate simulation: {r} in {time.perf_counter() - start:.0f} s")
    # a milder loss, which the tolerance (0.05) may or may not cover: how often it blocks
    mild = gate_rates(above(stats, 0.01), groups, names, promote, s["reps"], sigma=1.5,
                      fraction=MILD)  # fmt: skip
    print(f"gate simulation, dark loses {MILD:.0%} of its true positives: {mild}")
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
        Row(f"gate: dark loses 1/8 of TPs: blocked ({mild.degraded_blocked} of {n}; promoted "
            f"{n - mild.degraded_not_promoted}; this run's equivalents not blocked "
            f"{mild.equivalent_not_blocked})", 100 * mild.degraded_blocked / n, "%"),
    ]  # fmt: skip
