"""Service limits: operational settings from the environment, not ML knobs."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """What the service accepts and how it follows the registry."""

    max_upload_bytes: int = 10 * 2**20
    max_pixels: int = 40_000_000
    timeout_s: float = 30.0
    reload_interval_s: float = 30.0
    weights: str | None = None  # a local .pt to serve instead of the registry's champion
    conf: float = 0.25
    max_batch: int = 16

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            max_upload_bytes=int(float(env.get("SKINTWIN_MAX_UPLOAD_MB", 10)) * 2**20),
            max_pixels=int(float(env.get("SKINTWIN_MAX_MEGAPIXELS", 40)) * 1e6),
            timeout_s=float(env.get("SKINTWIN_REQUEST_TIMEOUT_S", 30)),
            reload_interval_s=float(env.get("SKINTWIN_RELOAD_INTERVAL_S", 30)),
            weights=env.get("SKINTWIN_SERVE_WEIGHTS") or None,
        )
