"""The one place that builds or loads an Ultralytics YOLO model; it never downloads."""

from __future__ import annotations

from pathlib import Path

from skintwin.errors import SkinTwinError

_OFF = (
    "sync",
    "mlflow",
    "hub",
    "wandb",
    "tensorboard",
    "clearml",
    "comet",
    "neptune",
    "raytune",
    "dvc",
)


def quiet_ultralytics() -> None:
    """Persist the Ultralytics settings that keep it offline and out of our MLflow runs."""
    from ultralytics import settings

    if any(settings.get(k) for k in _OFF if k in settings):
        settings.update({k: False for k in _OFF if k in settings})


def _yolo(source: str):
    quiet_ultralytics()
    from ultralytics import YOLO

    # an export carries its task in its metadata; naming it spares Ultralytics a guess
    return YOLO(source, task="detect") if source.endswith(".onnx") else YOLO(source)


def load_weights(weights: str | Path):
    """A YOLO model from a local weights file (`.pt`, or its `.onnx` export)."""
    weights = Path(weights)
    if not weights.is_file():
        raise SkinTwinError(f"{weights}: weights file not found")
    return _yolo(str(weights))


PRETRAINED = Path("models/pretrained")  # the train stage's dependency (dvc.yaml)


def _tracked(spec: str) -> None:
    """A local file `train.model` names must lie in `PRETRAINED` (relative to the project,
    the stage's working folder): anywhere else DVC does not see it change, and a new file
    at the same path would not retrain."""
    path = Path(spec)
    if not path.is_file():
        return
    folder = PRETRAINED.resolve()
    if folder not in path.resolve().parents:
        raise SkinTwinError(
            f"train.model: {spec!r} is outside {PRETRAINED}/, the folder the train stage "
            "depends on (dvc.yaml); move it there, or DVC would not retrain when it changes"
        )


def build_model(spec: str):
    """A YOLO model from a model YAML name/path (built untrained) or a local .pt."""
    _tracked(spec)
    if spec.endswith((".yaml", ".yml")):
        try:
            return _yolo(spec)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise SkinTwinError(f"train.model: unknown model YAML {spec!r} ({exc})") from None
    if spec.endswith(".pt"):
        if not Path(spec).is_file():
            raise SkinTwinError(f"train.model: weights file {spec!r} not found (no downloads)")
        return _yolo(spec)
    raise SkinTwinError(f"train.model: {spec!r} must be a model .yaml or a local .pt file")


def class_names(model) -> tuple[str, ...]:
    """The model's class names in class-id order."""
    return tuple(model.names[i] for i in sorted(model.names))
