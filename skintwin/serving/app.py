"""The HTTP inference service for the Skin-Twin-AI application.

    skintwin serve --port 8080          # the registry's champion, hot-reloaded when it moves

POST /predict (multipart `file` or raw image bytes; `?conf=`), POST /predict/batch
(multipart `files`), GET /health, GET /metrics (Prometheus text), POST /reload, and the
OpenAPI schema at /openapi.json. With SKINTWIN_API_TOKEN set every route but /health needs
`Authorization: Bearer <token>`; off loopback the service will not start without one
(`auth.py`). Uploads are checked from their bytes (type, size, pixel
count, decodability) before any inference; a bad request gets a 4xx JSON error. Every
prediction is logged through the monitor after the response is sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from skintwin.serving.auth import BearerAuth, check_exposure
from skintwin.serving.limits import BodyLimits
from skintwin.serving.routes import router
from skintwin.serving.settings import Settings
from skintwin.serving.state import ServiceState
from skintwin.serving.uploads import BadImage, ClientGone

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    project_dir: str | Path | None = None,
    store_url: str | None = None,
) -> FastAPI:
    """Build the service: load the model and open the prediction store first."""
    state = ServiceState(settings or Settings.from_env(), project_dir, store_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=state.poll, name="reload", daemon=True).start()
        yield
        state.stop.set()
        state.monitor.flush()

    app = FastAPI(
        title="Skin-Twin inference",
        version="1",
        description="Skin-lesion detection with the registry's champion.",
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: blank offline.
        # The API's description is /openapi.json, for any viewer the team has.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = state
    app.include_router(router)
    app.add_middleware(BodyLimits, settings=state.settings)
    app.add_middleware(BearerAuth, token=state.settings.token)  # outermost: checked first
    app.add_exception_handler(BadImage, _refused)
    app.add_exception_handler(ClientGone, _gone)
    app.add_exception_handler(RequestValidationError, _invalid)
    return app


async def _refused(request: Request, exc: BadImage) -> JSONResponse:
    request.app.state.service.metrics.requests.labels(request.url.path, str(exc.status)).inc()
    retry = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=retry)


async def _gone(request: Request, exc: ClientGone) -> Response:
    """The client left mid-upload: a line in the log, no traceback, nothing to answer."""
    log.info("client disconnected during the upload to %s", request.url.path)
    return Response(status_code=400)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors, in the service's one error shape, naming the field."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
        for e in exc.errors()
    )
    return await _refused(request, BadImage(422, problems))


def serve(host: str = "127.0.0.1", port: int = 8080, project_dir: str | None = None) -> None:
    """Run the service with uvicorn until interrupted; past loopback only with a token."""
    import uvicorn

    settings = Settings.from_env()
    check_exposure(host, settings.token)  # before loading anything
    app = create_app(settings, project_dir=project_dir)
    uvicorn.run(
        app, host=host, port=port, log_level="info", timeout_keep_alive=int(settings.keepalive_s)
    )
