"""Near-duplicate photos: the same picture re-saved, resized, cropped by up to 10 % or made a
little brighter. Left in both train and test, one inflates every test metric.

Two stages. A perceptual hash (pHash) of each image and of the windows a crop
of up to 10 % could have kept shortlists pairs cheaply; each shortlisted pair is then
verified by matching one image inside the other at the scales such a crop allows: the fine
texture of skin (pores, hair), band-passed and normalised, so brightness and re-encoding do
not matter and two photos that merely share a lesion layout do not match.
Images that match are put in one group; a split keeps a group together.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from skintwin.data.images import decode_image

# Measured on the demo generator with injected resizes, re-encodes, ≤ 10 % crops and ±12 %
# brightness (`tests/unit/test_near_duplicates.py`): true pairs lie within 8 bits and match
# at ≥ 0.80; distinct photos sharing a lesion layout match at ≤ 0.52.
SHORTLIST_BITS = 12  # pHash distance (of 64 bits) at or below which a pair is verified
MATCH = 0.65  # normalised correlation that makes a verified pair a near-duplicate
_SIDE = 256  # matching resolution (pixels across): skin texture, not just lesion layout
_SCALES = np.linspace(0.88, 1.0, 13)  # how much of the other image a crop may have kept


def _windows(grey: np.ndarray) -> list[np.ndarray]:
    """The image and the windows a crop of up to 10 % could have kept (19 in all)."""
    h, w = grey.shape
    out = [grey]
    for s in (0.95, 0.9):
        for fx, fy in itertools.product((0.0, 0.5, 1.0), repeat=2):
            x0, y0 = int(fx * (1 - s) * w), int(fy * (1 - s) * h)
            out.append(grey[y0 : y0 + max(int(s * h), 1), x0 : x0 + max(int(s * w), 1)])
    return out  # a window of a photo a pixel wide keeps that pixel: none is empty


def _phashes(grey: np.ndarray) -> np.ndarray:
    """The pHash (64 bits: the low 8×8 DCT of a 32×32 shrink against its median, as
    `imagehash.phash` computes it) of the image and of each of its crop windows, at once:
    the windows are shrunk with OpenCV's area filter (PIL's Lanczos took 4× longer, for
    the same shortlist on the demo data with 40 injected copies)."""
    from scipy.fft import dct

    small = np.stack([cv2.resize(w, (32, 32), interpolation=cv2.INTER_AREA) for w in
                      _windows(grey)]).astype(np.float64)  # fmt: skip
    low = dct(dct(small, axis=1), axis=2)[:, :8, :8].reshape(len(small), 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def _band(grey: np.ndarray, width: float) -> np.ndarray:
    h, w = grey.shape
    size = (max(8, round(width)), max(8, round(width * h / w)))
    g = cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    return cv2.GaussianBlur(g, (0, 0), 1.0) - cv2.GaussianBlur(g, (0, 0), 3.0)


def _match(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation of `b` placed inside `a`, over the scales a ≤ 10 % crop allows."""
    big = _band(a, _SIDE)
    best = -1.0
    for s in _SCALES:
        small = _band(b, _SIDE * s)
        if small.shape[0] <= big.shape[0] and small.shape[1] <= big.shape[1]:
            best = max(best, float(cv2.matchTemplate(big, small, cv2.TM_CCOEFF_NORMED).max()))
    return best


def _grey(path: Path) -> np.ndarray:
    rgb = decode_image(path)
    scale = 256 / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def near_duplicate_groups(paths: Sequence[Path]) -> list[list[int]]:
    """Groups (of two or more image indices) of near-duplicates among `paths`."""
    from tqdm import tqdm

    greys = [_grey(p) for p in tqdm(paths, desc="near-duplicates", unit="img", leave=False)]
    hashes = np.stack([_phashes(g) for g in greys]) if greys else np.zeros((0, 19), np.uint64)
    full = hashes[:, 0]
    # distance of each image's whole picture to each other image's windows, both ways
    d = np.bitwise_count(full[:, None, None] ^ hashes[None, :, :]).min(axis=2)
    d = np.minimum(d, d.T)
    parent = list(range(len(paths)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    shortlist = np.argwhere(np.triu(d <= SHORTLIST_BITS, k=1))
    for i, j in tqdm(shortlist, desc="near-duplicate check", unit="pair", leave=False):
        if root(i) != root(j) and (
            _match(greys[i], greys[j]) >= MATCH or _match(greys[j], greys[i]) >= MATCH
        ):
            parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(paths)):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]
