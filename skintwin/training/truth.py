"""What the label-free estimate is measured against: a slice's true figures from its labels,
and the slices (the whole window, each tone group large enough) that every estimate, its
baseline and its benchmark are made on."""

from __future__ import annotations

import numpy as np

from skintwin.names import TONE_GROUPS
from skintwin.training.detstats import DetectionStats

FIGURES = ("mAP50", "precision", "recall")


def true_figures(stats: DetectionStats, operating_conf: float = 0.25) -> dict:
    """What `Estimator.estimate` estimates, from the labels: mAP50 (Ultralytics'), and
    precision and recall at `operating_conf` (IoU 0.5), averaged over classes with boxes."""
    s = stats.summary()
    precision, recall = [], []
    for k in np.unique(stats.gt_cls):
        on = (stats.pred_cls == k) & (stats.conf >= operating_conf)
        tp = stats.tp[on, 0].sum()
        if on.any():  # a class the model claims nothing of has no precision to average
            precision.append(tp / on.sum())
        recall.append(tp / (stats.gt_cls == k).sum())
    return {  # nothing claimed at all: precision 0, as Ultralytics reports it (not NaN)
        "mAP50": s["mAP50"],
        "precision": float(np.mean(precision)) if precision else 0.0,
        "recall": float(np.mean(recall)) if recall else 0.0,
    }


def slices(groups: tuple[str, ...], min_images: int) -> dict[str, np.ndarray]:
    """ "all" and each tone group with at least `min_images` images: image indices. A row
    without a tone group (a photo whose features could not be read: "None") counts in
    "all" only, never as a group of its own held against the whole test split."""
    out = {"all": np.arange(len(groups))}
    names = np.array(groups)
    for g in sorted(set(groups) & set(TONE_GROUPS)):
        members = np.flatnonzero(names == g)
        if members.size >= min_images:
            out[g] = members
    return out
