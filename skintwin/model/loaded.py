"""LoadedModel: a detector ready to predict, and where it came from."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from skintwin.data.images import decode_image
from skintwin.errors import SkinTwinError
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
        """A model folder as MLflow stores it (MLmodel, artifacts, code).

        MLflow puts the version's `code/` folder first on sys.path for good; this process
        already runs this project's code, so the entry is taken off again: otherwise the
        processes it starts (Dask workers) would import the version's older copy.
        """
        import sys

        import mlflow.pyfunc

        before = list(sys.path)
        detector = mlflow.pyfunc.load_model(str(path)).unwrap_python_model()
        sys.path[:] = before
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
    def weights(self) -> Path:
        """The `.pt` behind this model (what Ultralytics' validator runs)."""
        if self.path.suffix == ".pt":
            return self.path
        found = sorted((self.path / "artifacts").glob("*.pt"))
        if not found:
            raise SkinTwinError(f"{self.name} v{self.version}: no .pt weights in {self.path}")
        return found[0]

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

    def ref(self) -> ModelRef:
        """Where this model came from, small enough to send to another process."""
        projection = str(self.projection_file) if self.projection_file else None
        return ModelRef(
            self.name, self.version, self.alias, self.source, str(self.path), projection
        )


@dataclass(frozen=True)
class ModelRef:
    """A LoadedModel by reference (a Dask task's argument): `open()` loads it once per
    process and reuses it for every later chunk."""

    name: str
    version: str
    alias: str
    source: str
    path: str
    projection: str | None = None

    def open(self) -> LoadedModel:
        return _open(self)


@functools.lru_cache(maxsize=4)
def _open(ref: ModelRef) -> LoadedModel:
    projection = Path(ref.projection) if ref.projection else None
    if ref.source == "local weights":
        return LoadedModel.from_weights(ref.path, projection)
    model = LoadedModel.from_pyfunc_dir(
        Path(ref.path), ref.name, ref.version, ref.alias, ref.source
    )
    model.projection_file = projection
    return model
