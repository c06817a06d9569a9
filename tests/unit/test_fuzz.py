"""Fuzzed inputs: never an unhandled exception, always a clear error or a valid result."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from skintwin.data.dataset import parse_labels, read_names
from skintwin.data.features import image_features
from skintwin.data.images import decode_image
from skintwin.errors import SkinTwinError
from skintwin.params import parse_params

FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10),
    st.just("nan"),
    st.just("1e309"),
    st.text(max_size=4),
)
label_line = st.lists(numbers.map(str), min_size=0, max_size=7).map(" ".join)


@FAST
@given(lines=st.lists(st.one_of(label_line, st.text(max_size=30)), max_size=8))
def test_label_files(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    boxes, problems = parse_labels(path, n_classes=3, max_overflow=0.02)
    for b in boxes:
        assert 0 <= b.cls < 3 and 0 < b.w <= 1 and 0 < b.h <= 1
    for p in problems:
        assert p.file == str(path) and (p.line is None or p.line >= 1)


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 4)), inner, max_size=4),
    ),
    max_leaves=12,
)


@FAST
@given(doc=st.one_of(st.text(max_size=80), yaml_values.map(repr)))
def test_data_yaml(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "data.yaml"
    path.write_bytes(doc.encode("utf-8", "surrogatepass"))
    try:
        _, names = read_names(path)
    except SkinTwinError as exc:
        assert "data.yaml" in str(exc)
    else:
        assert names and all(isinstance(n, str) for n in names)


@FAST
@given(
    path=st.lists(
        st.sampled_from(
            [
                "train",
                "epochs",
                "augment",
                "mosaic",
                "promote",
                "floor",
                "monitor",
                "per_column",
                "data",
                "path",
                "generate",
                "tone_weights",
                "x",
            ]
        ),
        min_size=1,
        max_size=3,
    ),
    value=yaml_values,
)
def test_params_values(base_params: dict, path: list[str], value: object) -> None:
    raw = copy.deepcopy(base_params)
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node[path[-1]] = value
    try:
        parse_params(raw)
    except SkinTwinError as exc:
        assert "params.yaml" in str(exc)


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# PNGs of random size cut at a random byte: valid, truncated or headless
truncated_pngs = st.builds(
    lambda w, h, cut: _png(w, h)[:cut], st.integers(1, 40), st.integers(1, 40), st.integers(0, 400)
)


@FAST
@given(data=st.one_of(st.binary(max_size=300), truncated_pngs))
def test_image_bytes(data: bytes) -> None:
    try:
        rgb = decode_image(data)
    except SkinTwinError as exc:
        assert "image" in str(exc)
    else:
        feats = image_features(rgb)
        assert feats["width"] == rgb.shape[1] and np.isfinite(feats["brightness"])


@FAST
@given(
    data=st.one_of(
        st.binary(max_size=300),
        truncated_pngs,
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF"]),
            st.binary(max_size=200),
        ),
    )
)
def test_service_upload_check(data: bytes) -> None:
    from skintwin.serving.settings import Settings
    from skintwin.serving.uploads import BadImage, check_image

    try:
        rgb = check_image(data, Settings(max_upload_bytes=10_000, max_pixels=10_000))
    except BadImage as exc:
        assert 400 <= exc.status < 500 and exc.message
    else:
        assert rgb.ndim == 3 and rgb.shape[2] == 3


# params.yaml values that used to load and crash later (issue #11): one line naming the key
LEAVES = [
    ("generate", "seed"),
    ("generate", "n_images"),
    ("train", "epochs"),
    ("train", "lr0"),
    ("train", "optimizer"),
    ("evaluate", "conf"),
    ("promote", "floor"),
    ("promote", "model_name"),
    ("monitor", "num_method"),
    ("monitor", "cat_method"),
    ("monitor", "webhook_timeout_s"),
    ("monitor", "window_hours"),
    ("preprocess", "test_fraction"),
]
VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.sampled_from(["ks", "wasserstein", "chisquare", "fisher_exact", "psi", "es", "z"]),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(leaf=st.sampled_from(LEAVES), value=VALUES)
def test_one_bad_value_is_one_line_naming_its_key(
    base_params: dict, leaf: tuple[str, str], value
) -> None:
    raw = copy.deepcopy(base_params)
    raw[leaf[0]][leaf[1]] = value
    try:
        parsed = parse_params(yaml.safe_load(yaml.safe_dump(raw)))
    except SkinTwinError as exc:
        assert f"{leaf[0]}.{leaf[1]}" in str(exc) and "\n" not in str(exc), str(exc)
    else:
        assert getattr(getattr(parsed, leaf[0]), leaf[1]) is not None
