"""The service's routes: predict one image or a batch, health, metrics, reload."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest

from skintwin.serving.state import ServiceState
from skintwin.serving.uploads import BadImage, check_images, drain, read_uploads

router = APIRouter()
Conf = Annotated[
    float | None,
    Query(gt=0, lt=1, description="confidence threshold of the answer (default: monitor.conf)"),
]


def _state(request: Request) -> ServiceState:
    return request.app.state.service


async def _serve(
    request: Request, background: BackgroundTasks, conf: float | None, field: str
) -> tuple[list[dict], object, float]:
    """Admit, check the uploads, predict, and log after the response."""
    state = _state(request)
    # the event loop is one thread: the count needs no lock. Past the limit a request is
    # shed before any work, and the client is told when to come back; its (bounded) body
    # is still read, so that the connection stays usable for the next request.
    if state.inflight >= state.settings.max_inflight:
        await drain(request)
        raise BadImage(503, f"busy: {state.inflight} requests in progress", retry_after_s=1)
    state.inflight += 1
    try:
        return await _predict(request, background, conf, field, state)
    finally:
        state.inflight -= 1


async def _predict(
    request: Request, background: BackgroundTasks, conf: float | None, field: str, state
) -> tuple[list[dict], object, float]:
    """Check the uploads, predict, and log after the response: (predictions, model, ms)."""
    start = time.perf_counter()
    blobs = await read_uploads(request, field, state.settings)
    images = check_images(blobs, state.settings)
    model = state.holder.model  # one model for the whole request, even if a reload happens
    # the caller's `conf` filters what it gets; the store keeps what monitoring assumes
    # (from `monitor.conf`), or a caller's threshold would move the drift check's columns
    stored = state.stored_conf
    threshold = conf if conf is not None else stored
    lowest = min(threshold, stored)
    loop = asyncio.get_running_loop()
    try:
        preds = await asyncio.wait_for(
            loop.run_in_executor(
                None, lambda: model.predict(images, conf=lowest, imgsz=state.imgsz)
            ),
            timeout=state.settings.timeout_s,
        )
    except TimeoutError:
        raise BadImage(504, f"inference took longer than {state.settings.timeout_s} s") from None
    ms = (time.perf_counter() - start) * 1000
    kept = [_from(p, stored) for p in preds]
    background.add_task(_log, state, kept, images, model, ms / len(images))
    state.metrics.requests.labels(request.url.path, "200").inc()
    state.metrics.latency.labels(request.url.path).observe(ms / 1000)
    return [_from(p, threshold) for p in preds], model, ms


def _from(pred: dict, conf: float) -> dict:
    """The prediction with its detections of confidence `conf` and above."""
    return {**pred, "detections": [d for d in pred["detections"] if d["confidence"] >= conf]}


def _log(state: ServiceState, preds: list[dict], images: list[np.ndarray], model, ms: float):
    for pred, image in zip(preds, images, strict=True):
        state.monitor.log_prediction(
            pred,
            image,
            latency_ms=ms,
            source="service",
            model_name=model.name,
            model_version=model.version,
        )


def _public(pred: dict) -> dict:
    """A prediction as the caller gets it: the embedding is for the store, not the API."""
    return {k: v for k, v in pred.items() if k != "embedding"}


@router.post("/predict")
async def predict(request: Request, background: BackgroundTasks, conf: Conf = None) -> dict:
    """Detections for one image (multipart `file` or the raw body)."""
    preds, model, ms = await _serve(request, background, conf, "file")
    return {
        **_public(preds[0]),
        "model": model.name,
        "version": model.version,
        "latency_ms": round(ms, 2),
    }


@router.post("/predict/batch")
async def predict_batch(request: Request, background: BackgroundTasks, conf: Conf = None) -> dict:
    """Detections for several images (multipart `files`)."""
    preds, model, ms = await _serve(request, background, conf, "files")
    return {
        "results": [_public(p) for p in preds],
        "model": model.name,
        "version": model.version,
        "latency_ms": round(ms, 2),
    }


@router.get("/health")
def health(request: Request) -> dict:
    state = _state(request)
    try:
        state.monitor.store.count()
        store_ok = True
    except Exception:
        store_ok = False
    m = state.holder.model
    return {
        "status": "ok" if store_ok else "degraded",
        "model_loaded": True,
        "model": m.name,
        "version": m.version,
        "source": m.source,
        "runtime": m.runtime,  # onnx (its export passed the parity check) or pytorch
        "store_reachable": store_ok,
    }


@router.post("/reload")
def reload(request: Request) -> dict:
    holder = _state(request).holder
    return {"reloaded": holder.reload_if_moved(), "version": holder.model.version}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    state = _state(request)
    state.metrics.model_info.clear()
    state.metrics.model_info.labels(state.holder.model.name, state.holder.model.version).set(1)
    journal = state.monitor.journal
    state.metrics.journal.labels("spilled").set(journal.spilled)
    state.metrics.journal.labels("replayed").set(journal.replayed)
    state.metrics.journal.labels("pending").set(journal.pending())
    body = generate_latest(state.metrics.registry).decode()
    return PlainTextResponse(body, media_type="text/plain; version=0.0.4")
