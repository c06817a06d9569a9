"""The MLflow pyfunc wrapper around YOLO weights, as registered in the model registry.

`mlflow.pyfunc.load_model("models:/skin-twin-detector@champion").predict(x)` accepts an
image path, encoded bytes, an RGB array, a list of those, or a DataFrame with an `image`
column (paths, or base64-encoded bytes as `mlflow models serve` receives them) and returns
one dict per image: {"width", "height", "detections": [{class_id, class_name, confidence,
box: [x1, y1, x2, y2] in pixels}]}.
"""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path

import mlflow.pyfunc
import numpy as np

from skintwin.data.features import load_rgb
from skintwin.model.yolo import load_weights


def as_sources(model_input) -> list:
    """The images in a pyfunc input, one entry per image."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        column = "image" if "image" in model_input.columns else model_input.columns[0]
        return [decode_cell(v) for v in model_input[column].tolist()]
    if (
        isinstance(model_input, np.ndarray)
        and model_input.ndim in (2, 3)
        and model_input.dtype == np.uint8
    ):
        return [model_input]
    if isinstance(model_input, list | tuple):
        return list(model_input)
    return [model_input]


def decode_cell(value):
    """A DataFrame cell: bytes, a path, or base64 text (what a JSON request carries)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        with contextlib.suppress(OSError):
            if len(value) < 1024 and Path(value).exists():
                return value
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value
    return value


class SkinTwinDetector(mlflow.pyfunc.PythonModel):
    """YOLO detector behind the pyfunc interface; class names travel with the weights."""

    def load_context(self, context) -> None:
        self.load(context.artifacts["weights"])

    def load(self, weights: str | Path) -> SkinTwinDetector:
        """Load the weights (what `load_context` does, for a local `.pt` without MLflow)."""
        from skintwin.runtime import configure_offline

        configure_offline(Path(weights).parent)
        self._model = load_weights(weights)
        self.names = {int(k): v for k, v in self._model.names.items()}
        return self

    def predict(self, context, model_input, params: dict | None = None) -> list[dict]:
        params = params or {}
        conf = float(params.get("conf", 0.25))
        imgsz = int(params.get("imgsz", 0)) or None
        images = [load_rgb(s) for s in as_sources(model_input)]
        kwargs = {"conf": conf, "verbose": False, "device": params.get("device", "cpu")}
        if imgsz:
            kwargs["imgsz"] = imgsz
        # Ultralytics expects BGR arrays, as OpenCV reads them.
        results = self._model.predict([im[..., ::-1] for im in images], **kwargs)
        return [self._to_dict(im, r) for im, r in zip(images, results, strict=True)]

    def _to_dict(self, image: np.ndarray, result) -> dict:
        boxes = result.boxes
        xyxy = boxes.xyxy.cpu().numpy().tolist()
        cls = boxes.cls.cpu().numpy().astype(int).tolist()
        conf = boxes.conf.cpu().numpy().tolist()
        return {
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "detections": [
                {
                    "class_id": c,
                    "class_name": self.names.get(c, str(c)),
                    "confidence": round(float(p), 5),
                    "box": [round(v, 2) for v in b],
                }
                for b, c, p in zip(xyxy, cls, conf, strict=True)
            ],
        }
