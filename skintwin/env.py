"""Offline, quiet defaults for the tools, applied by entry points (never at import)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_QUIET = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "YOLO_VERBOSE": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "GIT_PYTHON_REFRESH": "quiet",
}


def project_root() -> Path:
    """The folder holding dvc.yaml: $SKINTWIN_HOME, else the current directory."""
    return Path(os.environ.get("SKINTWIN_HOME", Path.cwd())).resolve()


def configure_offline(root: Path | None = None) -> None:
    """Switch off downloads, telemetry and update checks; keep Ultralytics settings local.

    Ultralytics asks the network for Arial.ttf when it checks a dataset; a local TTF in its
    config folder stops that (STACK_NOTES).
    """
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    root = root or project_root()
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(root / ".yolo")))
    fonts = config_dir / "Ultralytics"
    if not (fonts / "Arial.ttf").exists():
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        fonts.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            shutil.copyfile(ttf, fonts / name)


def quiet_ultralytics() -> None:
    """Persist the Ultralytics settings that keep it offline and out of our MLflow runs."""
    from ultralytics import settings

    wanted = {
        "sync": False,
        "mlflow": False,
        "hub": False,
        "wandb": False,
        "tensorboard": False,
        "clearml": False,
        "comet": False,
        "neptune": False,
        "raytune": False,
        "dvc": False,
    }
    current = {k: settings.get(k) for k in wanted}
    if current != wanted:
        settings.update({k: v for k, v in wanted.items() if k in settings})
