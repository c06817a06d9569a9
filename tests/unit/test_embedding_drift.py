"""Embedding drift (MMD) and the within-tone-group tests that tell patients from photos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skintwin.model.embedding import Projection, matrix, to_bytes
from skintwin.monitoring.alerts import severity
from skintwin.monitoring.attribution import attribute, within_groups
from skintwin.monitoring.embedding_drift import embedding_drift, mmd_test
from skintwin.names import TONE_GROUPS
from tests.conftest import params_model


@pytest.fixture
def monitor(base_params: dict):
    return params_model(base_params).monitor


def test_mmd_false_alarms_stay_near_the_level_and_a_shift_is_found() -> None:
    """30 seeds of same-distribution samples (150 vs 200, 16 dims) and of a shift of 0.5 sd
    in four dimensions: the count of p < 0.05 under no shift is printed and bounded."""
    false, found = 0, 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(150, 16)), rng.normal(size=(200, 16))
        false += mmd_test(x, y, 199, seed)[1] < 0.05
        y[:, :4] += 0.5
        found += mmd_test(x, y, 199, seed)[1] < 0.01
    print(f"MMD: {false} of 30 calm pairs below 0.05; {found} of 30 shifted below 0.01")
    assert false <= 5 and found >= 27


def test_projection_whitens_and_survives_a_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    pooled = rng.normal(size=(60, 40)) * np.linspace(5, 0.1, 40) + 3.0
    proj = Projection.fit(pooled, layer=6, dims=16)
    out = proj.apply(pooled)
    assert out.shape == (60, 16) and out.dtype == np.float32
    assert np.allclose(out.std(axis=0, ddof=1), 1.0, atol=1e-3)
    assert np.allclose(out.mean(axis=0), 0.0, atol=1e-3)
    proj.save(tmp_path / "embedding.npz")
    again = Projection.load(tmp_path / "embedding.npz")
    assert again.layer == 6 and np.allclose(again.apply(pooled), out)
    assert Projection.fit(pooled[:5], 6, 16).dims == 4  # no more than the images allow


def test_stored_bytes_and_lists_read_the_same() -> None:
    vectors = [[0.5, -1.25, 3.0], [1e-3, 2.0, -0.75]]
    as_bytes = [to_bytes(v) for v in vectors]
    assert np.allclose(matrix(as_bytes), matrix(vectors), atol=1e-3)
    assert matrix([]).shape == (0, 0)


def _frame(rng, n: int, weights: dict[str, float], scale: float = 1.0, shift: float = 0.0):
    """Rows of a tone group each, whose features depend on the group (darker = lower)."""
    names = list(weights)
    p = np.array(list(weights.values()), float)
    groups = rng.choice(names, size=n, p=p / p.sum())
    level = np.array([TONE_GROUPS.index(g) for g in groups], float)
    emb = rng.normal(size=(n, 8))
    emb[:, 0] += level + shift
    return pd.DataFrame(
        {
            "tone_group": groups,
            "brightness": (200 - 25 * level + rng.normal(0, 8, n)) * scale,
            "contrast": rng.normal(20, 3, n) * scale,
            "saturation": rng.normal(80, 10, n),
            "sharpness": rng.normal(50, 10, n),
            "ita": 60 - 20 * level + rng.normal(0, 4, n),
            "embedding": [to_bytes(e) for e in emb],
        }
    )


def test_a_new_patient_mix_is_a_tone_mix_and_a_darker_light_is_not(monitor) -> None:
    rng = np.random.default_rng(1)
    even = dict.fromkeys(TONE_GROUPS, 1.0)
    reference = _frame(rng, 300, even)
    darker_mix = _frame(rng, 300, even | {"brown": 3.0, "dark": 6.0})
    calm = _frame(rng, 300, even)
    dim = _frame(rng, 300, even, scale=0.8)

    still = within_groups(reference, calm, monitor)
    assert still["changed"] == [] and min(still["p_values"].values()) >= still["threshold"]
    assert within_groups(reference, darker_mix, monitor)["changed"] == []
    changed = within_groups(reference, dim, monitor)["changed"]
    assert {c["column"] for c in changed} >= {"brightness", "contrast"}

    column_moves = {"acquisition": ["brightness"], "tone mix": ["ita", "tone_group"]}
    for window, kind in ((darker_mix, "tone mix"), (dim, "apparent tone mix")):
        within = within_groups(reference, window, monitor)
        moved = attribute(column_moves, within, {"drifted": False})
        assert kind in moved
        result = {"drift_detected": True, "drift_share": 0.2, "moved": moved}
        assert severity(result, monitor) == ("critical" if kind == "tone mix" else "warning")
    confirmed = attribute(column_moves, within_groups(reference, darker_mix, monitor), {})
    assert confirmed["tone mix"][-1] == "brightness (follows the mix)"


def test_a_group_is_compared_within_from_within_min_images_on_both_sides(monitor) -> None:
    # a darker light leaves some groups thin: each that holds the minimum must still count
    rng = np.random.default_rng(3)
    reference = _frame(rng, 240, dict.fromkeys(TONE_GROUPS, 1.0))
    dark = _frame(rng, 120, {"dark": 1.0}, scale=0.8)
    n = monitor.within_min_images
    for rows, compared in ((n, True), (n - 1, False)):
        window = pd.concat([dark, _frame(rng, rows, {"tan": 1.0}, scale=0.8)])
        within = within_groups(reference, window, monitor)
        assert ("tan" in within["groups"]) is compared, (rows, within["groups"])
        assert within["groups"][-1] == "dark" and within["changed"]
        assert within["p_values"]["brightness"] < within["threshold"]


def test_embedding_drift_per_group_with_bonferroni(monitor) -> None:
    rng = np.random.default_rng(2)
    even = dict.fromkeys(TONE_GROUPS, 1.0)
    reference = _frame(rng, 240, even)
    calm = embedding_drift(reference, _frame(rng, 240, even), monitor)
    assert calm["available"] and not calm["drifted"]
    assert set(calm["tests"]) == {"all", *TONE_GROUPS}
    assert calm["threshold"] == pytest.approx(monitor.embed_threshold / 7)
    moved = embedding_drift(reference, _frame(rng, 240, even, shift=1.0), monitor)
    assert moved["drifted"] and "all" in moved["drifted_slices"]
    assert moved["tests"]["all"]["p_value"] < moved["threshold"]

    no_emb = embedding_drift(reference, reference.drop(columns="embedding"), monitor)
    assert no_emb == {"available": False, "reason": "embeddings: reference 240, current 0 rows"}
    other = reference.assign(embedding=[to_bytes(np.zeros(4))] * len(reference))
    assert "other model versions" in embedding_drift(reference, other, monitor)["reason"]
