"""LoadedModel: a detector ready to predict, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skintwin.data.images import decode_image
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

    @classmethod
    def from_pyfunc_dir(cls, path: Path, name: str, version: str, alias: str, source: str):
        """A model folder as MLflow stores it (MLmodel, artifacts, code)."""
        import mlflow.pyfunc

        detector = mlflow.pyfunc.load_model(str(path)).unwrap_python_model()
        return cls(name, str(version), alias, source, Path(path), detector)

    @classmethod
    def from_weights(cls, weights: str | Path) -> LoadedModel:
        """A local `.pt`, served without the registry."""
        weights = Path(weights)
        detector = SkinTwinDetector().load(weights)
        return cls(weights.stem, "local", "-", "local weights", weights, detector)

    def estimator_doc(self) -> dict:
        """The version's label-free performance estimator (`estimator.json`, fitted at
        training time), or {"available": False, "reason"} when it carries none."""
        import json

        path = self.path / "artifacts" / "estimator.json"
        if not path.is_file():
            return {"available": False, "reason": f"{self.name} v{self.version} has no estimator"}
        return json.loads(path.read_text())

    def predict(self, images, conf: float = 0.25, imgsz: int | None = None) -> list[dict]:
        """Detections for one image (a local path, bytes, an RGB array) or a list of them.

        Local paths are read here, in the caller's process; the pyfunc itself never reads
        paths (it may serve remote callers).
        """
        items = images if isinstance(images, list | tuple) else [images]
        pixels = [decode_image(item) for item in items]
        params = {"conf": float(conf)} | ({"imgsz": int(imgsz)} if imgsz else {})
        return self.detector.predict_pixels(pixels, params)
