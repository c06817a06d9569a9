"""The label-free performance estimate against the truth: labelled production batches
under shifts of several kinds and strengths, each scored for real (its labels) and by the
estimate the drift flow reports, overall and per tone group — bare, and anchored on the
version's labelled test split as monitoring anchors it (`monitoring/performance.py`).

The model is the bench's own, with a large test split (~590 images, ~100 per tone group):
an anchored figure is only as good as the labelled slice it stands on, so the bench gives
every group one of the size a clinic would label to watch it. The demo's 13 test images a
group are too few for that; there the groups report the bare estimate.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench.common import Row

SIZES = {
    "small": {"images": 300, "seeds": 1, "min_group": 30},
    "default": {"images": 600, "seeds": 2, "min_group": 30},
}
BATCHES = (
    "none", "lighting-mild", "lighting", "bright", "blur-mild", "blur", "blur-strong",
    "cast", "cast-strong", "resolution", "resolution-low", "tone", "lesions",
)  # fmt: skip
DROP = 0.10  # a true fall of this much below the slice's test value must be flagged
FLAG = 0.05  # flagged: the estimate falls this much below its value on the test split
MODES = ("bare", "anchored")
OPERATING = 0.25  # production's confidence: the detections the store keeps
# ~520 images to train on, ~100 to validate, ~590 to test (the largest fraction allowed)
_MODEL = {"n_images": 1200, "image_size": 128, "seed": 21, "epochs": 20, "imgsz": 128,
          "val_fraction": 0.08, "test_fraction": 0.49}  # fmt: skip


def _project(work: Path) -> Path:
    """The bench's model: trained and evaluated by the pipeline (`dvc repro evaluate`)."""
    import yaml

    from skintwin.ops.scratch import SOURCE, dvc, scratch_project

    root = work / "model"
    if (root / "reports/evaluate/estimator.json").is_file():
        return root
    m = _MODEL
    params = yaml.safe_load((SOURCE / "params.yaml").read_text())
    params["generate"].update(n_images=m["n_images"], image_size=m["image_size"], seed=m["seed"])
    params["validate"]["min_images_per_class"] = 3
    params["preprocess"].update(val_fraction=m["val_fraction"], test_fraction=m["test_fraction"])
    params["train"].update(epochs=m["epochs"], imgsz=m["imgsz"], workers=0, plots=False)
    params["evaluate"]["imgsz"] = m["imgsz"]
    print(f"estimate bench: training its model ({m['epochs']} epochs, a test split of ~590)")
    scratch_project(root, params)
    dvc("repro", "evaluate", cwd=root)
    return root


def points(project: Path, work: Path, s: dict) -> tuple[list[dict], dict]:
    """One point per (batch, slice): the validator's true figures on the labelled images,
    the estimate from the service's detections on them, and that estimate anchored."""
    from skintwin.monitoring.performance import anchored
    from skintwin.ops.gatesim import labelled_detections
    from skintwin.params import load_params
    from skintwin.training.estimator import Estimator, slices, true_figures
    from skintwin.training.served import served_stats

    params = load_params(project / "params.yaml")
    weights = project / "models/train/weights/best.pt"
    doc = json.loads((project / "reports/evaluate/estimator.json").read_text())
    estimator, base = Estimator.from_dict(doc["estimator"]), doc["test"]
    for name, b in base.items():
        print(f"estimate bench: test split {name:12} n={b['images']:3} true "
              f"{ {k: round(v, 3) for k, v in b['true'].items()} }")  # fmt: skip
    out = []
    for shift in BATCHES:
        for seed in range(s["seeds"]):
            stats, groups, names = labelled_detections(
                weights, params, s["images"], 500 + seed, work, shift
            )
            folder = work / f"labelled-{shift}-{500 + seed}-{s['images']}"
            images = [folder / "images" / f for f in stats.files]
            served = served_stats(
                weights, images, folder / "labels", names, OPERATING, params.evaluate.imgsz
            )
            for name, members in slices(groups, s["min_group"]).items():
                if name not in base:
                    continue  # no labelled test slice to compare with
                est = estimator.estimate_stats(served.subset(members), OPERATING, n_boot=20)
                point = {"batch": f"{shift}/{seed}", "slice": name, "base": base[name],
                         "true": true_figures(stats.subset(members), OPERATING),
                         "bare": {f: est[f]["value"] for f in ("mAP50", "recall")}}  # fmt: skip
                point["anchored"] = {
                    f: anchored(est, base[name])[f]["value"] for f in ("mAP50", "recall")
                }
                out.append(point)
                t, e, a = point["true"], point["bare"], point["anchored"]
                print(
                    f"estimate bench: {shift:14} {name:12} n={len(members):3} true/bare/anchored"
                    f" mAP50 {t['mAP50']:.3f}/{e['mAP50']:.3f}/{a['mAP50']:.3f}"
                    f" recall {t['recall']:.3f}/{e['recall']:.3f}/{a['recall']:.3f}"
                )
    return out, base


def run(work: Path, size: str, project: Path | None = None) -> list[Row]:
    """`project` (the training bench's) is not used: this bench trains its own model."""
    s = SIZES[size]
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    found, _ = points(_project(work), work, s)
    print(f"estimate bench: {len(found)} points in {time.perf_counter() - start:.0f} s")
    rows = []
    for metric in ("mAP50", "recall"):
        for mode in MODES:
            rows += _accuracy(found, mode, metric)
        rows.append(_flagged(found, metric))
    return rows


def _accuracy(found: list[dict], mode: str, metric: str) -> list[Row]:
    from scipy.stats import spearmanr

    true = np.array([p["true"][metric] for p in found])
    est = np.array([p[mode][metric] for p in found])
    mae = float(np.mean(np.abs(true - est)))
    rho = float(spearmanr(true, est).statistic)
    name = f"{mode}: {metric}"
    return [
        Row(f"{name} mean abs error ({len(found)} points)", mae, "", target="≤ 0.05",
            ok=mae <= 0.05),
        Row(f"{name} Spearman rho vs true", rho, "", target="≥ 0.8", ok=rho >= 0.8),
    ]  # fmt: skip


def _flagged(found: list[dict], metric: str) -> Row:
    """A true fall of DROP below the slice's test value, flagged by the estimate falling
    FLAG below its own value on that test slice (the same decision bare or anchored)."""

    def fell(p: dict, by: float) -> bool:
        return p["true"][metric] <= p["base"]["true"][metric] - by

    def flagged(p: dict) -> bool:
        return p["bare"][metric] <= p["base"]["estimate"][metric]["value"] - FLAG

    dropped = [p for p in found if fell(p, DROP)]
    caught = [p for p in dropped if flagged(p)]
    calm = [p for p in found if not fell(p, FLAG)]
    false = [p for p in calm if flagged(p)]
    rate = 100 * len(caught) / len(dropped) if dropped else float("nan")
    return Row(
        f"{metric} drop ≥ {DROP} flagged ({len(caught)} of {len(dropped)}; false "
        f"{len(false)} of {len(calm)})", rate, "%", target="≥ 90%",
        ok=bool(dropped) and rate >= 90,
    )  # fmt: skip
