from __future__ import annotations

import numpy as np
import pytest

from skintwin.training.metrics import box_iou, match_image, summarise

GT = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]])
GT_CLS = np.array([0, 1])


def test_box_iou() -> None:
    iou = box_iou(GT, np.array([[0.1, 0.1, 0.3, 0.3], [0.2, 0.1, 0.4, 0.3]]))
    assert iou[0, 0] == pytest.approx(1.0)
    assert iou[0, 1] == pytest.approx(1 / 3)
    assert iou[1, 0] == 0


def test_perfect_predictions_score_one() -> None:
    m = match_image(GT.copy(), GT_CLS.copy(), np.array([0.9, 0.8]), GT, GT_CLS)
    s = summarise([m], n_classes=2)
    assert s["mAP50"] == pytest.approx(1.0, abs=0.01)
    assert s["mAP50-95"] == pytest.approx(1.0, abs=0.01)


def test_no_predictions_or_wrong_class_score_zero() -> None:
    empty = match_image(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), GT, GT_CLS)
    assert summarise([empty], 2)["mAP50"] == 0
    wrong = match_image(GT.copy(), np.array([1, 0]), np.array([0.9, 0.8]), GT, GT_CLS)
    assert summarise([wrong], 2)["mAP50"] == 0


def test_loose_box_counts_at_50_not_at_95() -> None:
    loose = np.array([[0.1, 0.1, 0.32, 0.32], [0.5, 0.5, 0.95, 0.95]])
    s = summarise([match_image(loose, GT_CLS.copy(), np.array([0.9, 0.8]), GT, GT_CLS)], 2)
    assert s["mAP50"] == pytest.approx(1.0, abs=0.01)
    assert s["mAP50-95"] < 0.9


def test_one_gt_matched_once() -> None:
    dup = np.array([GT[0], GT[0]])
    m = match_image(dup, np.array([0, 0]), np.array([0.9, 0.8]), GT[:1], GT_CLS[:1])
    assert m.correct[:, 0].tolist() == [True, False]


def test_half_found_class_means() -> None:
    m = match_image(GT[:1].copy(), GT_CLS[:1].copy(), np.array([0.9]), GT, GT_CLS)
    s = summarise([m], 2)
    assert s["per_class"][0]["mAP50"] == pytest.approx(1.0, abs=0.01)
    assert s["per_class"][1]["mAP50"] == 0
    assert s["mAP50"] == pytest.approx(0.5, abs=0.01)
