"""The embedding projection a version carries: fitted when the version is evaluated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skintwin.data.dataset import list_images
from skintwin.data.images import decode_image
from skintwin.model.embedding import Projection
from skintwin.params import EvaluateParams


def fit_projection(weights: Path, dataset: Path, params: EvaluateParams, imgsz: int) -> Projection:
    """Whitening PCA of `params.embed_layer`'s pooled output over the training split,
    predicted the way the service predicts (size `imgsz`): the reference and production
    images that drift compares are neither of them fitted on."""
    from skintwin.model.pyfunc import SkinTwinDetector

    detector = SkinTwinDetector().load(weights)
    images = list_images(Path(dataset) / "images" / "train")
    pooled = []
    for start in range(0, len(images), 16):
        chunk = [decode_image(p) for p in images[start : start + 16]]
        preds = detector.predict_pixels(
            chunk, {"conf": 0.25, "imgsz": imgsz, "embed_layer": params.embed_layer}
        )
        pooled += [p["pooled"] for p in preds]
    return Projection.fit(np.stack(pooled), params.embed_layer, params.embed_dims)
