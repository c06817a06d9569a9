"""How sure a figure is: a bootstrap over test images, seeded and vectorised.

A resample draws the test images with replacement; it is a row of counts (how often each
image is drawn). AP over a resample weighs every detection and ground-truth box by its
image's count, with Ultralytics' AP (101-point interpolation of the precision envelope),
so all resamples are computed at once. Two models evaluated on the same images share the
resamples: that is the paired bootstrap that the promotion gate compares with.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist

import numpy as np

from skintwin.errors import SkinTwinError
from skintwin.training.detstats import DetectionStats

_GRID = np.linspace(0.0, 1.0, 101)
METRIC_IOUS = {"mAP50": [0], "mAP50-95": list(range(10))}
_BLOCK_CELLS = 4_000_000  # resample rows × detections computed at once (~100 MB of work)


def resamples(n_images: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_images) counts: each row one bootstrap draw of the images."""
    if n_images < 1:
        raise SkinTwinError("a bootstrap needs at least one image")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_boot)


def _interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """`np.interp(x, xp[r], fp[r])` for every row r at once (xp rows non-decreasing, from
    0); the same segment choice as NumPy's, so results agree to rounding."""
    rows, width = xp.shape
    reach = max(1.0, float(xp.max(initial=0.0)), float(x.max(initial=0.0))) + 1.0
    offset = np.arange(rows)[:, None] * reach  # puts each row in an interval of its own
    flat_xp = (xp + offset).ravel()
    q = (x[None, :] + offset).ravel()
    base = np.arange(rows).repeat(len(x)) * width  # where each query's row starts
    lo = np.searchsorted(flat_xp, q, side="right") - 1  # last point at or left of q
    hi = np.minimum(lo + 1, base + width - 1)
    x0, x1 = flat_xp[lo], flat_xp[hi]
    f0, f1 = fp.ravel()[lo], fp.ravel()[hi]
    span = np.where(x1 > x0, x1 - x0, 1.0)
    out = np.where(x1 > x0, f0 + (q - x0) * (f1 - f0) / span, f0)
    return out.reshape(rows, len(x))


def ap_rows(tp: np.ndarray, weights: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """AP per resample for one class at one IoU threshold.

    Args:
        tp: (D,) this class's detections sorted by descending confidence: true positive?
        weights: (B, D) each detection's count in each resample.
        n_gt: (B,) this class's ground-truth boxes in each resample.
    """
    rows, d = weights.shape
    # the detections seen are whole counts, exact in float32 (far below 2**24); true
    # positives may be fractional (the estimator's probabilities): float64. The curve is
    # written in place with Ultralytics' sentinels (precision falls to 0 after the last
    # detection) rather than stacked from copies: about twice as fast, the same APs.
    tpc = np.cumsum(weights * tp, axis=1, dtype=np.float64)
    seen = np.cumsum(weights, axis=1, dtype=np.float32)
    mrec = np.empty((rows, d + 3))
    mrec[:, 0] = 0.0
    np.divide(tpc, n_gt[:, None] + 1e-16, out=mrec[:, 1 : d + 1])
    mrec[:, d + 1] = mrec[:, d] if d else 1.0
    mrec[:, d + 2] = 1.0
    mpre = np.zeros((rows, d + 3))
    mpre[:, 0] = 1.0
    np.divide(tpc, seen, out=mpre[:, 1 : d + 1], where=seen > 0)
    mpre = np.maximum.accumulate(mpre[:, ::-1], axis=1)[:, ::-1]
    curve = _interp_rows(_GRID, mrec, mpre)
    return ((curve[:, 1:] + curve[:, :-1]) / 2 * np.diff(_GRID)).sum(axis=1)


def weighted_map(stats: DetectionStats, weights: np.ndarray, metric: str = "mAP50") -> np.ndarray:
    """mAP of each resample (rows of image counts): (B,), NaN where no class has boxes.

    Classes without ground truth in a resample drop out of its mean, as in Ultralytics.
    """
    if metric not in METRIC_IOUS:
        raise SkinTwinError(f"no bootstrap for metric {metric!r}; use {sorted(METRIC_IOUS)}")
    weights = np.atleast_2d(weights).astype(np.float32)  # counts: exact; halves the time
    # memory is a few (rows × detections) arrays: bound it by taking the rows in blocks
    block = max(1, _BLOCK_CELLS // max(1, len(stats.conf)))
    if len(weights) > block:
        return np.concatenate(
            [
                weighted_map(stats, weights[i : i + block], metric)
                for i in range(0, len(weights), block)
            ]
        )
    order = np.argsort(-stats.conf, kind="stable")
    classes = np.unique(stats.gt_cls)
    per_class = np.full((len(weights), len(classes)), np.nan)
    for k, c in enumerate(classes):
        n_gt = weights[:, stats.gt_image[stats.gt_cls == c]].sum(axis=1)
        sel = order[stats.pred_cls[order] == c]
        if sel.size == 0:  # never detected: AP 0, as `ap_per_class` (not compute_ap's 0.5)
            per_class[:, k] = np.where(n_gt > 0, 0.0, np.nan)
            continue
        aps = [_ap_to_last_hit(stats, sel, t, weights, n_gt) for t in METRIC_IOUS[metric]]
        per_class[:, k] = np.where(n_gt > 0, np.mean(aps, axis=0), np.nan)
    if not len(classes):
        return np.zeros(len(weights))
    # the mean over the classes present; NaN for a resample with none (np.nanmean's value,
    # without its "Mean of empty slice" warning, which np.errstate does not silence)
    present = (~np.isnan(per_class)).sum(axis=1)
    total = np.nansum(per_class, axis=1)
    return np.divide(total, present, out=np.full(len(weights), np.nan), where=present > 0)


def _ap_to_last_hit(stats: DetectionStats, sel: np.ndarray, t: int, weights, n_gt) -> np.ndarray:
    """`ap_rows` over a class's detections `sel` (by descending confidence) up to its last
    true positive at IoU column t. What follows it are false positives at the final recall:
    they never raise the precision envelope, so every AP is the same without them, and a
    model scored down to confidence 0.001 has thousands of them (often ~90%)."""
    hits = np.flatnonzero(stats.tp[sel, t])
    if hits.size == 0:
        return np.zeros(len(weights))
    keep = sel[: hits[-1] + 1]
    return ap_rows(stats.tp[keep, t], weights[:, stats.det_image[keep]], n_gt)


def interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap samples (NaNs ignored)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


def joined_interval(samples: np.ndarray, sd: float, confidence: float = 0.95) -> dict:
    """{"value": samples[0], "lo", "hi"}: the percentile interval of the bootstrap samples
    `samples[1:]` joined in quadrature with ±z·`sd`, an independent error (within [0, 1])."""
    value, (lo, hi) = float(samples[0]), interval(samples[1:], confidence)
    z = NormalDist().inv_cdf(0.5 + confidence / 2) * sd
    lo = value - np.hypot(max(value - lo, 0.0), z)  # NaN stays NaN
    hi = value + np.hypot(max(hi - value, 0.0), z)
    return {"value": value, "lo": float(np.clip(lo, 0, 1)), "hi": float(np.clip(hi, 0, 1))}


def bootstrap_interval(
    stats: DetectionStats, metric: str, n_boot: int, seed: int, confidence: float = 0.95
) -> dict:
    """{"lo", "hi"} of `metric` over these images (resampled n_boot times)."""
    samples = weighted_map(stats, resamples(len(stats), n_boot, seed), metric)
    lo, hi = interval(samples, confidence)
    return {"lo": round(lo, 5), "hi": round(hi, 5)}


def half_spread(
    stats: DetectionStats, figures: Callable[[DetectionStats], dict], draws: int = 40
) -> dict[str, float]:
    """The sampling error of `figures(stats)`, each figure's: its spread over random halves
    of the images (a delete-half jackknife, unscaled: for a mean-like figure the spread of
    half-sample values about the whole equals the whole set's own sampling error). Seeded;
    NaN halves (a half with nothing to measure) are passed over; {} below 4 images."""
    n = len(stats)
    if n < 4:
        return {}
    rng = np.random.default_rng(0)
    found: dict[str, list[float]] = {}
    for _ in range(draws):
        half = stats.subset(np.sort(rng.choice(n, n // 2, replace=False)))
        for name, value in figures(half).items():
            found.setdefault(name, []).append(value)
    with np.errstate(all="ignore"):
        spread = {name: float(np.nanstd(v, ddof=1)) for name, v in found.items()}
    return {name: round(v, 6) if np.isfinite(v) else 0.0 for name, v in spread.items()}
