"""Detections as the service makes them (the pyfunc's `predict`, one NMS label per box at
the production confidence), matched to ground truth: what the label-free estimator is
fitted on, so that it calibrates the detections production will store.

`model.val()` is not that: it keeps every class above 0.001 per box (multi-label NMS), so
its detections at 0.25 and above are not the service's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skintwin.data.images import decode_image
from skintwin.training.detstats import N_IOU, DetectionStats

IOU = 0.5


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _truth(label: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes, pixel xyxy boxes) of a YOLO label file (none when it is missing)."""
    rows = np.loadtxt(label, ndmin=2) if label.is_file() else np.zeros((0, 5))
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return rows[:, 0].astype(int), boxes


def match(dets: list[dict], classes: np.ndarray, boxes: np.ndarray, names) -> np.ndarray:
    """True positive (IoU ≥ 0.5, same class, each true box once, most confident first)?"""
    index = {n: k for k, n in enumerate(names)}
    tp = np.zeros(len(dets), bool)
    used = np.zeros(len(classes), bool)
    for i in sorted(range(len(dets)), key=lambda j: -dets[j]["confidence"]):
        same = np.flatnonzero((classes == index.get(dets[i]["class_name"], -1)) & ~used)
        if same.size:
            overlap = _iou(np.asarray(dets[i]["box"], float), boxes[same])
            best = int(np.argmax(overlap))
            if overlap[best] >= IOU:
                tp[i], used[same[best]] = True, True
    return tp


class ServedRuns:
    """The service's predictions for the evaluate stage's passes (estimator, embedding
    projection, ONNX parity), at one image size: one detector per weights file, and each
    image predicted once per weights. A pass at a higher confidence is the lower one's
    detections at or above it: NMS keeps a box whatever boxes below it were candidates, so
    these are the detections the service keeps at that confidence."""

    def __init__(self, imgsz: int) -> None:
        self.imgsz = imgsz
        self._detectors: dict[str, object] = {}
        self._runs: dict[tuple, tuple[float, dict]] = {}  # (weights, image, layer) -> pass

    def detector(self, weights: Path):
        """The pyfunc detector of `weights`, loaded once."""
        from skintwin.model.pyfunc import SkinTwinDetector

        key = str(weights)
        if key not in self._detectors:
            self._detectors[key] = SkinTwinDetector().load(weights)
        return self._detectors[key]

    def predict(
        self, weights: Path, images: list[Path], conf: float, embed_layer: int | None = None
    ) -> list[dict]:
        """Predictions of `images` at `conf` (with each image's pooled `embed_layer` map);
        only the images not yet predicted down to `conf` are predicted, 16 at a time."""
        keys = [(str(weights), str(Path(p).resolve()), embed_layer) for p in images]
        todo = [i for i, k in enumerate(keys) if k not in self._runs or self._runs[k][0] > conf]
        params = {"conf": conf, "imgsz": self.imgsz}
        if embed_layer is not None:
            params["embed_layer"] = embed_layer
        for start in range(0, len(todo), 16):
            chunk = todo[start : start + 16]
            pixels = [decode_image(images[i]) for i in chunk]
            preds = self.detector(weights).predict_pixels(pixels, params)
            self._runs.update({keys[i]: (conf, p) for i, p in zip(chunk, preds, strict=True)})
        done = [self._runs[k] for k in keys]
        return [pred if at == conf else at_conf(pred, conf) for at, pred in done]


def at_conf(pred: dict, conf: float) -> dict:
    """A prediction with only its detections at or above `conf`."""
    return {**pred, "detections": [d for d in pred["detections"] if d["confidence"] >= conf]}


def matched_stats(preds: list[dict], images: list[Path], labels: Path, names) -> DetectionStats:
    """Predictions of `images` (labels in `labels/<stem>.txt`) matched to their labels."""
    tp, confs, cls_, det_image, gt_cls, gt_image = [], [], [], [], [], []
    index = {n: k for k, n in enumerate(names)}
    for i, (path, pred) in enumerate(zip(images, preds, strict=True)):
        classes, boxes = _truth(labels / f"{path.stem}.txt", pred["width"], pred["height"])
        dets = [d for d in pred["detections"] if d["class_name"] in index]
        tp += match(dets, classes, boxes, names).tolist()
        confs += [d["confidence"] for d in dets]
        cls_ += [index[d["class_name"]] for d in dets]
        det_image += [i] * len(dets)
        gt_cls += classes.tolist()
        gt_image += [i] * len(classes)
    return DetectionStats(
        files=tuple(p.name for p in images),
        tp=np.repeat(np.array(tp, bool).reshape(-1, 1), N_IOU, axis=1),
        conf=np.array(confs, float),
        pred_cls=np.array(cls_, int),
        det_image=np.array(det_image, int),
        gt_cls=np.array(gt_cls, int),
        gt_image=np.array(gt_image, int),
    )


def served_stats(
    weights: Path, images: list[Path], labels: Path, names, conf: float, imgsz: int,
    runs: ServedRuns | None = None,
) -> DetectionStats:  # fmt: skip
    """The service's detections on `images` (labels in `labels/<stem>.txt`), matched."""
    preds = (runs or ServedRuns(imgsz)).predict(weights, images, conf)
    return matched_stats(preds, images, labels, names)
