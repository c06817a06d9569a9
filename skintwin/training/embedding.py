"""The embedding projection a version carries: fitted when the version is evaluated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skintwin.data.dataset import list_images
from skintwin.model.embedding import Projection
from skintwin.params import EvaluateParams


def fit_projection(
    weights: Path, dataset: Path, params: EvaluateParams, imgsz: int, runs=None
) -> Projection:
    """Whitening PCA of `params.embed_layer`'s pooled output over the training split,
    predicted the way the service predicts (size `imgsz`; `runs`, a `served.ServedRuns`,
    shares the detector): the reference and production images that drift compares are
    neither of them fitted on."""
    from skintwin.training.served import ServedRuns

    images = list_images(Path(dataset) / "images" / "train")
    preds = (runs or ServedRuns(imgsz)).predict(weights, images, 0.25, params.embed_layer)
    pooled = [p["pooled"] for p in preds]
    return Projection.fit(np.stack(pooled), params.embed_layer, params.embed_dims)
