"""Metrics from per-image rows are Ultralytics' own, and the bootstrap computes exactly
what replicating the drawn images would."""

from __future__ import annotations

import numpy as np
import pytest
from ultralytics.utils.metrics import ap_per_class

from skintwin.errors import SkinTwinError
from skintwin.training.detstats import DetectionStats
from skintwin.training.uncertainty import bootstrap_interval, resamples, weighted_map


def _rows(n: int, seed: int, detected_classes: int = 3) -> list[dict]:
    """Random per-image rows shaped like the validator's: each box matched at most once
    per IoU threshold, so a class never has more true positives than boxes."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        d, g = int(rng.integers(0, 30)), int(rng.integers(0, 5))
        tp = np.cumprod(rng.random((d, 10)) < np.linspace(0.7, 0.2, 10), axis=1).astype(bool)
        pred_cls, target_cls = rng.integers(0, detected_classes, d), rng.integers(0, 3, g)
        for c in range(3):
            mine = np.flatnonzero(pred_cls == c)
            for t in range(10):
                tp[mine[tp[mine, t]][(target_cls == c).sum() :], t] = False
        rows.append(
            {
                "file": f"img{i}.jpg",
                "tp": tp,
                "conf": rng.random(d),
                "pred_cls": pred_cls,
                "target_cls": target_cls,
            }
        )
    return rows


@pytest.mark.parametrize(("seed", "detected"), [(0, 3), (1, 3), (2, 3), (3, 2)])
def test_summary_and_unit_weights_equal_ultralytics(seed: int, detected: int) -> None:
    """`detected` 2: class 2 has boxes but is never detected, so its AP is 0."""
    rows = _rows(50, seed, detected)
    stats = DetectionStats.from_rows(rows)
    cat = {
        k: np.concatenate([r[k] for r in rows]) for k in ("tp", "conf", "pred_cls", "target_cls")
    }
    ap = ap_per_class(cat["tp"], cat["conf"], cat["pred_cls"], cat["target_cls"])[5]
    summary = stats.summary()
    assert summary["mAP50"] == pytest.approx(ap[:, 0].mean(), abs=1e-12)
    assert summary["mAP50-95"] == pytest.approx(ap.mean(), abs=1e-12)
    ones = np.ones((1, len(stats)))
    assert weighted_map(stats, ones, "mAP50")[0] == pytest.approx(ap[:, 0].mean(), abs=1e-9)
    assert weighted_map(stats, ones, "mAP50-95")[0] == pytest.approx(ap.mean(), abs=1e-9)


def test_a_resample_equals_replicating_the_drawn_images() -> None:
    rows = _rows(40, 7)
    stats = DetectionStats.from_rows(rows)
    for counts in resamples(len(stats), 5, seed=3):
        drawn = [dict(rows[i], file=f"{k}") for k, i in enumerate(np.repeat(range(40), counts))]
        expected = DetectionStats.from_rows(drawn).summary()["mAP50"]
        assert weighted_map(stats, counts[None], "mAP50")[0] == pytest.approx(expected, abs=1e-9)


def test_intervals_are_seeded_and_narrow_with_more_images() -> None:
    small = DetectionStats.from_rows(_rows(20, 1))
    large = DetectionStats.from_rows(_rows(400, 1))
    a = bootstrap_interval(small, "mAP50", 300, seed=5)
    assert a == bootstrap_interval(small, "mAP50", 300, seed=5)
    b = bootstrap_interval(large, "mAP50", 300, seed=5)
    assert (b["hi"] - b["lo"]) < (a["hi"] - a["lo"])
    value = large.summary()["mAP50"]
    assert b["lo"] <= value <= b["hi"]


def test_empty_subsets_are_a_clear_error() -> None:
    stats = DetectionStats.from_rows(_rows(5, 0))
    with pytest.raises(SkinTwinError, match="empty subset"):
        stats.subset([])
    with pytest.raises(SkinTwinError, match="test split is empty"):
        DetectionStats.from_rows([])
    with pytest.raises(SkinTwinError, match="at least one image"):
        resamples(0, 10, 0)


def test_resamples_at_once_or_in_blocks_equal_one_by_one(monkeypatch) -> None:
    import skintwin.training.uncertainty as uncertainty

    stats = DetectionStats.from_rows(_rows(30, 4))
    weights = resamples(len(stats), 50, seed=1)
    whole = weighted_map(stats, weights, "mAP50-95")
    one_by_one = [weighted_map(stats, w[None], "mAP50-95")[0] for w in weights]
    assert np.allclose(whole, one_by_one, rtol=0, atol=1e-9)
    monkeypatch.setattr(uncertainty, "_BLOCK_CELLS", 7 * len(stats.conf))  # blocks of 7 rows
    assert np.array_equal(weighted_map(stats, weights, "mAP50-95"), whole)


def test_tied_confidences_give_the_bootstraps_figure_in_every_slice() -> None:
    """A model that saturates gives many detections one confidence. Under ties AP depends
    on the order, so the figure, its class's row and the all-ones resample (the interval's
    centre) must rank ties alike; NumPy's default sort, inside `ap_per_class`, did not."""
    rows = _rows(120, 11)
    for r in rows:
        r["conf"] = np.round(r["conf"] * 8) / 8  # 9 distinct confidences for ~1,700 rows
    stats = DetectionStats.from_rows(rows)
    ones = np.ones((1, len(stats)))
    summary = stats.summary()
    assert summary["mAP50"] == pytest.approx(weighted_map(stats, ones)[0], abs=1e-12)
    for c in range(3):
        mine = stats.only_class(c)
        assert mine.summary()["mAP50"] == pytest.approx(summary["classes"][c]["mAP50"])
        assert weighted_map(mine, ones)[0] == pytest.approx(summary["classes"][c]["mAP50"])


def test_each_class_row_is_yolo_vals_at_one_shared_confidence() -> None:
    """`yolo val` prints each class's precision and recall where the mean F1 over all
    classes peaks; each class at its own best F1 reads better than the model runs."""
    from skintwin.training.evaluation import summarise

    rows = _rows(60, 5)
    stats = DetectionStats.from_rows(rows)
    cat = {
        k: np.concatenate([r[k] for r in rows]) for k in ("tp", "conf", "pred_cls", "target_cls")
    }
    _, _, p, r, _, ap, classes, *_ = ap_per_class(
        cat["tp"], cat["conf"], cat["pred_cls"], cat["target_cls"]
    )
    evaluation = summarise(stats, ("all",) * len(stats), ("acne", "mole", "rash"), None)
    for k, c in enumerate(classes):
        row = evaluation.per_class[("acne", "mole", "rash")[c]]
        assert row["precision"] == pytest.approx(p[k], abs=1e-5)
        assert row["recall"] == pytest.approx(r[k], abs=1e-5)
        assert row["mAP50"] == pytest.approx(ap[k, 0], abs=1e-5)
    assert evaluation.overall["precision"] == pytest.approx(p.mean(), abs=1e-5)
