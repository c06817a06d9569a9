"""The parity gate an ONNX export passes before it may serve: run both the `.pt` and the
`.onnx` the way the service runs them, on the test split, and compare.

Passing means: at the serving confidence, ≥ 99% of each side's detections have a twin of
the same class on the other side at IoU ≥ 0.95, twins differ by ≤ 0.01 in confidence; and
mAP50 (from the served detections down to 0.001, matched to the labels) differs by ≤ 0.005
overall and in every tone group with 10 or more test images (a comparison of two
runtimes on the same images, so small groups count too). A failed check says which of these
broke, by how much; the version then serves on PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BOX_IOU = 0.95
BOX_SHARE = 0.99
MAX_CONF_DELTA = 0.01
MAX_MAP_DELTA = 0.005
LOW_CONF = 0.001  # predictions for mAP50: the served pipeline down to the validator's floor


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (n × 4) with every box in b (m × 4), xyxy."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def twins(ours: list[dict], theirs: list[dict], conf: float) -> tuple[int, int, float]:
    """(detections of `ours` at ≥ conf, how many have a same-class twin in `theirs` at
    IoU ≥ 0.95, the largest confidence difference between twins)."""
    total = matched = 0
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        mine = [d for d in a["detections"] if d["confidence"] >= conf]
        other = [d for d in b["detections"] if d["confidence"] >= conf - MAX_CONF_DELTA]
        total += len(mine)
        if not mine or not other:
            continue
        iou = _iou(np.array([d["box"] for d in mine]), np.array([d["box"] for d in other]))
        for i, d in enumerate(mine):
            same = [j for j, o in enumerate(other) if o["class_name"] == d["class_name"]]
            if same and iou[i, same].max() >= BOX_IOU:
                j = same[int(np.argmax(iou[i, same]))]
                matched += 1
                worst = max(worst, abs(d["confidence"] - other[j]["confidence"]))
    return total, matched, worst


def check_parity(
    weights: Path, onnx: Path, dataset: Path, test, names, serving_conf: float, imgsz: int,
    min_images: int = 10, runs=None,
) -> dict:  # fmt: skip
    """The parity verdict of `onnx` against `weights` on `dataset`'s test split.

    Args:
        test: the candidate's `Evaluation` (its test files and their tone groups).
        runs: a `served.ServedRuns` whose passes this shares (the `.pt` on the test split).

    Returns:
        {"passed", "reasons": [...], "boxes": {"pytorch": [matched, total], "onnx": [...]},
         "max_conf_delta", "mAP50": {slice: {"pytorch", "onnx", "delta"}}}.
    """
    from skintwin.training.served import ServedRuns, matched_stats
    from skintwin.training.truth import slices

    images = [Path(dataset) / f for f in test.stats.files]
    labels = Path(dataset) / "labels" / "test"
    runs = runs or ServedRuns(imgsz)
    preds = {b: runs.predict(w, images, LOW_CONF) for b, w in
             (("pytorch", weights), ("onnx", onnx))}  # fmt: skip
    boxes, deltas, reasons = {}, [], []
    for side, other in (("pytorch", "onnx"), ("onnx", "pytorch")):
        total, matched, worst = twins(preds[side], preds[other], serving_conf)
        boxes[side] = [matched, total]
        deltas.append(worst)
        if total and matched / total < BOX_SHARE:
            reasons.append(f"{side} detections with an ONNX/PyTorch twin at IoU ≥ {BOX_IOU}: "
                           f"{matched} of {total} (< {BOX_SHARE:.0%})")  # fmt: skip
    if max(deltas) > MAX_CONF_DELTA:
        reasons.append(f"confidence differs by up to {max(deltas):.4f} (> {MAX_CONF_DELTA})")
    stats = {side: matched_stats(preds[side], images, labels, names) for side in preds}
    maps = {}
    for name, members in slices(test.groups, min_images).items():
        a, b = (stats[s].subset(members).summary()["mAP50"] for s in ("pytorch", "onnx"))
        maps[name] = {"pytorch": round(a, 5), "onnx": round(b, 5), "delta": round(b - a, 5)}
        if abs(b - a) > MAX_MAP_DELTA:
            reasons.append(f"mAP50 on {name}: {a:.4f} (PyTorch) vs {b:.4f} (ONNX)")
    return {"passed": not reasons, "reasons": reasons, "boxes": boxes,
            "max_conf_delta": round(max(deltas), 6), "mAP50": maps}  # fmt: skip


def parity_record(
    weights: Path, onnx: Path, dataset: Path, test, serving_conf: float, imgsz: int, runs=None
) -> dict:
    """The parity verdict of the export `onnx` of `weights`, with the export's opset: what
    the version records (`parity.json`)."""
    from skintwin.model.onnx import OPSET
    from skintwin.training.served import ServedRuns

    runs = runs or ServedRuns(imgsz)
    names = runs.detector(weights).names
    verdict = check_parity(weights, onnx, dataset, test, tuple(names[k] for k in sorted(names)),
                           serving_conf, imgsz, runs=runs)  # fmt: skip
    return {**verdict, "opset": OPSET, "serving_conf": serving_conf, "imgsz": imgsz}
