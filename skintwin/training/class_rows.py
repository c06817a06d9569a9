"""Each class's own row of the label-free estimate (the report's per-class table): how the
window's lesion count is split between the classes for it, and the row's figures."""

from __future__ import annotations

import numpy as np


def split(total: np.ndarray, implied: dict, mix: dict) -> dict:
    """A lesion count `total` split between the classes found (`implied`: class → the
    lesions its finds imply at its own validation coverage; `mix`: class → its lesions per
    validation image). Each class keeps what its finds imply (scaled down where they imply
    more than `total`), and the lesions no find accounts for go to the classes that fall
    short of their validation share of `total`, in proportion to the shortfall. So a class
    the model stops finding takes its own misses, not the others', and a class a window
    simply holds less of takes none (the estimate bench's lesion mix: acne's and moles'
    recall rows 0.6 low when counted from their validation rates). A class the validation
    split held none of has no share, so none of the misses: its row is what its finds
    imply, and may read high. Without `mix` (an older estimator) the misses go as the
    finds imply."""
    found = np.maximum(sum(implied.values(), 0 * total), 1e-9)
    missing = np.maximum(total - found, 0.0)
    expected = {k: total * m / sum(mix.values()) for k, m in mix.items()}
    short = {k: np.maximum(v - implied.get(k, 0.0), 0.0) for k, v in expected.items()}
    short_total = np.maximum(sum(short.values(), 0 * total), 1e-9)
    return {
        k: np.maximum(
            v * np.minimum(total / found, 1.0)
            + missing * (short.get(k, 0.0) / short_total if mix else v / found),
            1e-9,
        )
        for k, v in implied.items()
    }


def figures(ap: float, tp: float, found: float, lesions: float, offset: dict) -> dict:
    """One class's point estimates: AP50, precision and recall at the operating point, each
    with the calibration's offset, as the overall figures take it."""

    def at(value: float, figure: str) -> float:
        return round(float(np.clip(value + offset.get(figure, 0.0), 0.0, 1.0)), 4)

    return {
        "AP50": at(ap, "mAP50"),
        "precision": at(tp / found, "precision") if found else None,
        "recall": at(tp / lesions, "recall"),
    }
