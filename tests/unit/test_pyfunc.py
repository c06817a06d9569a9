"""How the pyfunc reads its input: bytes, arrays or base64 text; text is never a path."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from skintwin.data.images import ImageError
from skintwin.model.pyfunc import SkinTwinDetector, as_sources, decode_cell


def test_base64_text_becomes_bytes() -> None:
    data = b"\xff\xd8\xff\xe0 not really a jpeg"
    assert decode_cell(base64.b64encode(data).decode()) == data


def test_bytes_and_arrays_pass_through() -> None:
    assert decode_cell(bytearray(b"abc")) == b"abc"
    rgb = np.zeros((2, 2, 3), np.uint8)
    assert decode_cell(rgb) is rgb


def test_input_shapes() -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    assert len(as_sources(rgb)) == 1 and as_sources(rgb)[0] is rgb
    assert as_sources(["a", "b"]) == ["a", "b"]
    frame = pd.DataFrame({"image": [base64.b64encode(b"xyz").decode()]})
    assert [decode_cell(v) for v in as_sources(frame)] == [b"xyz"]


def test_a_path_is_never_read_and_never_told_apart(tmp_path: Path) -> None:
    """A remote caller learns nothing about the server's disk: an existing file, a folder
    and a missing path all get the same answer, with no stack trace."""
    real = tmp_path / "secret.jpg"
    real.write_bytes(b"\xff\xd8\xff")
    answers = []
    for text in (str(real), str(tmp_path), str(tmp_path / "missing.jpg")):
        with pytest.raises(ImageError) as info:
            decode_cell(text)
        answers.append(str(info.value))
        frame = pd.DataFrame({"image": [text]})
        with pytest.raises(MlflowException) as served:
            SkinTwinDetector().predict(None, frame)
        assert (
            "Traceback" not in served.value.message and served.value.get_http_status_code() == 400
        )
    assert len(set(answers)) == 1 and "base64" in answers[0]
