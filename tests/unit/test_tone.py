from __future__ import annotations

import numpy as np
import pytest

from skintwin.data.features import image_features
from skintwin.data.images import decode_image
from skintwin.data.synth import encode_jpeg, paint
from skintwin.data.tone import ita_group
from skintwin.params import GenerateParams


@pytest.mark.parametrize(
    ("ita", "group"),
    [
        (70, "very_light"),
        (55.01, "very_light"),
        (55, "light"),
        (41.5, "light"),
        (41, "intermediate"),
        (28, "tan"),
        (10.5, "tan"),
        (10, "brown"),
        (-29.9, "brown"),
        (-30, "dark"),
        (-80, "dark"),
    ],
)
def test_group_boundaries(ita: float, group: str) -> None:
    assert ita_group(ita) == group


def test_ita_recovers_generated_tone_group(base_params: dict) -> None:
    """The acceptance bar: ≥ 90% of generated images land in their true group."""
    gen = GenerateParams.model_validate({**base_params["generate"], "seed": 123})
    hits, n = 0, 150
    for i in range(n):
        p = paint(
            gen.seed,
            i,
            160,
            gen.class_weights,
            gen.tone_weights,
            gen.max_lesions,
            gen.background_fraction,
        )
        rgb = decode_image(encode_jpeg(p.rgb, p.jpeg_quality))
        feats = image_features(rgb, [b[1:] for b in p.boxes])
        hits += feats["tone_group"] == p.tone_group
    assert hits / n >= 0.9, f"only {hits}/{n} tone groups recovered"


def test_features_respond_to_the_image() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((64, 64, 3), 128, np.uint8)
    noisy = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    a, b = image_features(flat), image_features(noisy)
    assert a["contrast"] == 0 and b["contrast"] > 30
    assert a["sharpness"] == 0 and b["sharpness"] > a["sharpness"]
    assert image_features(flat // 2)["brightness"] < a["brightness"]
    assert a["width"] == 64 and a["height"] == 64
