"""Detection metrics (COCO-style mAP) over any subset of images.

Computed from per-image matches so that one inference pass on the test split yields
overall, per-class and per-skin-tone-group figures. Conventions follow Ultralytics' own
validator (greedy matching by confidence, 101-point interpolated AP, precision and recall
at the confidence that maximises mean F1), so numbers are comparable with `yolo val`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass
class ImageMatches:
    """Detections of one image matched against its ground truth."""

    correct: np.ndarray  # (N, 10) bool: detection is a true positive at each IoU threshold
    conf: np.ndarray  # (N,)
    pred_cls: np.ndarray  # (N,)
    gt_cls: np.ndarray  # (M,)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def match_image(
    pred_xyxy: np.ndarray,
    pred_cls: np.ndarray,
    conf: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_cls: np.ndarray,
) -> ImageMatches:
    """Greedy matching by descending confidence; one ground-truth box per detection."""
    order = np.argsort(-conf, kind="stable")
    pred_xyxy, pred_cls, conf = pred_xyxy[order], pred_cls[order], conf[order]
    correct = np.zeros((len(pred_cls), len(IOU_THRESHOLDS)), bool)
    iou = box_iou(gt_xyxy, pred_xyxy) * (gt_cls[:, None] == pred_cls[None, :])
    claimed = np.zeros((len(gt_cls), len(IOU_THRESHOLDS)), bool)
    for j in range(len(pred_cls)):
        if len(gt_cls) == 0:
            break
        available = np.where(claimed, 0.0, iou[:, j, None])
        k = available.argmax(0)
        hit = available[k, np.arange(len(IOU_THRESHOLDS))] >= IOU_THRESHOLDS
        correct[j] = hit
        claimed[k[hit], np.arange(len(IOU_THRESHOLDS))[hit]] = True
    return ImageMatches(correct, conf, pred_cls.astype(int), gt_cls.astype(int))


def _ap(recall: np.ndarray, precision: np.ndarray) -> tuple[float, np.ndarray]:
    """101-point interpolated AP and the interpolated precision at recall 0..1."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(np.concatenate(([1.0], precision, [0.0])))))
    x = np.linspace(0, 1, 101)
    curve = np.interp(x, mrec, mpre, right=0.0)
    return float(np.trapezoid(curve, x)), curve


def summarise(matches: Sequence[ImageMatches], n_classes: int) -> dict:
    """mAP50, mAP50-95, precision, recall overall and per class, plus PR curves at IoU 0.5.

    Classes without ground truth in `matches` are left out of the means (as Ultralytics does).
    """
    if matches:
        correct = np.concatenate([m.correct for m in matches]) if matches else np.zeros((0, 10))
        conf = np.concatenate([m.conf for m in matches])
        pred_cls = np.concatenate([m.pred_cls for m in matches])
        gt_cls = np.concatenate([m.gt_cls for m in matches])
    else:
        correct, conf = np.zeros((0, 10), bool), np.zeros(0)
        pred_cls = gt_cls = np.zeros(0, int)
    order = np.argsort(-conf, kind="stable")
    correct, conf, pred_cls = correct[order], conf[order], pred_cls[order]
    grid = np.linspace(0, 1, 1000)
    per_class, pr_curves, p_at, r_at = {}, {}, [], []
    for c in range(n_classes):
        n_gt = int((gt_cls == c).sum())
        if n_gt == 0:
            continue
        sel = pred_cls == c
        tp = np.cumsum(correct[sel], axis=0)
        fp = np.cumsum(~correct[sel], axis=0)
        recall = tp / (n_gt + 1e-16)
        precision = tp / (tp + fp + 1e-16)
        aps = np.zeros(len(IOU_THRESHOLDS))
        curve = np.zeros(101)
        for t in range(len(IOU_THRESHOLDS)):
            aps[t], cur = _ap(recall[:, t], precision[:, t]) if sel.any() else (0.0, np.zeros(101))
            if t == 0:
                curve = cur
        # precision/recall as functions of the confidence threshold, for the max-F1 point
        confs = conf[sel]
        p_at.append(np.interp(-grid, -confs, precision[:, 0], left=1) if sel.any() else grid * 0)
        r_at.append(np.interp(-grid, -confs, recall[:, 0], left=0) if sel.any() else grid * 0)
        per_class[c] = {"instances": n_gt, "mAP50": float(aps[0]), "mAP50-95": float(aps.mean())}
        pr_curves[c] = curve
    if not per_class:
        return {
            "mAP50": 0.0,
            "mAP50-95": 0.0,
            "precision": 0.0,
            "recall": 0.0,
            "per_class": {},
            "pr_curves": {},
        }
    P, R = np.array(p_at), np.array(r_at)
    f1 = (2 * P * R / (P + R + 1e-16)).mean(0)
    best = int(np.argmax(f1))
    for k, c in enumerate(per_class):
        per_class[c]["precision"] = float(P[k, best])
        per_class[c]["recall"] = float(R[k, best])
    return {
        "mAP50": float(np.mean([v["mAP50"] for v in per_class.values()])),
        "mAP50-95": float(np.mean([v["mAP50-95"] for v in per_class.values()])),
        "precision": float(P[:, best].mean()),
        "recall": float(R[:, best].mean()),
        "per_class": per_class,
        "pr_curves": pr_curves,
    }
