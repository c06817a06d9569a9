from __future__ import annotations

import numpy as np
import pytest

from skintwin.data.features import image_features
from skintwin.data.synth import SHIFTS, paint
from skintwin.names import LESION_CLASSES


def _paint(index: int, shift: str = "none", seed: int = 1):
    return paint(
        seed,
        index,
        128,
        dict.fromkeys(LESION_CLASSES, 1.0),
        {
            "very_light": 1.0,
            "light": 1.0,
            "intermediate": 1.0,
            "tan": 1.0,
            "brown": 1.0,
            "dark": 1.0,
        },
        4,
        0.0,
        SHIFTS[shift],
    )


def test_deterministic_per_seed_and_index() -> None:
    assert np.array_equal(_paint(3).rgb, _paint(3).rgb)
    assert not np.array_equal(_paint(3).rgb, _paint(4).rgb)
    assert not np.array_equal(_paint(3).rgb, _paint(3, seed=2).rgb)


def test_boxes_are_valid_yolo() -> None:
    for i in range(30):
        for cls, cx, cy, w, h in _paint(i).boxes:
            assert 0 <= cls < len(LESION_CLASSES)
            assert 0 < w <= 1 and 0 < h <= 1 and 0 <= cx <= 1 and 0 <= cy <= 1


def test_all_classes_appear() -> None:
    seen = {b[0] for i in range(40) for b in _paint(i).boxes}
    assert seen == set(range(len(LESION_CLASSES)))


@pytest.mark.parametrize(
    ("shift", "feature", "direction"),
    [("lighting", "brightness", -1), ("blur", "sharpness", -1), ("resolution", "width", +1)],
)
def test_shifts_move_the_feature(shift: str, feature: str, direction: int) -> None:
    base = np.mean([image_features(_paint(i).rgb)[feature] for i in range(10)])
    moved = np.mean([image_features(_paint(i, shift).rgb)[feature] for i in range(10)])
    assert (moved - base) * direction > 0


def test_a_colour_cast_warms_every_image_and_moves_no_box() -> None:
    for i in range(5):
        plain, cast = _paint(i), _paint(i, "cast")
        r, b = (cast.rgb[..., k].astype(float).mean() - plain.rgb[..., k].mean() for k in (0, 2))
        assert r > 0 > b  # gains (1.08, 1.0, 0.9): redder, less blue
        assert cast.boxes == plain.boxes and cast.tone_group == plain.tone_group
