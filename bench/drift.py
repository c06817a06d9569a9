"""The drift alarm's error rates, counted over seeded windows of generated production images
scored by a real trained detector: how often a window with no shift raises an alarm, and
how often each kind of shift is caught and what the alarm says moved."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pandas as pd

from bench.common import Row

SIZES = {
    "small": {"images": 200, "calm": 10, "seeds": 3},
    "default": {"images": 200, "calm": 20, "seeds": 10},
}
# Each shift and what an alarm should say moved (`names.DRIFT_KINDS`).
EXPECTED = {
    "lighting": "acquisition",
    "blur": "acquisition",
    "resolution": "acquisition",
    "cast": "acquisition",
    "tone": "tone mix",
    "lesions": "prediction mix",
}


def _window(model, params, monitor, work: Path, shift: str, seed: int, n: int) -> pd.DataFrame:
    from skintwin.monitoring.records import store_frame
    from skintwin.monitoring.scoring import plan_batch, score_batch
    from skintwin.steps.generate import run_generate

    folder = work / f"{shift}-{seed}"
    gen = params.generate.model_copy(update={"n_images": n, "seed": 10_000 + seed})
    run_generate(folder, gen, shift=shift, labels=False, workers=params.preprocess.workers)
    batch = plan_batch(folder / "images", shift)
    rows = score_batch(model, batch, monitor.conf, monitor.imgsz, 10**8)
    return store_frame(pd.DataFrame(rows))


def _estimator_doc(project: Path, params, monitor) -> dict:
    """The version's estimator document, fitted as the evaluate stage fits it."""
    from skintwin.training.estimator import fit_for_version
    from skintwin.training.evaluation import evaluate_weights

    weights, data = project / "models/train/weights/best.pt", project / "data/processed"
    test = evaluate_weights(weights, data, params.evaluate, "mAP50", params.train.device)
    device = params.train.device
    doc = fit_for_version(
        weights, data, params.evaluate, device, test, monitor.conf, monitor.imgsz
    )
    print(f"drift bench: estimator available={doc['available']}")
    return doc


def alarms(project: Path, work: Path, s: dict) -> dict[str, list[dict]]:
    """Per shift ("none" too): one entry per window, {"severity", "moved", "falls"}: the
    drift alarm and the label-free performance estimate's."""
    from skintwin.model.loaded import LoadedModel
    from skintwin.monitoring.alerts import severity
    from skintwin.monitoring.drift import check_drift
    from skintwin.monitoring.performance import estimate_window
    from skintwin.monitoring.reference import reference_frame
    from skintwin.params import load_params
    from skintwin.project import ProjectPaths

    params = load_params(project / "params.yaml")
    # predictions at the size the model was evaluated at (the bench model is a small one)
    monitor = params.monitor.model_copy(update={"imgsz": params.evaluate.imgsz})
    model = LoadedModel.from_weights(project / "models/train/weights/best.pt")
    reference = reference_frame(ProjectPaths(project), model, monitor)
    doc = _estimator_doc(project, params, monitor)
    plan = [("none", k) for k in range(s["calm"])]
    plan += [(shift, k) for shift in EXPECTED for k in range(s["seeds"])]
    out: dict[str, list[dict]] = {}
    for shift, seed in plan:
        current = _window(model, params, monitor, work, shift, seed, s["images"])
        result = check_drift(reference, current, monitor)
        falls = [
            f"{f['figure']}@{f['slice']}" for f in estimate_window(doc, current, monitor)["falls"]
        ]
        verdict = {"severity": severity(result, monitor), "moved": result["moved"], "falls": falls}
        out.setdefault(shift, []).append(verdict)
        print(f"drift bench: {shift:10} seed {seed}: {verdict}", flush=True)
    return out


def run(work: Path, size: str, project: Path) -> list[Row]:
    from bench.gate import _model

    s = SIZES[size]
    work.mkdir(parents=True, exist_ok=True)
    project = _model(
        work, project
    )  # a detector that finds lesions: prediction mix means something
    start = time.perf_counter()
    found = alarms(project, work, s)
    windows = sum(map(len, found.values()))
    print(f"drift bench: {windows} windows in {time.perf_counter() - start:.0f} s")
    calm = found["none"]
    drift_false = sum(1 for v in calm if v["severity"])
    any_false = sum(1 for v in calm if v["severity"] or v["falls"])
    rows = [
        Row(
            f"no shift: windows with any alarm ({any_false} of {len(calm)}; drift alone "
            f"{drift_false})",
            any_false,
            "",
            target=f"≤ {max(1, len(calm) // 20)} of {len(calm)}",
            ok=any_false <= max(1, len(calm) // 20),
        )
    ]
    for shift, kind in EXPECTED.items():
        runs = found[shift]
        caught = sum(1 for v in runs if v["severity"])
        named = sum(1 for v in runs if v["severity"] and kind in v["moved"])
        wrong = Counter(k for v in runs if v["severity"] for k in v["moved"] if k != kind)
        also = ", ".join(f"{k} {n}" for k, n in sorted(wrong.items())) or "none"
        fell = sum(1 for v in runs if v["falls"])
        also += f"; estimate fell {fell}"
        rows.append(
            Row(
                f"{shift}: alarm naming {kind} ({named} of {len(runs)}; also: {also})",
                100 * named / len(runs),
                "%",
                100 * caught / len(runs),
                "any alarm",
                "≥ 90%",
                named / len(runs) >= 0.9,
            )
        )
    return rows
