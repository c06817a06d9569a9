"""Ultralytics' own validator on a test split, with the per-image rows it computes kept.

`model.val()` matches detections to ground truth image by image and then throws the
matching away after computing AP; we keep each image's rows, so that every slice and every
bootstrap resample is computed exactly as `yolo val` computes the whole split.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple

from skintwin.data.dataset import read_names
from skintwin.errors import SkinTwinError
from skintwin.model.yolo import class_names, load_weights
from skintwin.params import EvaluateParams

CM_CONF = 0.25  # the confusion matrix's operating point (IoU 0.45: Ultralytics' default)


class Rows(NamedTuple):
    """A validator run's per-image rows and the class names, without Ultralytics' objects:
    what a process running the validator beside another sends back."""

    rows: list[dict]
    names: tuple[str, ...]


class _Capture:
    """Per-image rows of a real `model.val()` run (Ultralytics' own matching).

    Wraps the validator's `update_metrics` at `on_val_start`: each call adds one row per
    image of the batch to the validator's stats; we copy those rows with the image file.
    The same detections also feed Ultralytics' confusion matrix at a readable operating
    point (confidence 0.25, IoU 0.45), not at the validator's 0.001.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        from ultralytics.utils.metrics import ConfusionMatrix

        self.names = names  # the dataset's (and so the model's) class names, in order
        self.rows: list[dict] = []
        self.matrix = ConfusionMatrix(names=dict(enumerate(names)))

    def on_val_start(self, validator) -> None:
        self.rows = []
        original = validator.update_metrics

        def update_metrics(preds, batch) -> None:
            start = len(validator.metrics.stats["tp"])
            original(preds, batch)
            stats = validator.metrics.stats
            for j, file in enumerate(batch["im_file"]):
                self.rows.append({"file": file, **{k: stats[k][start + j] for k in stats}})
            for j, pred in enumerate(preds):
                pbatch = validator._prepare_batch(j, batch)
                self.matrix.process_batch(validator._prepare_pred(pred), pbatch, conf=CM_CONF)

        validator.update_metrics = update_metrics


def run_val(
    weights: Path, dataset: Path, params: EvaluateParams, device: str, split: str = "test"
) -> _Capture:
    """`YOLO(weights).val(split=split)` with its per-image rows captured."""
    model = load_weights(weights)
    _, names = read_names(dataset / "data.yaml")
    if class_names(model) != names:
        theirs = list(class_names(model))
        raise SkinTwinError(f"{weights}: model classes {theirs} differ from dataset {list(names)}")
    capture = _Capture(names)
    model.add_callback("on_val_start", capture.on_val_start)
    with tempfile.TemporaryDirectory() as tmp:  # Ultralytics' run folder: nothing we keep
        model.val(
            data=str((dataset / "data.yaml").resolve()),
            split=split,
            conf=params.conf,
            iou=params.iou,
            imgsz=params.imgsz,
            batch=16,
            device=device,
            plots=False,
            verbose=False,
            project=tmp,
            name="val",
        )
    return capture
