"""Upload checks: type from the bytes, size, pixel count, decodability — before inference."""

from __future__ import annotations

import io

import numpy as np
from fastapi import Request
from PIL import Image

from skintwin.serving.settings import Settings

# Magic numbers of the accepted image types: the name and the declared type are not trusted.
_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"RIFF", "webp"),
)


class BadImage(Exception):
    """A request the service refuses: status code and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def check_image(data: bytes, settings: Settings) -> np.ndarray:
    """Decode an upload after checking its size, type (from the bytes) and pixel count."""
    if not data:
        raise BadImage(400, "empty body: send one image as multipart `file` or raw bytes")
    if len(data) > settings.max_upload_bytes:
        raise BadImage(413, f"upload of {len(data)} bytes exceeds {settings.max_upload_bytes}")
    kind = next((k for sig, k in _SIGNATURES if data.startswith(sig)), None)
    if kind is None or (kind == "webp" and data[8:12] != b"WEBP"):
        raise BadImage(415, "not a JPEG, PNG, BMP or WebP image (checked from its bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size  # read from the header, nothing decoded yet
            if width * height > settings.max_pixels:
                raise BadImage(413, f"{width}×{height} pixels exceeds {settings.max_pixels}")
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except BadImage:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImage(413, f"too many pixels: {exc}") from None
    except Exception as exc:  # PIL raises many types for corrupt or truncated files
        raise BadImage(422, f"image cannot be decoded: {exc}") from None
    return rgb


async def read_uploads(request: Request, field: str, settings: Settings) -> list[bytes]:
    """The uploaded images: multipart parts named `field`, or the raw body as one image."""
    many = field == "files"
    length = int(request.headers.get("content-length") or 0)
    if length > settings.max_upload_bytes * (settings.max_batch if many else 1):
        raise BadImage(413, f"request of {length} bytes exceeds the upload limit")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_part_size=settings.max_upload_bytes)
        items = form.getlist(field)
        if not items:
            raise BadImage(400, f"multipart body has no `{field}` part")
        blobs = [await f.read() if hasattr(f, "read") else str(f).encode() for f in items]
        blobs = blobs if many else blobs[:1]
    else:
        blobs = [await request.body()]
    if len(blobs) > settings.max_batch:
        raise BadImage(413, f"{len(blobs)} images exceeds the batch limit {settings.max_batch}")
    return blobs
