"""The HTTP inference service for the Skin-Twin-AI application.

    skintwin serve --port 8080          # the registry's champion, hot-reloaded when it moves

POST /predict (multipart `file` or raw image bytes; `?conf=`), POST /predict/batch
(multipart `files`), GET /health, GET /metrics (Prometheus text), POST /reload, and the
OpenAPI schema at /openapi.json. Uploads are checked from their bytes (type, size, pixel
count, decodability) before any inference; a bad request gets a 4xx JSON error. Every
prediction is logged through the monitor after the response is sent.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from PIL import Image
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

# Magic numbers of the accepted image types: the name and the declared type are not trusted.
_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"RIFF", "webp"),
)


@dataclass(frozen=True)
class Settings:
    """Service limits (operational, not ML knobs: they come from the environment)."""

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


class BadImage(Exception):
    """A request the service refuses: status code and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def check_image(data: bytes, settings: Settings) -> np.ndarray:
    """Decode an upload after checking its size, type (from the bytes) and pixel count."""
    if not data:
        raise BadImage(400, "empty body: send one image as multipart `file` or raw bytes")
    if len(data) > settings.max_upload_bytes:
        raise BadImage(413, f"upload of {len(data)} bytes exceeds {settings.max_upload_bytes}")
    kind = next((k for sig, k in _SIGNATURES if data.startswith(sig)), None)
    if kind is None or (kind == "webp" and data[8:12] != b"WEBP"):
        raise BadImage(415, "not a JPEG, PNG, BMP or WebP image (checked from its bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size  # read from the header, nothing decoded yet
            if width * height > settings.max_pixels:
                raise BadImage(413, f"{width}×{height} pixels exceeds {settings.max_pixels}")
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except BadImage:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImage(413, f"too many pixels: {exc}") from None
    except Exception as exc:  # PIL raises many types for corrupt or truncated files
        raise BadImage(422, f"image cannot be decoded: {exc}") from None
    return rgb


class ModelHolder:
    """The served model; replaced atomically on reload so in-flight requests finish."""

    def __init__(self, settings: Settings, project_dir: Path | None) -> None:
        self.settings = settings
        self.project_dir = project_dir
        self.loader = None
        self.model = self._load()
        self.lock = threading.Lock()

    def _load(self):
        if self.settings.weights:
            from skintwin.loader import LoadedModel
            from skintwin.pyfunc_model import SkinTwinDetector

            detector = SkinTwinDetector()
            detector.load_context(SimpleNamespace(artifacts={"weights": self.settings.weights}))
            pyfunc = SimpleNamespace(
                predict=lambda x, params=None: detector.predict(None, x, params)
            )
            return LoadedModel(
                Path(self.settings.weights).stem,
                "local",
                "-",
                "local weights",
                Path(self.settings.weights),
                pyfunc,
            )
        from skintwin.loader import ModelLoader

        self.loader = ModelLoader(project_dir=self.project_dir)
        return next(iter(self.loader.load_all_models().values()))

    def reload_if_moved(self) -> bool:
        if self.loader is None:
            return False
        with self.lock:
            if self.loader.reload_if_moved():
                self.model = next(iter(self.loader.models.values()))
                log.info("now serving %s version %s", self.model.name, self.model.version)
                return True
        return False


def create_app(
    settings: Settings | None = None,
    project_dir: str | Path | None = None,
    store_url: str | None = None,
) -> FastAPI:
    """Build the service: load the model and open the prediction store first."""
    from skintwin.monitor import ModelMonitor

    settings = settings or Settings.from_env()
    holder = ModelHolder(settings, Path(project_dir) if project_dir else None)
    monitor = ModelMonitor(store_url, project_dir=project_dir)
    registry = CollectorRegistry()
    requests = Counter(
        "skintwin_requests_total", "Requests", ["endpoint", "status"], registry=registry
    )
    latency = Histogram(
        "skintwin_request_latency_seconds",
        "Request latency",
        ["endpoint"],
        registry=registry,
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    version = Gauge("skintwin_model_info", "Served model", ["name", "version"], registry=registry)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(settings.reload_interval_s):
            try:
                holder.reload_if_moved()
            except Exception as exc:  # a registry outage must not stop serving
                log.warning("reload check failed: %s", exc)

    app = FastAPI(
        title="Skin-Twin inference",
        version="1",
        description="Skin-lesion detection with the registry's champion.",
    )

    @app.on_event("startup")
    def _start() -> None:
        threading.Thread(target=poll, name="reload", daemon=True).start()

    @app.on_event("shutdown")
    def _stop() -> None:
        stop.set()
        monitor.flush()

    @app.exception_handler(BadImage)
    async def _bad(request: Request, exc: BadImage) -> JSONResponse:
        requests.labels(request.url.path, str(exc.status)).inc()
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    async def _body_images(request: Request, field: str) -> list[bytes]:
        length = int(request.headers.get("content-length") or 0)
        if length > settings.max_upload_bytes * (settings.max_batch if field == "files" else 1):
            raise BadImage(413, f"request of {length} bytes exceeds the upload limit")
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form(max_part_size=settings.max_upload_bytes)
            items = form.getlist(field)
            if not items:
                raise BadImage(400, f"multipart body has no `{field}` part")
            blobs = [await f.read() if hasattr(f, "read") else str(f).encode() for f in items]
            return blobs if field == "files" else blobs[:1]
        return [await request.body()]

    async def _predict(images: list[np.ndarray], conf: float) -> tuple[list[dict], object]:
        model = holder.model  # one model for the whole request, even if a reload happens
        loop = asyncio.get_running_loop()
        try:
            preds = await asyncio.wait_for(
                loop.run_in_executor(None, lambda: model.predict(images, conf=conf)),
                timeout=settings.timeout_s,
            )
        except TimeoutError:
            raise BadImage(504, f"inference took longer than {settings.timeout_s} s") from None
        return preds, model

    def _log(preds: list[dict], images: list[np.ndarray], model, ms: float) -> None:
        for pred, image in zip(preds, images, strict=True):
            monitor.log_prediction(
                pred,
                image,
                latency_ms=ms,
                source="service",
                model_name=model.name,
                model_version=model.version,
            )

    def _conf(value: str | None) -> float:
        try:
            conf = float(value) if value is not None else settings.conf
        except ValueError:
            raise BadImage(400, f"conf must be a number, got {value!r}") from None
        if not 0 < conf < 1:
            raise BadImage(400, f"conf must be between 0 and 1, got {conf}")
        return conf

    async def _serve(
        request: Request, background: BackgroundTasks, conf: str | None, field: str
    ) -> tuple[list[dict], object, float]:
        """Check the uploads, predict, and log after the response: (predictions, model, ms)."""
        start = time.perf_counter()
        threshold = _conf(conf)
        blobs = await _body_images(request, field)
        if len(blobs) > settings.max_batch:
            raise BadImage(
                413, f"{len(blobs)} images exceeds the batch limit {settings.max_batch}"
            )
        images = [check_image(b, settings) for b in blobs]
        preds, model = await _predict(images, threshold)
        ms = (time.perf_counter() - start) * 1000
        background.add_task(_log, preds, images, model, ms / len(images))
        requests.labels(request.url.path, "200").inc()
        latency.labels(request.url.path).observe(ms / 1000)
        return preds, model, ms

    @app.post("/predict")
    async def predict(
        request: Request, background: BackgroundTasks, conf: str | None = None
    ) -> dict:
        """Detections for one image (multipart `file` or the raw body)."""
        preds, model, ms = await _serve(request, background, conf, "file")
        return {
            **preds[0],
            "model": model.name,
            "version": model.version,
            "latency_ms": round(ms, 2),
        }

    @app.post("/predict/batch")
    async def predict_batch(
        request: Request, background: BackgroundTasks, conf: str | None = None
    ) -> dict:
        """Detections for several images (multipart `files`)."""
        preds, model, ms = await _serve(request, background, conf, "files")
        return {
            "results": preds,
            "model": model.name,
            "version": model.version,
            "latency_ms": round(ms, 2),
        }

    @app.get("/health")
    def health() -> dict:
        try:
            monitor.store.count()
            store_ok = True
        except Exception:
            store_ok = False
        m = holder.model
        return {
            "status": "ok" if store_ok else "degraded",
            "model_loaded": True,
            "model": m.name,
            "version": m.version,
            "source": m.source,
            "store_reachable": store_ok,
        }

    @app.post("/reload")
    def reload() -> dict:
        moved = holder.reload_if_moved()
        return {"reloaded": moved, "version": holder.model.version}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        version.clear()
        version.labels(holder.model.name, holder.model.version).set(1)
        return PlainTextResponse(
            generate_latest(registry).decode(), media_type="text/plain; version=0.0.4"
        )

    return app


def main(argv: list[str] | None = None) -> int:
    import argparse

    import uvicorn

    from skintwin.cli_util import run_main

    parser = argparse.ArgumentParser(description="Serve the champion over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--project-dir")
    args = parser.parse_args(argv)
    return run_main(
        lambda: uvicorn.run(
            create_app(project_dir=args.project_dir),
            host=args.host,
            port=args.port,
            log_level="info",
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
