"""An increasing isotonic regression, as the knots of a piecewise-linear curve.

Pool adjacent violators over the distinct x values, in numpy: the estimator's calibration
curves are its only use, and importing scikit-learn for it cost the evaluate stage about
2 s of its critical path. The knots are those scikit-learn's `IsotonicRegression` keeps
(`X_thresholds_`, `y_thresholds_`), so a curve reads the same either way (`np.interp`,
clipped at the ends)."""

from __future__ import annotations

import numpy as np


def isotonic_knots(
    x: np.ndarray, y: np.ndarray, lo: float = 0.0, hi: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares non-decreasing fit of `y` on `x`, clipped to [`lo`, `hi`]: the
    distinct x values where the fitted curve bends, and its values there."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.size == 0 or x.size != y.size:
        raise ValueError(f"isotonic fit: {x.size} x values and {y.size} y values")
    xs, where, counts = np.unique(x, return_inverse=True, return_counts=True)
    means = np.bincount(where, weights=y) / counts  # ties: one point, their mean
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for mean, weight in zip(means.tolist(), counts.tolist(), strict=True):
        size = 1
        while values and values[-1] >= mean:  # a violator: pool it with the block before
            value, pooled = values.pop(), weights.pop()
            mean = (value * pooled + mean * weight) / (pooled + weight)
            weight += pooled
            size += sizes.pop()
        values.append(mean)
        weights.append(weight)
        sizes.append(size)
    fitted = np.clip(np.repeat(values, sizes), lo, hi)
    keep = np.ones(fitted.size, dtype=bool)  # drop the middle points of flat runs
    keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return xs[keep], fitted[keep]
