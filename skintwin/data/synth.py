"""Photo-like synthetic skin images with labelled lesions, for the demo and the tests.

Each image is painted in CIELAB: a base skin colour drawn for a target Individual Typology
Angle (so the true tone group is known), low-frequency mottling, pores, a lighting
gradient, hair strands, then lesions of three classes that differ in colour, shape and size,
and finally JPEG compression noise. Everything derives from (seed, image index), so a
dataset is reproducible and images can be painted in any order or process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from skintwin.data.tone import ita_group, lab_to_rgb
from skintwin.names import LESION_CLASSES, TONE_GROUPS

# ITA ranges drawn for each group: the middle of each band, so that the label is unambiguous.
_ITA_DRAW = {
    "very_light": (59.0, 72.0),
    "light": (44.0, 52.0),
    "intermediate": (31.0, 38.0),
    "tan": (14.0, 24.0),
    "brown": (-22.0, 3.0),
    "dark": (-52.0, -37.0),
}


@dataclass(frozen=True)
class Shift:
    """A production-like change of the input distribution (all neutral by default)."""

    brightness: float = 1.0  # multiplier on L*: < 1 is darker lighting
    blur_sigma: float = 0.0  # Gaussian blur in pixels: an out-of-focus camera
    tone_weights: dict[str, float] | None = None  # another patient mix
    class_weights: dict[str, float] | None = None  # another lesion mix
    image_size: int | None = None  # another camera resolution
    jpeg_quality: tuple[int, int] = (70, 92)
    gains: tuple[float, float, float] | None = None  # a camera's colour cast: R, G, B gains
    ita_offset: float = 0.0  # every patient this many degrees of ITA darker (< 0) or lighter


SHIFTS: dict[str, Shift] = {
    "none": Shift(),
    "lighting": Shift(brightness=0.72),
    "blur": Shift(blur_sigma=2.5),
    "tone": Shift(tone_weights={"brown": 1.0, "dark": 3.0}),
    # patients darker by degrees, not by groups: each group's photos move within it too
    "tone-darker": Shift(ita_offset=-12.0),
    "resolution": Shift(image_size=640, jpeg_quality=(35, 50)),
    "lesions": Shift(class_weights={"rash": 6.0, "acne": 0.5, "mole": 0.5}),
    "cast": Shift(gains=(1.08, 1.0, 0.9)),  # a new camera's warm white balance
    # the same kinds at other strengths (the label-free estimator's benchmark)
    "lighting-mild": Shift(brightness=0.85),
    "bright": Shift(brightness=1.2),
    "blur-mild": Shift(blur_sigma=1.2),
    "blur-strong": Shift(blur_sigma=4.0),
    "cast-strong": Shift(gains=(1.15, 1.0, 0.8)),
    "resolution-low": Shift(image_size=96, jpeg_quality=(30, 45)),
    # strengths that move a well-trained model's figures: most above cost it at most 0.06
    # mAP50, and a rank correlation over those alone measures mostly the truth's own noise
    "lighting-strong": Shift(brightness=0.5),
    "bright-strong": Shift(brightness=1.45),
    "blur-severe": Shift(blur_sigma=6.0),
    "resolution-tiny": Shift(image_size=72, jpeg_quality=(20, 35)),
    "cast-severe": Shift(gains=(1.3, 1.0, 0.65)),
}


@dataclass
class Painted:
    """One generated image: RGB pixels, YOLO boxes (class, cx, cy, w, h) and the truth."""

    rgb: np.ndarray
    boxes: list[tuple[int, float, float, float, float]]
    tone_group: str
    ita: float
    jpeg_quality: int
    extra: dict = field(default_factory=dict)


def _pick(rng: np.random.Generator, weights: dict[str, float], names: tuple[str, ...]) -> str:
    w = np.array([max(0.0, weights.get(n, 0.0)) for n in names], float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-ish noise with features about `scale` pixels wide."""
    small = max(2, int(size / scale))
    base = rng.standard_normal((small, small)).astype(np.float32)
    return cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)


def _skin(rng: np.random.Generator, size: int, ita: float) -> np.ndarray:
    b = rng.uniform(11.0, 18.0)
    L = float(np.clip(50.0 + b * math.tan(math.radians(ita)), 18.0, 92.0))
    a = rng.uniform(7.0, 15.0)
    lab = np.empty((size, size, 3), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * math.pi)
    gradient = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) * rng.uniform(2, 6)
    mottling = _smooth_noise(rng, size, size / 6) * 1.2 + _smooth_noise(rng, size, 6) * 0.6
    lab[..., 0] = L + gradient + mottling
    lab[..., 1] = a + _smooth_noise(rng, size, size / 5) * 1.5
    lab[..., 2] = b + _smooth_noise(rng, size, size / 5) * 1.0
    n_pores = int(size * size / 180)
    ys, xs = rng.integers(0, size, n_pores), rng.integers(0, size, n_pores)
    lab[ys, xs, 0] -= rng.uniform(3, 8, n_pores).astype(np.float32)
    lab[..., 0] = cv2.GaussianBlur(lab[..., 0], (3, 3), 0.6)
    return lab


def _hair(rng: np.random.Generator, lab: np.ndarray) -> None:
    size = lab.shape[0]
    canvas = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(0, 5))):
        pts = [rng.uniform(0, size, 2)]
        heading = rng.uniform(0, 2 * math.pi)
        for _ in range(8):
            heading += rng.normal(0, 0.25)
            pts.append(pts[-1] + size / 10 * np.array([math.cos(heading), math.sin(heading)]))
        poly = np.array(pts, np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [poly], False, 1.0, thickness=1, lineType=cv2.LINE_AA)
    lab[..., 0] = lab[..., 0] * (1 - canvas) + 14.0 * canvas
    lab[..., 2] = lab[..., 2] * (1 - canvas) + 8.0 * canvas


def _blob(rng: np.random.Generator, size: int, cx: float, cy: float, r: float, lobes: int):
    """A soft mask made of `lobes` overlapping ellipses around (cx, cy)."""
    mask = np.zeros((size, size), np.float32)
    for k in range(lobes):
        ox, oy = rng.normal(0, r * 0.35, 2) if k else (0.0, 0.0)
        axes = (max(1, int(r * rng.uniform(0.7, 1.0))), max(1, int(r * rng.uniform(0.55, 0.9))))
        centre = (int(cx + ox), int(cy + oy))
        cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
    return mask


def _lesion(rng: np.random.Generator, lab: np.ndarray, cls: str, cx: float, cy: float, r: float):
    size = lab.shape[0]
    if cls == "acne":
        mask = cv2.GaussianBlur(_blob(rng, size, cx, cy, r, 1), (0, 0), r * 0.35)
        lab[..., 0] -= 9 * mask
        lab[..., 1] += 32 * mask
        if rng.random() < 0.5:  # a pustule's pale head
            head = cv2.GaussianBlur(_blob(rng, size, cx, cy, r * 0.3, 1), (0, 0), r * 0.1)
            lab[..., 0] += 18 * head
            lab[..., 1] -= 15 * head
            lab[..., 2] += 12 * head
    elif cls == "mole":
        mask = cv2.GaussianBlur(_blob(rng, size, cx, cy, r, 2), (0, 0), max(0.6, r * 0.08))
        target_L = min(lab[int(cy) % size, int(cx) % size, 0] - 22, rng.uniform(22, 36))
        lab[..., 0] = lab[..., 0] * (1 - mask) + target_L * mask
        lab[..., 1] += 6 * mask
        lab[..., 2] = lab[..., 2] * (1 - mask) + rng.uniform(14, 24) * mask
    else:  # rash: a large, irregular, blotchy erythema patch
        mask = cv2.GaussianBlur(_blob(rng, size, cx, cy, r, 5), (0, 0), r * 0.15)
        blotch = 0.75 + 0.25 * np.clip(_smooth_noise(rng, size, r / 3), -1, 1)
        lab[..., 0] -= 6 * mask * blotch
        lab[..., 1] += 20 * mask * blotch
    ys, xs = np.nonzero(mask > 0.25)
    if len(xs) == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    return ((x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size)


_RADIUS = {"acne": (0.03, 0.048), "mole": (0.03, 0.055), "rash": (0.09, 0.16)}


def _iou(a: tuple, b: tuple) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def paint(
    seed: int,
    index: int,
    size: int,
    class_weights: dict[str, float],
    tone_weights: dict[str, float],
    max_lesions: int,
    background_fraction: float,
    shift: Shift = Shift(),
) -> Painted:
    """Paint image `index` of the dataset drawn from `seed`."""
    rng = np.random.default_rng([seed, index])
    size = shift.image_size or size
    group = _pick(rng, shift.tone_weights or tone_weights, TONE_GROUPS)
    ita = float(rng.uniform(*_ITA_DRAW[group]))
    if shift.ita_offset:
        ita = float(np.clip(ita + shift.ita_offset, -60.0, 75.0))
        group = ita_group(ita)
    lab = _skin(rng, size, ita)
    _hair(rng, lab)
    boxes: list[tuple[int, float, float, float, float]] = []
    n = 0 if rng.random() < background_fraction else int(rng.integers(1, max_lesions + 1))
    weights = shift.class_weights or class_weights
    for _ in range(n * 4):  # rejection sampling: lesions may touch, not pile up
        if len(boxes) == n:
            break
        cls = _pick(rng, weights, LESION_CLASSES)
        r = rng.uniform(*_RADIUS[cls]) * size
        cx, cy = rng.uniform(r * 1.3, size - r * 1.3, 2)
        guess = (cx / size, cy / size, 2.4 * r / size, 2.4 * r / size)
        if any(_iou(guess, b[1:]) > 0.05 for b in boxes):
            continue
        box = _lesion(rng, lab, cls, cx, cy, r)
        if box is not None:
            boxes.append((LESION_CLASSES.index(cls), *box))
    lab[..., 0] = np.clip(lab[..., 0] * shift.brightness, 0, 100)
    rgb = lab_to_rgb(lab)
    if shift.gains is not None:
        rgb = _cast(rgb, shift.gains)
    if shift.blur_sigma > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), shift.blur_sigma)
    quality = int(rng.integers(*shift.jpeg_quality))
    return Painted(rgb=rgb, boxes=boxes, tone_group=group, ita=ita, jpeg_quality=quality)


def _cast(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Per-channel gains on linear light (a white balance), back to sRGB."""
    x = rgb.astype(np.float32) / 255.0
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    linear = np.clip(linear * np.asarray(gains, np.float32), 0.0, 1.0)
    out = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB image (the compression noise is part of the realism)."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
