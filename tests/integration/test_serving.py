"""The HTTP service and `mlflow models serve`, running on loopback against a real champion."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from skintwin.errors import SkinTwinError
from tests.conftest import free_port, start_service, wait_http

pytestmark = pytest.mark.slow
NAME = "skin-twin-detector"


@pytest.fixture(scope="module")
def service(champion: Path, tmp_path_factory):
    port = free_port()
    work = tmp_path_factory.mktemp("serve")
    store = work / "predictions.db"
    proc = start_service(
        champion,
        port,
        work / "service.log",
        SKINTWIN_RELOAD_INTERVAL_S="1",
        SKINTWIN_MAX_UPLOAD_MB="1",
        SKINTWIN_MONITOR_DB=f"sqlite:///{store}",
        MLFLOW_TRACKING_URI=f"sqlite:///{champion / 'mlflow.db'}",
    )
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _jpeg(champion: Path) -> bytes:
    return next((champion / "batches/normal/images").iterdir()).read_bytes()


def test_predict_returns_detections_and_logs_a_row(service, champion: Path) -> None:
    from skintwin.monitoring.store import PredictionStore

    url, store = service
    before = PredictionStore(f"sqlite:///{store}").count()
    r = httpx.post(
        f"{url}/predict", files={"file": ("x.jpg", _jpeg(champion), "image/jpeg")}, timeout=60
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == NAME and body["version"] and body["latency_ms"] > 0
    assert isinstance(body["detections"], list) and body["width"] == 128
    raw = httpx.post(f"{url}/predict?conf=0.1", content=_jpeg(champion), timeout=60)
    assert raw.status_code == 200
    batch = httpx.post(
        f"{url}/predict/batch",
        files=[("files", ("a.jpg", _jpeg(champion))), ("files", ("b.jpg", _jpeg(champion)))],
        timeout=60,
    )
    assert batch.status_code == 200 and len(batch.json()["results"]) == 2
    deadline = time.time() + 10  # rows are written after the response
    while PredictionStore(f"sqlite:///{store}").count() < before + 4 and time.time() < deadline:
        time.sleep(0.2)
    assert PredictionStore(f"sqlite:///{store}").count() == before + 4
    health = httpx.get(f"{url}/health").json()
    assert health["model_loaded"] and health["store_reachable"]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'skintwin_requests_total{endpoint="/predict",status="200"}' in metrics
    assert "skintwin_request_latency_seconds_bucket" in metrics
    assert httpx.get(f"{url}/openapi.json").json()["paths"]["/predict"]


def _huge_header_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = (40000).to_bytes(4, "big") + (40000).to_bytes(4, "big")  # IHDR size
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # a valid chunk CRC
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "make", "status"),
    [
        ("truncated jpeg", lambda j: j[: len(j) // 3], 422),
        ("pdf renamed", lambda j: b"%PDF-1.7\n1 0 obj <<>> endobj\n", 415),
        ("oversize", lambda j: b"\xff\xd8\xff" + os.urandom(2 * 2**20), 413),
        ("40000x40000 header", lambda j: _huge_header_png(), 413),
        ("empty", lambda j: b"", 400),
    ],
)
def test_bad_uploads_get_4xx_json(service, champion: Path, name: str, make, status: int) -> None:
    url, _ = service
    r = httpx.post(
        f"{url}/predict",
        files={"file": ("photo.jpg", make(_jpeg(champion)), "image/jpeg")},
        timeout=60,
    )
    assert r.status_code == status, (name, r.text)
    assert "error" in r.json()
    assert httpx.get(f"{url}/health").status_code == 200


def test_champion_move_is_picked_up_without_failed_requests(service, champion: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from skintwin.registry.client import log_and_register

    url, _ = service
    mlflow.set_tracking_uri(f"sqlite:///{champion / 'mlflow.db'}")
    client = MlflowClient()
    old = client.get_model_version_by_alias(NAME, "champion")
    new = log_and_register(
        champion / "models/train/weights/best.pt", old.run_id, NAME, {"note": "reload test"}
    )
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                statuses.append(c.post(f"{url}/predict", content=_jpeg(champion)).status_code)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        client.set_registered_model_alias(NAME, "champion", new)
        deadline = time.time() + 60
        while httpx.get(f"{url}/health").json()["version"] != new and time.time() < deadline:
            time.sleep(0.25)
        assert httpx.get(f"{url}/health").json()["version"] == new
    finally:
        stop.set()
        worker.join()
        client.set_registered_model_alias(NAME, "champion", old.version)
    assert statuses and set(statuses) == {200}


def test_mlflow_models_serve_answers(champion: Path, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    bin_dir = Path(sys.executable).parent  # mlflow starts `uvicorn` from PATH
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=f"sqlite:///{champion / 'mlflow.db'}",
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    proc = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{NAME}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/ping", timeout=180)
        except SkinTwinError:
            raise AssertionError((tmp_path / "serve.log").read_text()[-3000:]) from None
        image = base64.b64encode(_jpeg(champion)).decode()
        r = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            timeout=120,
            json={
                "dataframe_split": {"columns": ["image"], "data": [[image]]},
                "params": {"conf": 0.1},
            },
        )
        assert r.status_code == 200, r.text[:500]
        prediction = r.json()["predictions"][0]
        assert prediction["width"] == 128 and isinstance(prediction["detections"], list)
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
