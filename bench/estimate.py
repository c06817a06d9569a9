"""The label-free performance estimate against the truth: labelled production batches
under shifts of several kinds and strengths, each scored for real (its labels) and by the
estimator fitted on the model's validation split, overall and per tone group."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.common import Row

SIZES = {
    "small": {"images": 200, "seeds": 1, "min_group": 30},
    "default": {"images": 300, "seeds": 2, "min_group": 30},
}
BATCHES = (
    "none", "lighting-mild", "lighting", "bright", "blur-mild", "blur", "blur-strong",
    "cast", "cast-strong", "resolution", "resolution-low", "tone", "lesions",
)  # fmt: skip
DROP = 0.10  # a true fall of this much below the test value must be flagged
FLAG = 0.05  # flagged: the estimate falls this much below the estimate on the test split
MODES = ("prior", "candidates", "max")  # how the estimator counts the lesions it cannot see


def _fit(project: Path):
    from skintwin.data.dataset import read_names
    from skintwin.params import load_params
    from skintwin.training.detstats import DetectionStats
    from skintwin.training.estimator import Estimator
    from skintwin.training.validator import run_val

    params = load_params(project / "params.yaml")
    weights = project / "models/train/weights/best.pt"
    data = project / "data/processed"
    _, names = read_names(data / "data.yaml")
    split = {}
    for name in ("val", "test"):
        rows = run_val(weights, data, params.evaluate, params.train.device, split=name).rows
        split[name] = DetectionStats.from_rows(rows)
    import os

    floor = float(os.environ.get("SKINTWIN_ESTIMATOR_FLOOR", "0.25"))
    return Estimator.fit(split["val"], names, floor), split["test"], params, weights


def points(project: Path, work: Path, s: dict) -> tuple[list[dict], dict]:
    """One point per (batch, slice): true and estimated figures; and the test split's."""
    from skintwin.ops.gatesim import labelled_detections
    from skintwin.training.estimator import true_figures

    estimator, test, params, weights = _fit(project)
    base = {"true": true_figures(test)}
    for mode in MODES:
        base[mode] = estimator.estimate_stats(test, n_boot=50, count=mode)
    shown = {k: round(v["value"], 3) for k, v in base[MODES[0]].items() if k != "images"}
    print(f"estimate bench: test split true {base['true']} estimated {shown}")
    out = []
    for shift in BATCHES:
        for seed in range(s["seeds"]):
            stats, groups, _ = labelled_detections(
                weights, params, s["images"], 500 + seed, work, shift
            )
            slices = {"all": np.arange(len(stats))}
            for g in sorted(set(groups)):
                members = np.flatnonzero(np.array(groups) == g)
                if members.size >= s["min_group"]:
                    slices[g] = members
            for name, members in slices.items():
                sub = stats.subset(members)
                point = {"batch": f"{shift}/{seed}", "slice": name, "true": true_figures(sub)}
                for mode in MODES:
                    est = estimator.estimate_stats(sub, n_boot=50, count=mode)
                    point[mode] = {k: est[k]["value"] for k in ("mAP50", "precision", "recall")}
                out.append(point)
                t, e = point["true"], point[MODES[0]]
                print(
                    f"estimate bench: {shift:14} {name:12} n={len(members):3} true/est "
                    f"mAP50 {t['mAP50']:.3f}/{e['mAP50']:.3f} "
                    f"recall {t['recall']:.3f}/{e['recall']:.3f}"
                )
    return out, base


def run(work: Path, size: str, project: Path) -> list[Row]:
    from bench.gate import _model

    s = SIZES[size]
    work.mkdir(parents=True, exist_ok=True)
    project = _model(work, project)
    start = time.perf_counter()
    found, base = points(project, work, s)
    print(f"estimate bench: {len(found)} points in {time.perf_counter() - start:.0f} s")
    rows = []
    for mode in MODES:
        for metric in ("mAP50", "recall"):
            rows += _rows(found, base, mode, metric)
    return rows


def _rows(found: list[dict], base: dict, mode: str, metric: str) -> list[Row]:
    from scipy.stats import spearmanr

    true = np.array([p["true"][metric] for p in found])
    est = np.array([p[mode][metric] for p in found])
    mae = float(np.mean(np.abs(true - est)))
    rho = float(spearmanr(true, est).statistic)
    start = base[mode][metric]["value"]
    dropped = [p for p in found if p["true"][metric] <= base["true"][metric] - DROP]
    flagged = [p for p in dropped if p[mode][metric] <= start - FLAG]
    calm = [p for p in found if p["true"][metric] > base["true"][metric] - FLAG]
    false = [p for p in calm if p[mode][metric] <= start - FLAG]
    rate = 100 * len(flagged) / len(dropped) if dropped else float("nan")
    name = f"{mode}: {metric}"
    return [
        Row(f"{name} mean abs error ({len(found)} points)", mae, "", target="≤ 0.05",
            ok=mae <= 0.05),
        Row(f"{name} Spearman rho vs true", rho, "", target="≥ 0.8", ok=rho >= 0.8),
        Row(f"{name} drop ≥ {DROP} flagged ({len(flagged)} of {len(dropped)}; false "
            f"{len(false)} of {len(calm)})", rate, "%", target="≥ 90%",
            ok=bool(dropped) and rate >= 90),
    ]  # fmt: skip
