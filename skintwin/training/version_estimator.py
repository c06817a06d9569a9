"""The label-free estimator a registered version carries (`estimator.json`), fitted in the
evaluate stage: the method is `estimator.py`, this is where its data come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skintwin.errors import SkinTwinError
from skintwin.training.detstats import DetectionStats
from skintwin.training.estimator import FIGURES, Estimator, slices, true_figures


def fit_for_version(
    weights, dataset, params, device: str, test, operating_conf: float, imgsz: int,
    min_images: int = 30, runs=None,
) -> dict:  # fmt: skip
    """The estimator a registered version carries (`estimator.json`): fitted on the
    service's detections on the validation split (`served`), with its estimate beside the
    true value on the test split, overall and per tone group with `min_images`: the
    baseline a production window is compared with, and the anchor of its estimate there
    (`anchor`: the half-width of the true value's 95% interval, what anchoring adds to the
    window's uncertainty). A model too weak to fit one gets {"available": False,
    "reason"} and monitoring says so. `runs` (a `served.ServedRuns`) shares the service's
    passes with the evaluate stage's other steps."""
    from skintwin.training.served import ServedRuns, served_stats
    from skintwin.training.validator import run_val

    dataset, runs = Path(dataset), runs or ServedRuns(imgsz)
    capture = run_val(weights, dataset, params, device, split="val")
    truth = true_figures(DetectionStats.from_rows(capture.rows), operating_conf)
    val_images = sorted((dataset / "images" / "val").iterdir())
    served = served_stats(weights, val_images, dataset / "labels" / "val", capture.names,
                          operating_conf, imgsz, runs)  # fmt: skip
    try:
        estimator = Estimator.fit(served, capture.names, operating_conf, truth)
    except SkinTwinError as exc:
        return {"available": False, "reason": str(exc)}
    test_images = [dataset / f for f in test.stats.files]
    served_test = served_stats(weights, test_images, dataset / "labels" / "test",
                               capture.names, operating_conf, imgsz, runs)  # fmt: skip
    baseline = {}
    for name, members in slices(test.groups, min_images).items():
        est = estimator.estimate_stats(served_test.subset(members), operating_conf, n_boot=200)
        baseline[name] = {
            "images": int(members.size),
            "true": true_figures(test.stats.subset(members), operating_conf),
            "estimate": {k: est[k] for k in FIGURES},
            "anchor": truth_halfwidths(test.stats.subset(members), operating_conf),
        }
    return {"available": True, "operating_conf": operating_conf, "imgsz": imgsz,
            "estimator": estimator.to_dict(), "test": baseline}  # fmt: skip


def truth_halfwidths(stats: DetectionStats, operating_conf: float, n_boot: int = 200,
                     seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Half the width of each true figure's 95% bootstrap interval over these images: how
    well a labelled slice of this size pins its own mAP50, precision and recall down."""
    from skintwin.training.uncertainty import interval, resamples, weighted_map

    weights = resamples(len(stats), n_boot, seed).astype(float)
    on, tp = stats.conf >= operating_conf, stats.tp[:, 0]
    precision, recall = [], []
    for k in np.unique(stats.gt_cls):
        mine = on & (stats.pred_cls == k)
        hits = weights[:, stats.det_image[mine & tp]].sum(axis=1)
        found = weights[:, stats.det_image[mine]].sum(axis=1)
        lesions = weights[:, stats.gt_image[stats.gt_cls == k]].sum(axis=1)
        with np.errstate(all="ignore"):
            precision.append(np.where(found > 0, hits / found, np.nan))
            recall.append(np.where(lesions > 0, hits / lesions, np.nan))
    with np.errstate(all="ignore"):
        samples = {
            "mAP50": weighted_map(stats, weights, "mAP50"),
            "precision": np.nanmean(precision, axis=0) if precision else np.zeros(n_boot),
            "recall": np.nanmean(recall, axis=0) if recall else np.zeros(n_boot),
        }
    out = {}
    for name, values in samples.items():
        lo, hi = interval(values)
        out[name] = round((hi - lo) / 2, 6) if np.isfinite(hi - lo) else 0.0
    return out
