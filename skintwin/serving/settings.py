"""Service limits: operational settings from the environment, not ML knobs.

Each variable is checked when the service starts; a bad value stops it with a message that
names the variable (a reload interval of 0 would spin a core, a limit of nan would let
anything in).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from skintwin.io import env_number


@dataclass(frozen=True)
class Settings:
    """What the service accepts and how it follows the registry."""

    max_upload_bytes: int = 10 * 2**20  # one image
    max_pixels: int = 40_000_000  # one image, read from its header
    max_request_pixels: int = 64_000_000  # all images of one request together
    max_batch: int = 16  # images in one /predict/batch request
    timeout_s: float = 30.0  # inference
    max_inflight: int = 64  # requests admitted at once; more are shed with 503 + Retry-After
    upload_timeout_s: float = 20.0  # receiving a request's body, however slowly it comes
    reload_interval_s: float = 30.0
    # an idle keep-alive connection is kept this long: longer than clients' and proxies'
    # own idle limits (httpx 5 s, load balancers 60 s), so the client always closes first
    # and never sends a request on a connection the server is closing
    keepalive_s: float = 75.0
    weights: str | None = None  # a local .pt to serve instead of the registry's champion
    embedding: str | None = None  # ... and its embedding projection (evaluate's embedding.npz)
    token: str | None = field(default=None, repr=False)  # SKINTWIN_API_TOKEN: never shown

    @property
    def max_request_bytes(self) -> int:
        """The most a request body may carry: a full batch plus multipart framing."""
        return self.max_upload_bytes * self.max_batch + 64 * 1024

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            max_upload_bytes=int(env_number("SKINTWIN_MAX_UPLOAD_MB", 10, 0.001, 1024) * 2**20),
            max_pixels=int(env_number("SKINTWIN_MAX_MEGAPIXELS", 40, 0.001, 1000) * 1e6),
            max_request_pixels=int(
                env_number("SKINTWIN_MAX_REQUEST_MEGAPIXELS", 64, 0.001, 10_000) * 1e6
            ),
            max_batch=int(env_number("SKINTWIN_MAX_BATCH", 16, 1, 256)),
            timeout_s=env_number("SKINTWIN_REQUEST_TIMEOUT_S", 30, 0.1, 3600),
            max_inflight=int(env_number("SKINTWIN_MAX_INFLIGHT", 64, 1, 10_000)),
            upload_timeout_s=env_number("SKINTWIN_UPLOAD_TIMEOUT_S", 20, 0.1, 3600),
            reload_interval_s=env_number("SKINTWIN_RELOAD_INTERVAL_S", 30, 0.5, 86_400),
            keepalive_s=env_number("SKINTWIN_KEEPALIVE_S", 75, 1, 3600),
            weights=os.environ.get("SKINTWIN_SERVE_WEIGHTS") or None,
            embedding=os.environ.get("SKINTWIN_SERVE_EMBEDDING") or None,
            token=os.environ.get("SKINTWIN_API_TOKEN") or None,
        )
