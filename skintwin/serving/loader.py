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
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir, atomic_write_json
from skintwin.model.loaded import LoadedModel
from skintwin.project import ProjectPaths
from skintwin.registry.client import alias_version, download_version
from skintwin.training.tracking import configure_tracking

log = logging.getLogger(__name__)


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
        from skintwin.runtime import configure_offline

        paths = ProjectPaths.find(project_dir)
        self.root = paths.root
        configure_offline(self.root)
        if model_names is None:
            from skintwin.params import load_params

            model_names = [load_params(paths.params).promote.model_name]
        self.model_names = list(model_names)
        self.use_registry = use_registry
        self.alias = alias
        self.cache_dir = Path(cache_dir or paths.model_cache)
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
        """The version behind the alias; raises when it cannot be had from the registry."""
        configure_tracking(self.root)
        mv = alias_version(name, self.alias)
        if mv is None:
            raise SkinTwinError(f"model '{name}' has no version with alias '{self.alias}'")
        return str(mv.version)

    def _cached(self, name: str, version: str) -> Path | None:
        path = self.cache_dir / name / f"v{version}"
        return path if (path / "MLmodel").is_file() else None

    def _download(self, name: str, version: str) -> Path:
        target = self.cache_dir / name / f"v{version}"
        if target.exists() and self._cached(name, version) is None:  # an incomplete copy
            shutil.rmtree(target, ignore_errors=True)
        with atomic_dir(target, shared=True) as tmp:  # the service, scoring and drift share it
            local = download_version(name, version, tmp)
            if local != tmp:  # some stores nest the model folder
                for item in local.iterdir():
                    shutil.move(str(item), tmp / item.name)
        return target

    def _open(self, name: str, version: str, path: Path, source: str) -> LoadedModel:
        start = time.perf_counter()
        model = LoadedModel.from_pyfunc_dir(path, name, version, self.alias, source)
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
        return model
