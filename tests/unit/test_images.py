"""One decoder for every path: EXIF orientation, CMYK, 16-bit, grey and palette images all
become the same 8-bit RGB pixels, and oversized images are refused from their header."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from skintwin.data.images import ImageError, decode_image, image_size, needs_normalising

# a picture that is not symmetric, so a missed rotation shows: red top-left, blue bottom
PICTURE = np.zeros((40, 60, 3), np.uint8)
PICTURE[:20, :30] = (220, 30, 30)
PICTURE[20:, :] = (30, 30, 220)


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(int) - b.astype(int)).mean()) <= tol


def test_exif_orientation_is_applied() -> None:
    stored = Image.fromarray(PICTURE).transpose(Image.Transpose.ROTATE_90)  # sensor's view
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    rgb = decode_image(data)
    assert rgb.shape == PICTURE.shape  # 40×60 as displayed, not 60×40 as stored
    assert _close(rgb, PICTURE, 6)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = _encode(Image.fromarray(PICTURE).convert("CMYK"), "JPEG", quality=95)
    assert _close(decode_image(data), PICTURE, 8)


def test_16_bit_grey_png_is_scaled_not_saturated() -> None:
    grey = np.linspace(0, 65535, 40 * 60).reshape(40, 60).astype(np.uint16)
    data = _encode(Image.fromarray(grey), "PNG")
    rgb = decode_image(data)
    assert rgb.shape == (40, 60, 3) and rgb.min() == 0 and rgb.max() == 255
    assert 120 < rgb.mean() < 135  # a ramp, not all white


def test_grey_palette_and_transparent_images() -> None:
    grey = decode_image(_encode(Image.fromarray(PICTURE).convert("L"), "PNG"))
    assert grey.shape == (40, 60, 3) and (grey[..., 0] == grey[..., 2]).all()
    indexed = Image.fromarray(PICTURE).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette = decode_image(_encode(indexed, "PNG"))
    assert _close(palette, PICTURE, 10)
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent: composed onto white
    assert (decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG")) == 255).all()


def test_a_pixel_bomb_is_refused_from_its_header() -> None:
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = (30000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    for read in (image_size, decode_image):
        with pytest.raises(ImageError) as err:
            read(bytes(data))
        assert err.value.status == 413 and "exceeds" in str(err.value)
    small = _encode(Image.new("RGB", (300, 200)), "PNG")  # our limit, below Pillow's
    assert image_size(small) == (300, 200)
    with pytest.raises(ImageError, match="exceeds 50000") as err:
        decode_image(small, max_pixels=50_000)
    assert err.value.status == 413


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"", 422), (b"%PDF-1.7 not an image", 415), (_encode(Image.new("RGB", (9, 9)), "GIF"), 415)],
)
def test_what_is_not_an_accepted_image(data: bytes, status: int) -> None:
    with pytest.raises(ImageError) as err:
        decode_image(data)
    assert err.value.status == status


def test_only_images_another_reader_could_see_differently_are_normalised(tmp_path) -> None:
    plain, rotated, cmyk = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"
    Image.fromarray(PICTURE).save(plain)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(PICTURE).save(rotated, exif=exif.tobytes())
    Image.fromarray(PICTURE).convert("CMYK").save(cmyk)
    assert [needs_normalising(p) for p in (plain, rotated, cmyk)] == [False, True, True]


def test_an_array_reads_as_the_same_image_as_a_file() -> None:
    """The pyfunc takes arrays too. Transparency is composed onto white, 16-bit and float
    values scaled, as for a file: a cast alone showed alpha's hidden pixels (15 false
    rashes along a transparent band), made a float image in [0, 1] black, and a 16-bit one
    a wrap of its low bytes."""
    rgba = np.dstack([PICTURE, np.full(PICTURE.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0  # a transparent band over red and black pixels
    as_file = decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (as_file[:10] == 255).all()
    assert np.array_equal(decode_image(rgba), as_file)
    grey16 = (np.linspace(0, 65535, 40 * 60).reshape(40, 60)).astype(np.uint16)
    assert np.array_equal(
        decode_image(grey16), decode_image(_encode(Image.fromarray(grey16), "PNG"))
    )
    unit = PICTURE.astype(np.float32) / 255.0
    assert np.array_equal(decode_image(unit), PICTURE)
    for bad in (np.full((4, 4, 3), np.nan), np.full((4, 4, 3), -1.0), np.zeros((4, 4, 3), bool)):
        with pytest.raises(ImageError, match="finite and ≥ 0"):
            decode_image(bad)
