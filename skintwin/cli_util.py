"""Shared wrapper for step and command entry points: offline env, logging, clean errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from skintwin.env import configure_offline
from skintwin.errors import SkinTwinError


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
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
