"""Upload checks: type from the bytes, size, pixels (per image and per request) read from
the headers, decodability — all before inference."""

from __future__ import annotations

import contextlib

import numpy as np
from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from skintwin.data.images import ImageError, decode_image, image_size
from skintwin.serving.limits import BodyTooLarge, BodyTooSlow
from skintwin.serving.settings import Settings

# Magic numbers of the accepted image types: the name and the declared type are not trusted.
_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"RIFF", "webp"),
)


class BadImage(Exception):
    """A request the service refuses: status code and message (and, for 429/503, when to
    try again)."""

    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after_s = status, message, retry_after_s


class ClientGone(Exception):
    """The client went away before its request was read: nothing to answer."""


def _check_bytes(data: bytes, settings: Settings) -> None:
    if not data:
        raise BadImage(400, "empty body: send one image as multipart `file` or raw bytes")
    if len(data) > settings.max_upload_bytes:
        raise BadImage(413, f"upload of {len(data)} bytes exceeds {settings.max_upload_bytes}")
    kind = next((k for sig, k in _SIGNATURES if data.startswith(sig)), None)
    if kind is None or (kind == "webp" and data[8:12] != b"WEBP"):
        raise BadImage(415, "not a JPEG, PNG, BMP or WebP image (checked from its bytes)")


def _refusal(exc: ImageError) -> BadImage:
    # its bytes already said JPEG/PNG/BMP/WebP: one that will not open is damaged (422)
    return BadImage(422 if exc.status == 415 else exc.status, f"cannot be decoded: {exc}")


def check_images(blobs: list[bytes], settings: Settings) -> list[np.ndarray]:
    """Every upload checked from its bytes and header first, then decoded (one decoder for
    the service, batch scoring and training: EXIF orientation, 16-bit, CMYK, palette)."""
    sizes = []
    for i, data in enumerate(blobs):
        _check_bytes(data, settings)
        try:
            width, height = image_size(data, label=f"image {i}")
        except ImageError as exc:
            raise _refusal(exc) from None
        if width * height > settings.max_pixels:
            raise BadImage(413, f"{width}×{height} pixels exceeds {settings.max_pixels}")
        sizes.append(width * height)
    if sum(sizes) > settings.max_request_pixels:
        raise BadImage(
            413, f"{sum(sizes)} pixels in one request exceeds {settings.max_request_pixels}"
        )
    try:
        return [
            decode_image(b, settings.max_pixels, label=f"image {i}") for i, b in enumerate(blobs)
        ]
    except ImageError as exc:
        raise _refusal(exc) from None


def check_image(data: bytes, settings: Settings) -> np.ndarray:
    """One upload, checked and decoded."""
    return check_images([data], settings)[0]


async def read_uploads(request: Request, field: str, settings: Settings) -> list[bytes]:
    """The uploaded images: multipart parts named `field`, or the raw body as one image.

    The body is bounded while it streams (`limits.BodyLimits`): bytes, parts and time.
    """
    many = field == "files"
    length = int(request.headers.get("content-length") or 0)
    if length > settings.max_upload_bytes * (settings.max_batch if many else 1) + 64 * 1024:
        raise BadImage(413, f"request of {length} bytes exceeds the upload limit")
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(
                max_files=settings.max_batch if many else 1,
                max_fields=8,
                max_part_size=64 * 1024,
            )
            items = form.getlist(field)
            if not items:
                raise BadImage(400, f"multipart body has no `{field}` part")
            blobs = [await f.read() if hasattr(f, "read") else str(f).encode() for f in items]
        else:
            blobs = [await request.body()]
    except BodyTooLarge as exc:
        raise BadImage(413, str(exc)) from None
    except BodyTooSlow as exc:
        raise BadImage(408, str(exc)) from None
    except HTTPException as exc:  # multipart limits (too many files, a field too large)
        status = 413 if "Too many" in str(exc.detail) else 400
        raise BadImage(status, f"multipart body refused: {exc.detail}") from None
    except ClientDisconnect:
        raise ClientGone() from None
    if len(blobs) > settings.max_batch:
        raise BadImage(413, f"{len(blobs)} images exceeds the batch limit {settings.max_batch}")
    return blobs


async def drain(request: Request) -> None:
    """Read and drop a shed request's body, so the connection stays usable; a body over its
    limits, too slow or cut off still gets the shedding answer, not a 500."""
    with contextlib.suppress(BodyTooLarge, BodyTooSlow, ClientDisconnect):
        await request.body()
