"""Evaluate a YOLO weights file on the test split: overall, per class, per skin-tone group.

Used by the evaluate stage for the candidate and by the promotion gate for the current
champion, so both are measured the same way on the same images, now.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skintwin.dataset import label_path, read_names
from skintwin.errors import SkinTwinError
from skintwin.metrics import ImageMatches, match_image, summarise
from skintwin.params import EvaluateParams

CM_CONF, CM_IOU = 0.25, 0.45  # operating point for the confusion matrix


def _xywh_to_xyxy(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2], axis=1)


def _ground_truth(image: Path) -> tuple[np.ndarray, np.ndarray]:
    lbl = label_path(image)
    if not lbl.exists() or not lbl.read_text().strip():
        return np.zeros((0, 4)), np.zeros(0, int)
    rows = np.loadtxt(lbl, ndmin=2)
    return _xywh_to_xyxy(rows[:, 1:5]), rows[:, 0].astype(int)


def load_yolo(weights: str | Path):
    """A YOLO model from a local weights file (never a download)."""
    from skintwin.env import quiet_ultralytics

    weights = Path(weights)
    if not weights.is_file():
        raise SkinTwinError(f"{weights}: weights file not found")
    quiet_ultralytics()
    from ultralytics import YOLO

    return YOLO(str(weights))


def evaluate_weights(
    weights: str | Path, dataset: Path, params: EvaluateParams, device: str = "cpu"
) -> dict:
    """Metrics of `weights` on `dataset`'s test split.

    Args:
        dataset: a preprocess output folder (data.yaml, images/test, reference features).

    Returns:
        {"overall": {...}, "per_class": {name: {...}}, "per_group": {group: {..., "images"}},
         "pr_curves": {name: [101 precisions]}, "confusion": [(actual, predicted), ...]}
    """
    _, names = read_names(dataset / "data.yaml")
    table = pd.read_parquet(dataset / "reference_features.parquet")
    test = table[table["split"] == "test"].sort_values("file").reset_index(drop=True)
    if test.empty:
        raise SkinTwinError(f"{dataset}: the test split is empty")
    model = load_yolo(weights)
    model_names = tuple(model.names[i] for i in sorted(model.names))
    if model_names != names:
        raise SkinTwinError(
            f"{weights}: model classes {list(model_names)} differ from dataset {list(names)}"
        )
    images = [dataset / f for f in test["file"]]
    matches: list[ImageMatches] = []
    confusion: list[tuple[str, str]] = []
    results = model.predict(
        [str(p) for p in images],
        conf=params.conf,
        iou=params.iou,
        imgsz=params.imgsz,
        device=device,
        max_det=300,
        verbose=False,
        stream=True,
    )
    for image, res in zip(images, results, strict=True):
        gt_xyxy, gt_cls = _ground_truth(image)
        xyxy = res.boxes.xyxyn.cpu().numpy().astype(float)
        cls = res.boxes.cls.cpu().numpy().astype(int)
        conf = res.boxes.conf.cpu().numpy().astype(float)
        matches.append(match_image(xyxy, cls, conf, gt_xyxy, gt_cls))
        confusion.extend(
            _confusion_pairs(xyxy[conf >= CM_CONF], cls[conf >= CM_CONF], gt_xyxy, gt_cls, names)
        )
    overall = summarise(matches, len(names))
    per_group = {}
    for group, rows in test.groupby("tone_group"):
        idx = rows.index.tolist()
        s = summarise([matches[i] for i in idx], len(names))
        per_group[str(group)] = {"images": len(idx), **_headline(s)}
    return {
        "overall": {"images": len(images), **_headline(overall)},
        "per_class": {names[c]: v for c, v in overall["per_class"].items()},
        "per_group": per_group,
        "pr_curves": {names[c]: v.tolist() for c, v in overall["pr_curves"].items()},
        "confusion": confusion,
    }


def _headline(s: dict) -> dict:
    return {k: round(s[k], 5) for k in ("mAP50", "mAP50-95", "precision", "recall")}


def _confusion_pairs(xyxy, cls, gt_xyxy, gt_cls, names) -> list[tuple[str, str]]:
    """(actual, predicted) per box at the confusion operating point; misses use 'background'."""
    from skintwin.metrics import box_iou

    pairs, used = [], set()
    iou = box_iou(gt_xyxy, xyxy)
    for g in range(len(gt_cls)):
        j = int(np.argmax(iou[g])) if iou.shape[1] else -1
        if j >= 0 and iou[g, j] >= CM_IOU and j not in used:
            used.add(j)
            pairs.append((names[gt_cls[g]], names[cls[j]]))
        else:
            pairs.append((names[gt_cls[g]], "background"))
    pairs += [("background", names[cls[j]]) for j in range(len(cls)) if j not in used]
    return pairs
