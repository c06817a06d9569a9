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
_PIDS: dict[str, int] = {}  # service URL -> its process id (for its peak memory)


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
        SKINTWIN_UPLOAD_TIMEOUT_S="3",
        SKINTWIN_STORE_BUSY_TIMEOUT_S="1",
        SKINTWIN_MONITOR_DB=f"sqlite:///{store}",
        MLFLOW_TRACKING_URI=f"sqlite:///{champion / 'mlflow.db'}",
    )
    _PIDS[f"http://127.0.0.1:{port}"] = proc.pid
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = (work / "service.log").read_text()
    assert "Traceback" not in log, log[-3000:]  # no request, however bad, crashed a handler


def _jpeg(champion: Path) -> bytes:
    return next((champion / "batches/normal/images").iterdir()).read_bytes()


def test_predict_returns_detections_and_logs_a_row(service, champion: Path) -> None:
    from skintwin.model.embedding import matrix
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
    assert "embedding" not in body and "embedding" not in batch.json()["results"][0]
    rows = PredictionStore(f"sqlite:///{store}").window().tail(4)  # the store keeps it
    assert matrix(rows["embedding"]).shape[0] == 4 and rows["embedding"].notna().all()
    health = httpx.get(f"{url}/health").json()
    assert health["model_loaded"] and health["store_reachable"]
    assert health["runtime"] == "onnx"  # the champion's export passed its parity check
    metrics = httpx.get(f"{url}/metrics").text
    assert 'skintwin_requests_total{endpoint="/predict",status="200"}' in metrics
    assert "skintwin_request_latency_seconds_bucket" in metrics
    assert httpx.get(f"{url}/openapi.json").json()["paths"]["/predict"]
    assert httpx.get(f"{url}/docs").status_code == 404  # a page from a CDN: none offline


def test_a_caller_s_threshold_filters_its_answer_not_what_the_store_keeps(service, champion):
    """`?conf=` is the caller's; the store keeps every detection from `monitor.conf`, which
    the reference and the label-free estimate assume (a caller's 0.4 once moved the drift
    check's mean confidence, p 1e-5)."""
    from skintwin.monitoring.store import PredictionStore

    url, store = service
    before, asked = PredictionStore(f"sqlite:///{store}").count(), 0
    for path in sorted((champion / "batches/normal/images").iterdir())[:20]:
        asked += 1
        found = httpx.post(f"{url}/predict?conf=0.001", content=path.read_bytes(), timeout=60)
        confidences = [d["confidence"] for d in found.json()["detections"]]
        if any(c < 0.25 for c in confidences):
            photo = path.read_bytes()
            break
    else:
        pytest.fail("no photo among 20 with a detection below monitor.conf (0.25)")
    answers = [
        httpx.post(f"{url}/predict{query}", content=photo, timeout=60).json()["detections"]
        for query in ("", "?conf=0.001", "?conf=0.9")
    ]
    assert len(answers[1]) > len(answers[0]) >= len(answers[2])
    assert all(d["confidence"] >= 0.9 for d in answers[2])
    deadline = time.time() + 10  # rows are written after the response
    while PredictionStore(f"sqlite:///{store}").count() < before + asked + 3:
        assert time.time() < deadline, "predictions missing from the store"
        time.sleep(0.2)
    rows = PredictionStore(f"sqlite:///{store}").window().tail(3)
    assert rows["n_detections"].tolist() == [len(answers[0])] * 3
    assert rows["mean_confidence"].nunique() == 1


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


def _wait_version(url: str, version: str, limit_s: float = 60) -> float:
    """Seconds until the service answers with `version` (asserts it does within limit_s)."""
    start = time.perf_counter()
    while str(httpx.get(f"{url}/health").json()["version"]) != str(version):
        assert time.perf_counter() - start < limit_s, f"still not v{version}"
        time.sleep(0.05)
    return time.perf_counter() - start


def test_champion_move_and_rollback_under_load_fail_no_request(service, champion: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from skintwin.registry import aliases
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
        aliases.move(champion, NAME, "champion", new, "approve", "reload test")
        _wait_version(url, new)
        aliases.rollback(champion, NAME, old.version, "reload test: back to the old model")
        back_s = _wait_version(url, old.version)
        print(f"rollback answered by v{old.version} after {back_s:.2f} s (polling: 1 s)")
        assert back_s < 1 + 5  # one polling interval, plus the load (1.04 s on 2 idle cores)
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
        # a path on the server is never read, and a caller cannot tell what exists there
        answers = set()
        for path in (champion / "models/train/weights/best.pt", champion, "/nowhere.jpg"):
            bad = httpx.post(
                f"http://127.0.0.1:{port}/invocations",
                timeout=60,
                json={"dataframe_split": {"columns": ["image"], "data": [[str(path)]]}},
            )
            assert bad.status_code == 400 and "stack_trace" not in bad.json(), bad.text[:500]
            answers.add(bad.json()["message"].split("Error:")[-1].strip())
        assert len(answers) == 1 and "base64" in answers.pop()
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


# ---- hardening (issue #11): bounded uploads, slow senders, a locked store, one decoder ----


def _stream_until_answer(url: str, path: str, headers: str, chunk: bytes, total: int) -> bytes:
    """Send a chunked body of up to `total` bytes, reading the answer as soon as the server
    gives one (a client that waits to finish sending would hit the closed connection)."""
    import select
    import socket

    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        request = f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}"
        sock.sendall(f"{request}Transfer-Encoding: chunked\r\n\r\n".encode())
        sent = 0
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(30)
        return sock.recv(200)


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        / 1024
    )


def test_chunked_and_many_part_uploads_are_cut_off_while_streaming(service) -> None:
    url, _ = service
    jpeg_start = b"\xff\xd8\xff" + b"\0" * (2**20 - 3)
    headers = "Content-Type: image/jpeg\r\n"
    answer = _stream_until_answer(url, "/predict", headers, jpeg_start, 1536 * 2**20)
    assert answer.startswith(b"HTTP/1.1 413"), answer  # a 1.5 GB body, not read whole
    boundary = "b0undary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=files; filename=a.jpg\r\n"
        "Content-Type: image/jpeg\r\n\r\n"
    )
    part = head.encode() + b"\xff\xd8\xff" + b"\0" * int(9.5 * 2**20) + b"\r\n"
    headers = f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
    answer = _stream_until_answer(url, "/predict/batch", headers, part, 300 * len(part))
    assert answer.startswith(b"HTTP/1.1 413"), answer  # 300 parts of 9.5 MB, not read whole
    assert httpx.get(f"{url}/health").status_code == 200
    assert _peak_rss_mb(_PIDS[url]) < 1536  # never buffered whole


def test_pixels_are_budgeted_per_request(service) -> None:
    url, _ = service
    buf = io.BytesIO()
    Image.new("RGB", (6000, 6000), (200, 150, 120)).save(buf, format="JPEG", quality=20)
    big = buf.getvalue()  # 36 MP each: under the per-image limit, two are over budget
    r = httpx.post(
        f"{url}/predict/batch",
        files=[("files", (f"{i}.jpg", big, "image/jpeg")) for i in range(4)],
        timeout=120,
    )
    assert r.status_code == 413 and "pixels in one request" in r.json()["error"], r.text
    assert _peak_rss_mb(_PIDS[url]) < 1536


def test_a_slow_sender_gets_408_and_a_vanishing_one_no_traceback(service) -> None:
    import socket

    url, _ = service
    port = int(url.rsplit(":", 1)[1])
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(head + b"\xff\xd8\xff")
        start = time.perf_counter()
        slow.settimeout(30)
        answer = slow.recv(200)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.perf_counter() - start < 10  # the upload timeout (3 s), not forever
    with socket.create_connection(("127.0.0.1", port)) as gone:
        gone.sendall(head + b"\xff\xd8\xff" + b"\0" * 1000)
    time.sleep(1)
    assert httpx.get(f"{url}/health").status_code == 200  # the log check is at teardown


def test_locked_store_never_drops_an_acknowledged_prediction(service, champion: Path) -> None:
    import sqlite3

    from skintwin.monitoring.store import PredictionStore

    url, store = service
    before = PredictionStore(f"sqlite:///{store}").count()
    lock = sqlite3.connect(store, timeout=60)
    lock.execute("BEGIN EXCLUSIVE")  # held far past the service's 1 s busy timeout
    try:
        for _ in range(3):
            r = httpx.post(f"{url}/predict", content=_jpeg(champion), timeout=60)
            assert r.status_code == 200
        deadline = time.time() + 20
        while 'spilled"} 3.0' not in httpx.get(f"{url}/metrics").text and time.time() < deadline:
            time.sleep(0.25)
        assert (
            'skintwin_store_journal_rows{state="spilled"} 3.0' in httpx.get(f"{url}/metrics").text
        )
    finally:
        lock.rollback()
        lock.close()
    deadline = time.time() + 20  # replayed by the service's poll loop (1 s here)
    while PredictionStore(f"sqlite:///{store}").count() < before + 3 and time.time() < deadline:
        time.sleep(0.25)
    assert PredictionStore(f"sqlite:///{store}").count() == before + 3
    replayed = PredictionStore(f"sqlite:///{store}").window().tail(3)  # through the journal
    assert replayed["embedding"].map(lambda b: isinstance(b, bytes) and len(b) > 0).all()


def _rotated_photo(champion: Path) -> bytes:
    """A demo photo stored sideways with EXIF orientation 6, as phones write them."""
    with Image.open(io.BytesIO(_jpeg(champion))) as im:
        stored = im.transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
        exif = Image.Exif()
        exif[0x0112] = 6  # display rotated 90° clockwise: back to the original
        buf = io.BytesIO()
        stored.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_service_and_batch_read_an_exif_rotated_photo_the_same_way(
    service, champion: Path, tmp_path: Path
) -> None:
    from skintwin.model.loaded import LoadedModel
    from skintwin.monitoring.scoring import plan_batch, score_batch

    url, _ = service
    photo = _rotated_photo(champion)
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "rotated.jpg").write_bytes(photo)
    served = httpx.post(f"{url}/predict?conf=0.05", content=photo, timeout=60).json()
    model = LoadedModel.from_weights(champion / "models/train/weights/best.pt")
    row = score_batch(model, plan_batch(tmp_path / "batch", "rot"), 0.05, 64, 40_000_000)[0]
    assert (served["width"], served["height"]) == (row["width"], row["height"])
    assert [d["box"] for d in served["detections"]] == [d["box"] for d in row["detections"]]


def test_a_photo_gets_one_answer_alone_or_beside_another_shape(champion: Path) -> None:
    """Ultralytics pads a call's photos to a square unless all share one shape: a photo
    scored beside another shape (/predict/batch, `skintwin score`) got other confidences
    than alone (/predict), and a lesion near the threshold was found in one, not the other."""
    import numpy as np

    from skintwin.data.images import decode_image
    from skintwin.model.pyfunc import SkinTwinDetector

    model = SkinTwinDetector().load(champion / "models/train/weights/best.pt")
    photo = decode_image(_jpeg(champion))
    wide, tall = (np.ascontiguousarray(photo[:h, :w]) for w, h in ((128, 72), (60, 128)))
    at = {"conf": 0.001}

    def found(answer: dict) -> list[tuple]:
        return [
            (d["class_id"], round(d["confidence"], 5), *d["box"]) for d in answer["detections"]
        ]

    alone = [found(model.predict_pixels([im], at)[0]) for im in (wide, tall)]
    assert alone[0] and alone[1]  # at 0.001 even a 1-epoch model finds candidates
    together = [found(a) for a in model.predict_pixels([wide, tall, wide], at)]
    assert together == [alone[0], alone[1], alone[0]]


# ---- past loopback, nobody unknown gets in (issue #16) ----


def test_off_loopback_without_a_token_the_service_will_not_start(champion: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SKINTWIN_API_TOKEN"}
    run = subprocess.run(
        [sys.executable, "-m", "skintwin", "serve", "--host", "0.0.0.0", "--port",
         str(free_port()), "--project-dir", str(champion)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    assert "refusing to serve on 0.0.0.0 without SKINTWIN_API_TOKEN" in run.stderr + run.stdout


def test_with_a_token_every_route_but_health_needs_it_and_a_refusal_logs_nothing(
    champion: Path, tmp_path: Path
) -> None:
    from skintwin.monitoring.store import PredictionStore

    token = "t0k-" + os.urandom(12).hex()
    port, store = free_port(), tmp_path / "predictions.db"
    proc = start_service(champion, port, tmp_path / "service.log", SKINTWIN_API_TOKEN=token,
                         SKINTWIN_MONITOR_DB=f"sqlite:///{store}",
                         MLFLOW_TRACKING_URI=f"sqlite:///{champion / 'mlflow.db'}")  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert httpx.get(f"{url}/health").status_code == 200  # a probe needs no secret
        for bad in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            r = httpx.post(f"{url}/predict", content=_jpeg(champion), headers=bad, timeout=60)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        for method, path in (("GET", "/metrics"), ("POST", "/reload"), ("GET", "/docs"),
                             ("GET", "/openapi.json"), ("POST", "/predict/batch")):  # fmt: skip
            assert httpx.request(method, f"{url}{path}").status_code == 401, path
        time.sleep(1.5)  # a logged row would be written by now
        assert PredictionStore(f"sqlite:///{store}").count() == 0
        ok = httpx.post(f"{url}/predict", content=_jpeg(champion), timeout=60,
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert ok.status_code == 200, ok.text
        deadline = time.time() + 10
        while PredictionStore(f"sqlite:///{store}").count() < 1 and time.time() < deadline:
            time.sleep(0.2)
        assert PredictionStore(f"sqlite:///{store}").count() == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert token not in (tmp_path / "service.log").read_text()  # never logged


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_overload_is_shed_with_retry_after_and_every_answer_is_logged_once(
    champion: Path, tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """Two requests admitted at once, twelve clients: the rest get 503 + Retry-After, no
    other error; every 200 is one stored row (SQLite, and a real PostgreSQL server);
    afterwards the service answers again."""
    import asyncio

    from skintwin.monitoring.store import PredictionStore
    from skintwin.ops.processes import load_clients

    port = free_port()
    store_url = (
        f"sqlite:///{tmp_path / 'predictions.db'}"
        if engine == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    proc = start_service(champion, port, tmp_path / "service.log", SKINTWIN_MAX_INFLIGHT="2",
                         SKINTWIN_MONITOR_DB=store_url,
                         MLFLOW_TRACKING_URI=f"sqlite:///{champion / 'mlflow.db'}")  # fmt: skip
    url = f"http://127.0.0.1:{port}/predict"
    try:
        run = asyncio.run(load_clients(url, [_jpeg(champion)], 12, 4.0))
        statuses = run["statuses"]
        assert statuses[200] > 0 and statuses[503] > 0 and run["retry_after"], statuses
        assert set(statuses) <= {200, 503}, statuses
        assert httpx.post(url, content=_jpeg(champion), timeout=60).status_code == 200
        deadline = time.time() + 20
        while PredictionStore(store_url).count() < statuses[200] + 1:
            assert time.time() < deadline, "acknowledged predictions missing from the store"
            time.sleep(0.2)
        time.sleep(1)
        assert PredictionStore(store_url).count() == statuses[200] + 1
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert "Traceback" not in (tmp_path / "service.log").read_text()
