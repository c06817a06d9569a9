"""The one way an image is read: preprocessing, the service, batch scoring, drift, the pyfunc.

Pillow reads the header first, so an image with more pixels than the limit is refused
before a single pixel is decoded (a 100 KB PNG can declare 30000×30000). EXIF orientation
is applied, as cameras record it and as YOLO labels are drawn (Ultralytics' own reader
does the same). CMYK, 16-bit, grayscale, palette and transparent images become 8-bit RGB;
transparency is composed onto white.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skintwin.errors import SkinTwinError
from skintwin.io import env_number

DEFAULT_MAX_PIXELS = 40_000_000
FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "WEBP", "TIFF"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_EXIF_ORIENTATION = 0x0112

Source = str | Path | bytes | bytearray | memoryview | np.ndarray


class ImageError(SkinTwinError):
    """An image that cannot be used. `status` is the HTTP answer a service gives for it:
    413 too many pixels, 415 not an image type we read, 422 damaged or undecodable."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def max_pixels_from_env() -> int:
    """The pixel limit for one image: `SKINTWIN_MAX_MEGAPIXELS` (default 40), checked."""
    return int(env_number("SKINTWIN_MAX_MEGAPIXELS", DEFAULT_MAX_PIXELS / 1e6, 0.001, 1000) * 1e6)


def _open(source: str | Path | bytes | bytearray | memoryview, label: str) -> Image.Image:
    """An opened image (header read, pixels not yet decoded) of an accepted type."""
    if isinstance(source, bytes | bytearray | memoryview):
        if not len(source):
            raise ImageError(f"{label}: empty", 422)
        source = io.BytesIO(bytes(source))
    elif not Path(source).is_file():
        raise ImageError(f"{label}: cannot read: not a file", 422)
    try:
        with warnings.catch_warnings():  # our own pixel limit applies, not Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
    except PermissionError as exc:
        raise ImageError(f"{label}: cannot read: {exc.strerror}", 422) from None
    except Image.DecompressionBombError as exc:  # Pillow's own ceiling, far above ours
        raise ImageError(f"{label}: too many pixels: {exc}", 413) from None
    except (UnidentifiedImageError, OSError, ValueError, ImportError):
        # ImportError: Ultralytics patches Image.open to look for a HEIF plugin on failure
        raise ImageError(f"{label}: not a decodable image", 415) from None
    if im.format not in FORMATS:
        im.close()
        raise ImageError(f"{label}: {im.format} images are not accepted", 415)
    return im


def _check_pixels(size: tuple[int, int], max_pixels: int | None, label: str) -> None:
    if max_pixels and size[0] * size[1] > max_pixels:
        raise ImageError(f"{label}: {size[0]}×{size[1]} pixels exceeds {max_pixels}", 413)


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """8-bit RGB pixels of any Pillow mode."""
    if im.mode.startswith("I") or im.mode == "F":  # 16- or 32-bit grey, or float
        grey = np.asarray(im, dtype=np.float64)
        top = 1.0 if im.mode == "F" and grey.max(initial=0) <= 1.0 else 255.0
        if im.mode.startswith("I;16") or grey.max(initial=0) > 255:
            top = 65535.0
        grey = np.clip(grey * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.asarray(im.convert("RGB") if im.mode != "RGB" else im)


def _decode(im: Image.Image, label: str) -> np.ndarray:
    try:
        im.load()
        im = ImageOps.exif_transpose(im)
        return np.ascontiguousarray(_to_rgb8(im))
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt pixel data
        raise ImageError(f"{label}: damaged image data ({exc})", 422) from None


def _from_array(arr: np.ndarray, label: str) -> np.ndarray:
    """The pixels the same image would have as a file: 16-bit and float values scaled to
    8 bits, transparency composed onto white, as `_to_rgb8` reads them. A cast alone made
    a float image in [0, 1] black and dropped alpha's hidden pixels into view."""
    if arr.ndim == 3 and arr.shape[2] in (1, 2):  # grey, grey and alpha
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise ImageError(f"{label}: an image array must be HxWx3 RGB, got {arr.shape}", 422)
    if arr.dtype != np.uint8:
        arr = _as_8_bits(arr, label)
    if arr.shape[2] == 4:
        return _to_rgb8(Image.fromarray(np.ascontiguousarray(arr), "RGBA"))
    return np.ascontiguousarray(arr)


def _as_8_bits(arr: np.ndarray, label: str) -> np.ndarray:
    """0–255 from 16-bit (0–65535), or float (0–1, else 0–255) values."""
    if arr.dtype.kind not in "uif" or not np.isfinite(arr).all() or arr.min(initial=0) < 0:
        raise ImageError(f"{label}: image values must be finite and ≥ 0 ({arr.dtype})", 422)
    top = float(arr.max(initial=0))
    if arr.dtype.kind == "f":
        scale = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
    else:
        scale = 65535.0 if arr.dtype == np.uint16 or top > 255 else 255.0
    if top > 65535:
        raise ImageError(f"{label}: image values above 65535 ({arr.dtype})", 422)
    return np.clip(arr.astype(np.float64) * (255.0 / scale) + 0.5, 0, 255).astype(np.uint8)


def image_size(source: Source, label: str | None = None) -> tuple[int, int]:
    """(width, height) as stored, read from the header without decoding pixels (an EXIF
    rotation may swap them for display; the pixel count is the same)."""
    label = label or _label(source)
    if isinstance(source, np.ndarray):
        return int(source.shape[1]), int(source.shape[0])
    with _open(source, label) as im:
        return im.size


def decode_image(
    source: Source, max_pixels: int | Literal["env"] | None = "env", label: str | None = None
) -> np.ndarray:
    """HxWx3 uint8 RGB pixels of an image file, encoded bytes or an array.

    `max_pixels`: the limit (None: none); by default `SKINTWIN_MAX_MEGAPIXELS`, so that
    every step refuses what validate refuses and reads what validate passes.

    Raises:
        ImageError: not an accepted image type (415), more pixels than `max_pixels` (413),
            or damaged (422). The message names `label` (default: the path, or "image").
    """
    label = label or _label(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, label)
    limit = max_pixels_from_env() if max_pixels == "env" else max_pixels
    with _open(source, label) as im:
        _check_pixels(im.size, limit, label)  # before any pixel is decoded
        return _decode(im, label)


def needs_normalising(path: Path) -> bool:
    """True when another reader might see other pixels than `decode_image`: a rotation
    in EXIF, or a mode other than plain 8-bit RGB / grey, or a format other than JPEG/PNG."""
    with _open(path, str(path)) as im:
        if im.mode not in ("RGB", "L") or im.format not in ("JPEG", "PNG"):
            return True
        try:
            return im.getexif().get(_EXIF_ORIENTATION, 1) != 1
        except (OSError, SyntaxError, ValueError):
            return True


def _label(source: object) -> str:
    return str(source) if isinstance(source, str | Path) else "image"
