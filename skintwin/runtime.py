"""Process set-up for every entry point: offline, quiet tools; logging; clean errors.

Applied by entry points (never at import): `run_main` wraps a command's body so that a
SkinTwinError prints one line and exits 1, without a traceback.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.redact import mask_text

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


def configure_offline(root: Path | None = None) -> None:
    """Switch off downloads, telemetry and update checks; keep Ultralytics settings local.

    Ultralytics asks the network for Arial.ttf when it checks a dataset; a local TTF in its
    config folder stops that (STACK_NOTES).
    """
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    root = Path(root or os.environ.get("SKINTWIN_HOME") or Path.cwd()).resolve()
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(root / ".yolo")))
    fonts = config_dir / "Ultralytics"
    if not (fonts / "Arial.ttf").exists():
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        fonts.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            shutil.copyfile(ttf, fonts / name)


def _log_to_stderr() -> None:
    """Our own loggers (and a step's `__main__`) at INFO; other libraries keep their own."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("skintwin", "__main__"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run_main(body: Callable[[], object]) -> int:
    """Run `body`; a SkinTwinError prints its message (no traceback) and exits 1."""
    configure_offline()
    _log_to_stderr()
    try:
        body()
    except SkinTwinError as exc:
        print(f"error: {mask_text(str(exc))}", file=sys.stderr)
        return 1
    return 0
