"""LoadedModel: a detector ready to predict, and where it came from."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from skintwin.data.images import decode_image
from skintwin.model.embedding import Projection
from skintwin.model.pyfunc import SkinTwinDetector


@dataclass
class LoadedModel:
    """A loaded detector: registry version, local cache copy, or a local `.pt`."""

    name: str
    version: str
    alias: str
    source: str  # "registry" | "local cache" | "local weights"
    path: Path
    detector: SkinTwinDetector = field(repr=False)
    projection_file: Path | None = None  # default: the version's `artifacts/embedding.npz`

    @classmethod
    def from_pyfunc_dir(cls, path: Path, name: str, version: str, alias: str, source: str):
        """A model folder as MLflow stores it (MLmodel, artifacts, code)."""
        import mlflow.pyfunc

        detector = mlflow.pyfunc.load_model(str(path)).unwrap_python_model()
        return cls(name, str(version), alias, source, Path(path), detector)

    @classmethod
    def from_weights(cls, weights: str | Path, projection: Path | None = None) -> LoadedModel:
        """A local `.pt`, served without the registry (with an embedding projection when
        given, e.g. the evaluate stage's `embedding.npz`)."""
        weights = Path(weights)
        detector = SkinTwinDetector().load(weights)
        return cls(weights.stem, "local", "-", "local weights", weights, detector, projection)

    def estimator_doc(self) -> dict:
        """The version's label-free performance estimator (`estimator.json`, fitted at
        training time), or {"available": False, "reason"} when it carries none."""
        import json

        path = self.path / "artifacts" / "estimator.json"
        if not path.is_file():
            return {"available": False, "reason": f"{self.name} v{self.version} has no estimator"}
        return json.loads(path.read_text())

    @property
    def runtime(self) -> str:
        """ "onnx" or "pytorch": what the detector runs on."""
        return getattr(self.detector, "runtime", "pytorch")

    @functools.cached_property
    def projection(self) -> Projection | None:
        """The version's embedding projection (`embedding.npz`, fitted at training time), or
        None: a version without one stores no embeddings."""
        path = self.projection_file or self.path / "artifacts" / "embedding.npz"
        return Projection.load(path) if path.is_file() else None

    def predict(
        self, images, conf: float = 0.25, imgsz: int | None = None, embed: bool = True
    ) -> list[dict]:
        """Detections for one image (a local path, bytes, an RGB array) or a list of them;
        with `embed` and a projection, each result also has "embedding" (a list of numbers,
        float16 precision: what the store keeps).

        Local paths are read here, in the caller's process; the pyfunc itself never reads
        paths (it may serve remote callers).
        """
        items = images if isinstance(images, list | tuple) else [images]
        pixels = [decode_image(item) for item in items]
        params = {"conf": float(conf)} | ({"imgsz": int(imgsz)} if imgsz else {})
        projection = self.projection if embed else None
        if projection is not None:
            params["embed_layer"] = projection.layer
        out = self.detector.predict_pixels(pixels, params)
        if projection is not None:
            vectors = projection.apply([o.pop("pooled") for o in out]).astype("float16")
            for o, v in zip(out, vectors.astype(float).tolist(), strict=True):
                o["embedding"] = v
        return out
