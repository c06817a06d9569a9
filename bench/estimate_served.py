"""The estimate against what the service shows: the AP of its own labelled detections (a
second truth beside the validator's mAP50), and each class's row against its truth."""

from __future__ import annotations

import numpy as np

from bench.estimate_checks import OPERATING

SERVED = "served mAP50"  # the truth of what the service shows: its detections, labelled


def truth(served) -> float:
    """mAP50 of the service's own detections (at the operating confidence, one label per
    box, each matched to the labels: `training/served.py`): the precision-recall curve of
    what the service shows and stores, which the estimate is made from. The validator's
    mAP50 also counts detections down to 0.001, which production never sees; the gap
    between the two is mostly the curve below the operating point."""
    from skintwin.training.truth import true_figures

    return true_figures(served, OPERATING)["mAP50"]


def class_rows(estimated: dict, labelled, names: tuple[str, ...]) -> dict:
    """Each class's row of the estimate beside its truth in the same window: AP50 (the
    validator's) and recall at the operating confidence."""
    truth = labelled.summary()["classes"]
    out = {}
    for k, name in enumerate(names):
        lesions = int((labelled.gt_cls == k).sum())
        if name not in estimated or not lesions:
            continue
        on = (labelled.pred_cls == k) & (labelled.conf >= OPERATING)
        true = {"AP50": truth.get(k, {}).get("mAP50", 0.0),
                "recall": float(labelled.tp[on, 0].sum()) / lesions}  # fmt: skip
        out[name] = {"true": true, "est": {f: estimated[name][f] for f in true}}
    return out


def ranks(found: list[dict], mode: str) -> str:
    """How the mAP50 estimate ranks the AP of what the service shows, against how it ranks
    the validator's mAP50: where the two differ, the estimate's error is the curve below
    the operating point."""
    from scipy.stats import spearmanr

    mine = [p for p in found if SERVED in p]
    if len(mine) < 3:
        return "no served-only truth in these points"
    shown = [p[SERVED] for p in mine]
    full = [p["true"]["mAP50"] for p in mine]
    est = np.array([p[mode]["mAP50"] for p in mine])
    gap = np.mean(full) - np.mean(shown)
    return (f"mAP50 of what the service shows (its detections ≥ {OPERATING}, labelled): "
            f"the estimate's rho {spearmanr(shown, est).statistic:.3f} (against the "
            f"validator's mAP50 {spearmanr(full, est).statistic:.3f}); the two truths' rho "
            f"{spearmanr(shown, full).statistic:.3f}; mean gap {gap:.3f}")  # fmt: skip


def classes(found: list[dict]) -> str:
    """Each class's row against its truth over the whole batches: mean absolute error of
    recall and AP50, and the mean error of recall in the lesion-mix batches (most of the
    lesions moved to one class)."""
    rows: dict[str, list] = {}
    for p in found:
        for name, r in p.get("classes", {}).items():
            rows.setdefault(name, []).append((r["est"]["recall"] - r["true"]["recall"],
                                              r["est"]["AP50"] - r["true"]["AP50"],
                                              p["batch"].startswith("lesions/")))  # fmt: skip
    parts = []
    for name, v in rows.items():
        err = np.array(v, float)
        mix = err[err[:, 2] > 0, 0]
        moved = mix.mean() if mix.size else float("nan")
        parts.append(f"{name} recall MAE {np.abs(err[:, 0]).mean():.3f}, AP50 MAE "
                     f"{np.abs(err[:, 1]).mean():.3f}, lesion mix recall {moved:+.3f} "
                     f"({len(v)} batches)")  # fmt: skip
    return "each class's row, whole batches: " + ("; ".join(parts) or "none in these points")
