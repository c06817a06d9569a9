"""Skin tone from CIELAB: Individual Typology Angle (ITA) and its six groups."""

from __future__ import annotations

import math

import cv2
import numpy as np

from skintwin.names import TONE_GROUPS

# Lower bounds of each group, from lightest to darkest (DESIGN: Skin tone).
GROUP_FLOORS = (
    ("very_light", 55.0),
    ("light", 41.0),
    ("intermediate", 28.0),
    ("tan", 10.0),
    ("brown", -30.0),
    ("dark", -math.inf),
)
assert tuple(name for name, _ in GROUP_FLOORS) == TONE_GROUPS


def ita_group(ita: float) -> str:
    """Map an ITA in degrees to its group: very light > 55 ≥ light > 41 ≥ ... > −30 ≥ dark."""
    for name, floor in GROUP_FLOORS:
        if ita > floor:
            return name
    return "dark"


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) to float CIELAB with L* in 0–100 and a*, b* in their real units."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Float CIELAB (H, W, 3) to uint8 RGB, clipped to the sRGB gamut."""
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def estimate_ita(lab: np.ndarray, skin_mask: np.ndarray | None = None) -> float:
    """ITA = atan2(L* − 50, b*) in degrees, from the medians of L* and b* over skin pixels.

    Medians keep hair strands, pores and specular highlights from moving the estimate.
    The mask should exclude labelled lesions; very dark and very bright outliers
    (hair, glare) are dropped as well.
    """
    L = lab[..., 0]
    b = lab[..., 2]
    mask = np.ones(L.shape, bool) if skin_mask is None else skin_mask.astype(bool)
    if mask.sum() < 16:
        mask = np.ones(L.shape, bool)
    lv, bv = L[mask], b[mask]
    lo, hi = np.percentile(lv, [5, 98])
    keep = (lv >= lo) & (lv <= hi)
    if keep.sum() >= 16:
        lv, bv = lv[keep], bv[keep]
    return float(math.degrees(math.atan2(float(np.median(lv)) - 50.0, float(np.median(bv)))))
