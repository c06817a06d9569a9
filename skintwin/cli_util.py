"""Shared wrapper for step and command entry points: offline env, logging, clean errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from skintwin.env import configure_offline
from skintwin.errors import SkinTwinError


def run_main(body: Callable[[], object]) -> int:
    """Run `body`; a SkinTwinError prints its message (no traceback) and exits 1."""
    configure_offline()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        body()
    except SkinTwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
