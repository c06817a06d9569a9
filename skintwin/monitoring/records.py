"""One prediction as a store row: the prediction's features plus the image's features.

The same function builds production rows and the drift reference's prediction columns, so
drift compares like with like. Images are never stored, only their features.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd

from skintwin.data.features import image_features
from skintwin.data.images import decode_image
from skintwin.errors import SkinTwinError
from skintwin.monitoring.schema import new_uid


def detections(prediction: dict | list) -> list[dict]:
    """The detections of a prediction in any of the shapes the application produces."""
    if isinstance(prediction, list):
        items = prediction
    else:
        items = prediction.get("detections", prediction.get("predictions", []))
    out = []
    for d in items or []:
        out.append(
            {
                "class_name": str(d.get("class_name", d.get("class", d.get("name", "")))),
                "confidence": float(d.get("confidence", d.get("conf", d.get("score", 0.0)))),
                "box": [float(v) for v in d.get("box", d.get("bbox", [])) or []],
            }
        )
    return out


def prediction_mix(dets: list[dict], width: float | None, height: float | None) -> dict:
    """What the model found in one image, as two drift columns: `main_class`, the class it
    found most often ("none" without detections; ties go to the higher summed confidence),
    and `box_size`, the median box side relative to the image (sqrt of the area share; NaN
    without detections or an image size). A changed lesion mix moves the first; lesions
    seen closer or farther away, or a model that now finds only the large ones, the second."""
    if not dets:
        return {"main_class": "none", "box_size": math.nan}
    score: dict[str, tuple[int, float]] = {}
    for d in dets:
        n, conf = score.get(d["class_name"], (0, 0.0))
        score[d["class_name"]] = (n + 1, conf + d["confidence"])
    sides = [
        math.sqrt(max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]))
        for b in (d["box"] for d in dets)
        if len(b) == 4
    ]
    scale = math.sqrt(width * height) if width and height else 0.0
    size = float(np.median(sides)) / scale if sides and scale > 0 else math.nan
    return {"main_class": max(score, key=lambda c: score[c]), "box_size": size}


def prediction_row(
    prediction: dict | list,
    image=None,
    *,
    model_name: str,
    model_version: str = "",
    latency_ms: float | None = None,
    source: str = "",
    image_ref: str | None = None,
    uid: str | None = None,
) -> dict:
    """One store row: prediction features plus the image's features (or the decode error).

    `uid` makes the row's id deterministic (a batch's image); by default it is random."""
    dets = detections(prediction)
    counts: dict[str, int] = {}
    for d in dets:
        counts[d["class_name"]] = counts.get(d["class_name"], 0) + 1
    row = {
        "uid": uid or new_uid(),
        "ts": time.time(),
        "model_name": model_name,
        "model_version": str(model_version),
        "source": source,
        "latency_ms": latency_ms,
        "n_detections": len(dets),
        "mean_confidence": float(np.mean([d["confidence"] for d in dets])) if dets else 0.0,
        "class_counts": counts,
        "detections": dets,
        "image_ref": image_ref,
        "embedding": prediction.get("embedding") if isinstance(prediction, dict) else None,
    }
    size = (
        (prediction.get("width"), prediction.get("height")) if isinstance(prediction, dict) else ()
    )
    if image is None:
        return row | prediction_mix(dets, *(size or (None, None)))
    try:
        rgb = decode_image(image)
    except SkinTwinError as exc:
        row["error"] = str(exc)
        return row
    h, w = rgb.shape[:2]
    row.update(prediction_mix(dets, w, h))
    boxes = [
        ((b[0] + b[2]) / 2 / w, (b[1] + b[3]) / 2 / h, (b[2] - b[0]) / w, (b[3] - b[1]) / h)
        for b in (d["box"] for d in dets)
        if len(b) == 4
    ]
    row.update(image_features(rgb, boxes))
    return row


def json_cell(kind: type):
    """A JSON column's cell as `kind`: stored rows hold JSON text, fresh rows the object."""

    def parse(cell: object):
        value = json.loads(cell) if isinstance(cell, str) and cell else cell
        return value if isinstance(value, kind) else kind()

    return parse


def store_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Store rows as a drift-ready frame: failed rows dropped, JSON columns parsed."""
    ok = frame[frame["error"].isna()] if "error" in frame else frame
    ok = ok.copy()
    if "class_counts" in ok:
        ok["class_counts"] = ok["class_counts"].map(json_cell(dict))
    if "detections" in ok and len(ok):  # the prediction-mix columns, from what is stored
        dets = ok["detections"].map(json_cell(list))
        mix = [
            prediction_mix(d, w, h)
            for d, w, h in zip(
                dets,
                ok.get("width", [None] * len(ok)),
                ok.get("height", [None] * len(ok)),
                strict=True,
            )
        ]
        ok["main_class"] = [m["main_class"] for m in mix]
        ok["box_size"] = [m["box_size"] for m in mix]
    return ok
