"""How the pyfunc reads its input: bytes, a path, or base64 text (a JSON request)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd

from skintwin.model.pyfunc import as_sources, decode_cell


def test_an_existing_path_stays_a_path(tmp_path: Path) -> None:
    image = tmp_path / "x.jpg"
    image.write_bytes(b"\xff\xd8\xff")
    assert decode_cell(str(image)) == str(image)


def test_base64_text_becomes_bytes() -> None:
    data = b"\xff\xd8\xff\xe0 not really a jpeg"
    assert decode_cell(base64.b64encode(data).decode()) == data


def test_text_that_is_neither_is_left_for_the_decoder_to_refuse() -> None:
    assert decode_cell("no/such/file.jpg!") == "no/such/file.jpg!"


def test_bytes_pass_through() -> None:
    assert decode_cell(bytearray(b"abc")) == b"abc"


def test_input_shapes() -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    assert len(as_sources(rgb)) == 1 and as_sources(rgb)[0] is rgb
    assert as_sources(["a", "b"]) == ["a", "b"]
    frame = pd.DataFrame({"image": [base64.b64encode(b"xyz").decode()]})
    assert as_sources(frame) == [b"xyz"]
