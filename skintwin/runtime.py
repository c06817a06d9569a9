"""Process set-up for every entry point: offline, quiet tools; logging; clean errors.

Applied by entry points (never at import): `run_main` wraps a command's body so that a
SkinTwinError prints one line and exits 1, without a traceback.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import traceback
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
    # a fresh PREFECT_HOME's temporary server migrates its database before it answers: on
    # two busy cores that outlasts Prefect's 20 s default (the Makefile sets the same)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def configure_offline(root: Path | None = None) -> None:
    """Switch off downloads, telemetry and update checks; keep Ultralytics settings local;
    give Prefect's temporary server time to start. Before Prefect is imported: it reads its
    settings once.

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
    """Run `body`; a SkinTwinError prints its message (no traceback) and exits 1, Ctrl-C
    says so and exits 130, as a shell expects (each step cleans up as it unwinds)."""
    configure_offline()
    _log_to_stderr()
    try:
        body()
    except SkinTwinError as exc:
        print(f"error: {mask_text(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


class Beside:
    """`fn(*args)` in a second process, forked now, while the caller goes on: `result()`
    returns its value or raises its error; leaving the `with` block ends it if unfinished.

    It forks only while PyTorch is not imported yet: a child forked after PyTorch's OpenMP
    threads have run hangs in its first parallel operation. Otherwise (and where there is
    no fork) `result()` calls `fn` itself, in turn instead of beside.
    """

    def __init__(self, fn: Callable, *args: object) -> None:
        self._fn, self._args = fn, args
        self._proc = self._recv = None
        if "torch" in sys.modules or not hasattr(os, "fork"):
            return
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._recv, send = context.Pipe(duplex=False)
        self._proc = context.Process(target=_answer, args=(send, fn, args), daemon=False)
        self._proc.start()
        send.close()

    @property
    def forked(self) -> bool:
        return self._proc is not None

    def result(self):
        if self._proc is None:
            return self._fn(*self._args)
        try:
            ok, value = self._recv.recv()
        except EOFError:
            self._proc.join()
            raise SkinTwinError(
                f"{self._fn.__name__}: its process ended without an answer "
                f"(exit code {self._proc.exitcode})"
            ) from None
        self._proc.join()
        if not ok:
            raise value
        return value

    def __enter__(self) -> Beside:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join()
            self._recv.close()


def _answer(send, fn: Callable, args: tuple) -> None:
    """The forked side of `Beside`: run, and send back (ok, value or error)."""
    try:
        answer = (True, fn(*args))
    except BaseException as exc:  # every failure goes back to the caller
        exc.add_note("in the process beside:\n" + traceback.format_exc())
        answer = (False, exc)
    try:
        send.send(answer)
    except Exception as exc:  # an answer that cannot be pickled
        send.send((False, SkinTwinError(f"{fn.__name__}: its answer could not be sent ({exc})")))
    send.close()
