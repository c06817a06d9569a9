"""The champion's backbone embedding: read during the prediction itself, per thread, and
carried from the registry to the store and the drift report."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_embeddings_come_with_predictions_and_threads_keep_their_own(champion: Path) -> None:
    from skintwin.model.embedding import matrix
    from skintwin.serving.loader import ModelLoader

    model = ModelLoader(project_dir=champion).load("skin-twin-detector")
    assert model.projection is not None and model.projection.dims >= 2
    images = sorted((champion / "batches/normal/images").iterdir())[:8]
    one_by_one = [model.predict(str(p), imgsz=64)[0] for p in images]
    vectors = matrix([p["embedding"] for p in one_by_one])
    assert vectors.shape == (8, model.projection.dims)
    assert len({v.tobytes() for v in vectors}) == 8  # one per image, not one repeated
    with ThreadPoolExecutor(4) as pool:  # the service predicts from several threads
        together = list(pool.map(lambda p: model.predict(str(p), imgsz=64)[0], images * 3))
    assert np.allclose(matrix([p["embedding"] for p in together]), np.vstack([vectors] * 3),
                       atol=1e-2)  # fmt: skip
    plain = model.predict([str(p) for p in images], imgsz=64, embed=False)
    assert all("embedding" not in p and "pooled" not in p for p in plain)
    assert [p["detections"] for p in plain] == [p["detections"] for p in one_by_one]
