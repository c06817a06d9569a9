"""Model loading for the application: the registry's champion, with a local copy to fall back on.

    loader = ModelLoader(use_registry=True)
    models = loader.load_all_models()          # {"skin-twin-detector": LoadedModel}
    models["skin-twin-detector"].predict(image)  # [{"width", "height", "detections": [...]}]

Each version loaded from the registry is copied to `.monitoring/model_cache/<name>/v<N>/`
with a `current.json` pointer, so the application still starts (and says so in the log)
when the registry is down. `reload_if_moved()` picks up a moved alias.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir, atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A loaded detector and where it came from."""

    name: str
    version: str
    alias: str
    source: str  # "registry" | "local cache"
    path: Path
    pyfunc: object = field(repr=False)

    def predict(self, images, conf: float = 0.25, imgsz: int | None = None) -> list[dict]:
        """Detections for one image (path, bytes, RGB array) or a list of them."""
        params = {"conf": float(conf)} | ({"imgsz": int(imgsz)} if imgsz else {})
        return self.pyfunc.predict(images, params=params)


class ModelLoader:
    """Loads the models behind an alias, by name, with an offline fallback.

    Args:
        use_registry: ask the MLflow registry (else use the local copies only).
        model_names: names to load; default: `promote.model_name` of params.yaml.
        alias: the registry alias to follow (default `champion`).
    """

    def __init__(
        self,
        use_registry: bool = True,
        model_names: list[str] | None = None,
        alias: str = "champion",
        project_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        from skintwin.env import configure_offline
        from skintwin.project import resolve_root

        self.root = resolve_root(project_dir)
        configure_offline(self.root)
        if model_names is None:
            from skintwin.params import load_params

            model_names = [load_params(self.root / "params.yaml").promote.model_name]
        self.model_names = list(model_names)
        self.use_registry = use_registry
        self.alias = alias
        self.cache_dir = Path(cache_dir or self.root / ".monitoring" / "model_cache")
        self.models: dict[str, LoadedModel] = {}

    def load_all_models(self) -> dict[str, LoadedModel]:
        """Load every configured model; a model that cannot be found anywhere is an error."""
        for name in self.model_names:
            self.models[name] = self.load(name)
        return dict(self.models)

    def load(self, name: str) -> LoadedModel:
        if self.use_registry:
            try:
                version = self._registry_version(name)
            except Exception as exc:  # any failure to reach the registry: fall back
                log.warning(
                    "model registry unreachable (%s): using the local copy of %s",
                    type(exc).__name__,
                    name,
                )
            else:
                path = self._cached(name, version) or self._download(name, version)
                return self._open(name, version, path, "registry")
        pointer = self.cache_dir / name / "current.json"
        if not pointer.is_file():
            raise SkinTwinError(
                f"model '{name}': registry not used or unreachable and no "
                f"local copy in {self.cache_dir / name}"
            )
        current = json.loads(pointer.read_text())
        log.warning(
            "serving %s version %s from the local copy (%s)",
            name,
            current["version"],
            current["path"],
        )
        return self._open(name, current["version"], Path(current["path"]), "local cache")

    def reload_if_moved(self) -> list[str]:
        """Reload the models whose alias now points to another version; returns their names."""
        moved = []
        for name, model in list(self.models.items()):
            try:
                version = self._registry_version(name)
            except Exception:
                continue
            if version != model.version:
                self.models[name] = self.load(name)
                moved.append(name)
        return moved

    def _registry_version(self, name: str) -> str:
        from mlflow.tracking import MlflowClient

        from skintwin.tracking import configure_tracking

        configure_tracking(self.root)
        mv = MlflowClient().get_model_version_by_alias(name, self.alias)
        return str(mv.version)

    def _cached(self, name: str, version: str) -> Path | None:
        path = self.cache_dir / name / f"v{version}"
        return path if (path / "MLmodel").is_file() else None

    def _download(self, name: str, version: str) -> Path:
        import mlflow

        target = self.cache_dir / name / f"v{version}"
        with atomic_dir(target) as tmp:
            local = Path(
                mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(tmp))
            )
            if local != tmp:  # some stores nest the model folder
                for item in local.iterdir():
                    shutil.move(str(item), tmp / item.name)
        return target

    def _open(self, name: str, version: str, path: Path, source: str) -> LoadedModel:
        import mlflow.pyfunc

        start = time.perf_counter()
        pyfunc = mlflow.pyfunc.load_model(str(path))
        atomic_write_json(
            self.cache_dir / name / "current.json",
            {"version": version, "alias": self.alias, "path": str(path), "loaded_at": time.time()},
        )
        log.info(
            "loaded %s version %s from %s in %.1f s",
            name,
            version,
            source,
            time.perf_counter() - start,
        )
        return LoadedModel(name, version, self.alias, source, path, pyfunc)
