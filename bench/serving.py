"""Serving benchmark: /predict on a loopback client at 1 and 8 concurrent requests, beside
the bare Ultralytics `model.predict` on the same images in the same run."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from bench.common import Row

SIZES = {"small": {"requests": 40, "images": 10}, "default": {"requests": 200, "images": 20}}


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _images(work: Path, n: int) -> list[bytes]:
    from skintwin.data.synth import encode_jpeg, paint
    from skintwin.names import LESION_CLASSES, TONE_GROUPS

    out = []
    for i in range(n):
        p = paint(
            9, i, 256, dict.fromkeys(LESION_CLASSES, 1.0), dict.fromkeys(TONE_GROUPS, 1.0), 3, 0.0
        )
        out.append(encode_jpeg(p.rgb, 85))
    return out


def _bare_latencies(weights: Path, images: list[bytes], n: int, imgsz: int) -> list[float]:
    """Milliseconds per plain Ultralytics `model.predict`, the service's baseline."""
    from ultralytics import YOLO

    from skintwin.data.images import decode_image

    model = YOLO(str(weights))
    arrays = [decode_image(b)[..., ::-1] for b in images]
    model.predict(arrays[0], imgsz=imgsz, verbose=False)  # warm-up
    out = []
    for i in range(n):
        t = time.perf_counter()
        model.predict(arrays[i % len(arrays)], imgsz=imgsz, verbose=False, conf=0.25)
        out.append((time.perf_counter() - t) * 1000)
    return out


def _load(url: str, images: list[bytes], conc: int, total: int) -> tuple[list[float], float]:
    """`conc` keep-alive clients posting `total` requests in all: (latencies ms, seconds)."""
    import httpx

    lat: list[float] = []
    per_thread = max(1, total // conc)
    ready = threading.Barrier(conc + 1)

    def client(k: int) -> None:
        with httpx.Client(timeout=120) as c:
            c.post(url, content=images[k % len(images)])  # keep-alive warm-up
            ready.wait()
            for i in range(per_thread):
                t = time.perf_counter()
                r = c.post(url, content=images[(k + i) % len(images)])
                lat.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text

    threads = [threading.Thread(target=client, args=(k,)) for k in range(conc)]
    for t in threads:
        t.start()
    ready.wait()  # the clock starts once every client has warmed up
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return lat, time.perf_counter() - t0


def _alternating(names, r: int) -> list[str]:
    """Round `r`'s order: as given on even rounds, reversed on odd ones (A B C, C B A)."""
    return list(names) if r % 2 == 0 else list(names)[::-1]


def _in_turn(
    project: Path, work: Path, images: list[bytes], n: int, variants: dict[str, dict],
    rounds: int = 2,
) -> dict[str, list[float]]:  # fmt: skip
    """/predict latencies (ms) of one service per variant (its extra environment), one
    service up at a time: `rounds` blocks each, in alternating order (A B C, C B A) so
    that a drift in the machine's speed falls on every variant alike. One at a time
    because two runtimes on the same 2 cores measure each other: after each request
    PyTorch's OpenMP threads and ONNX Runtime's pool spin-wait, taking the cores from the
    other service's next request."""
    import httpx

    from skintwin.ops.processes import free_port, start_service

    lat: dict[str, list[float]] = {name: [] for name in variants}
    per_block = max(1, n // rounds)
    for r in range(rounds):
        for name in _alternating(variants, r):
            port = free_port()
            env = {"SKINTWIN_MONITOR_DB": f"sqlite:///{work / (name + '.db')}",
                   "SKINTWIN_RELOAD_INTERVAL_S": "3600", **variants[name]}  # fmt: skip
            proc = start_service(project, port, work / f"{name}.log", **env)
            url = f"http://127.0.0.1:{port}/predict"
            try:
                with httpx.Client(timeout=120) as c:
                    for i in range(5):  # warm-up
                        c.post(url, content=images[i % len(images)])
                    for i in range(per_block):
                        t = time.perf_counter()
                        assert c.post(url, content=images[i % len(images)]).status_code == 200
                        lat[name].append((time.perf_counter() - t) * 1000)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    return lat


def _runtimes(project: Path, work: Path, images: list[bytes], n: int) -> list[Row]:
    """ONNX Runtime against the `.pt`, and the cost of storing the embedding: /predict p50
    measured in turn, and batch scoring's images/s through one session."""
    from bench.drift import _projection
    from skintwin.model.onnx import export_onnx
    from skintwin.params import load_params

    params = load_params(project / "params.yaml")
    weights = project / "models/train/weights/best.pt"
    projection = _projection(project, params, work)
    onnx = project / "reports/evaluate/model.onnx"
    if not onnx.is_file():  # a bench model evaluated before the stage exported one
        onnx = export_onnx(weights, work / "model.onnx", params.evaluate.imgsz, 6)
    embed = {"SKINTWIN_SERVE_EMBEDDING": str(projection)}
    lat = _in_turn(project, work, images, n, {
        "pt": {"SKINTWIN_SERVE_WEIGHTS": str(weights)},
        "pt+embedding": {"SKINTWIN_SERVE_WEIGHTS": str(weights), **embed},
        "onnx+embedding": {"SKINTWIN_SERVE_WEIGHTS": str(onnx), **embed},
    })  # fmt: skip
    p50 = {name: statistics.median(v) for name, v in lat.items()}
    rates = _batch_rates(work, {"pt": weights, "onnx": onnx}, projection, params)
    return [
        Row("/predict p50 on ONNX Runtime", p50["onnx+embedding"], "ms", p50["pt+embedding"],
            "the .pt", "≥ 1.5× faster", p50["pt+embedding"] / p50["onnx+embedding"] >= 1.5),
        _batch_row(rates),
        Row("/predict p50 storing the embedding", p50["pt+embedding"], "ms", p50["pt"],
            "not storing it", "≤ 1.10×", p50["pt+embedding"] / p50["pt"] <= 1.10),
    ]  # fmt: skip


def _batch_rates(work: Path, weights: dict[str, Path], projection: Path, params,
                 rounds: int = 6) -> dict[str, list[float]]:  # fmt: skip
    """Images per second of batch scoring (chunks of 16 through one session) per runtime,
    one figure a round after a warm-up round; the runtimes take turns in alternating order
    (A B, B A), so that a drift in the machine's speed falls on both alike."""
    from skintwin.model.loaded import LoadedModel
    from skintwin.monitoring.scoring import plan_batch, score_batch
    from skintwin.steps.generate import run_generate

    folder = work / "batch"
    if not folder.is_dir():
        gen = params.generate.model_copy(update={"n_images": 200, "seed": 77})
        run_generate(folder, gen, labels=False, workers=2)
    batch = plan_batch(folder / "images", "bench")
    models = {name: LoadedModel.from_weights(path, projection) for name, path in weights.items()}
    rates: dict[str, list[float]] = {name: [] for name in models}
    for r in range(rounds + 1):
        for name in _alternating(models, r):
            start = time.perf_counter()
            score_batch(models[name], batch, 0.25, params.evaluate.imgsz, 10**8, progress=False)
            if r:  # round 0 warms both up
                rates[name].append(len(batch.images) / (time.perf_counter() - start))
    return rates


def _batch_row(rates: dict[str, list[float]]) -> Row:
    """ONNX Runtime's images/s against the `.pt`'s over all rounds, and how many of the
    rounds' own ratios reached the target (a count, not one lucky round)."""
    onnx, pt = (statistics.harmonic_mean(rates[k]) for k in ("onnx", "pt"))  # total ÷ time
    ratios = [a / b for a, b in zip(rates["onnx"], rates["pt"], strict=True)]
    each = ", ".join(f"{x:.2f}" for x in ratios)
    hits = sum(x >= 1.5 for x in ratios)
    print(f"batch scoring, ONNX Runtime ÷ the .pt, round by round: {each} "
          f"({hits} of {len(ratios)} rounds ≥ 1.5×)")  # fmt: skip
    return Row("batch scoring on ONNX Runtime, images/s", onnx, "/s", pt, "the .pt", "≥ 1.5×",
               onnx / pt >= 1.5)  # fmt: skip


def run(work: Path, size: str, project: Path) -> list[Row]:
    from skintwin.ops.processes import free_port, start_service

    s = SIZES[size]
    work.mkdir(parents=True, exist_ok=True)
    images = _images(work, s["images"])
    weights = project / "models/train/weights/best.pt"
    bare = _bare_latencies(weights, images, s["requests"], imgsz=192)
    port = free_port()
    proc = start_service(
        project,
        port,
        work / "service.log",
        SKINTWIN_MONITOR_DB=f"sqlite:///{work / 'serve.db'}",
        SKINTWIN_SERVE_WEIGHTS=str(weights),
        SKINTWIN_RELOAD_INTERVAL_S="3600",
    )
    url = f"http://127.0.0.1:{port}/predict"  # the model predicts at its training imgsz
    base_p50 = statistics.median(bare)
    try:
        rows = []
        for conc in (1, 8):
            lat, elapsed = _load(url, images, conc, s["requests"])
            p50 = statistics.median(lat)
            rows += [
                Row(
                    f"/predict p50 at {conc} concurrent",
                    p50,
                    "ms",
                    base_p50,
                    "bare model.predict p50",
                    "≤ 1.15× (at 1)" if conc == 1 else "",
                    p50 / base_p50 <= 1.15 if conc == 1 else None,
                ),
                Row(
                    f"/predict p99 at {conc} concurrent",
                    _pct(lat, 0.99),
                    "ms",
                    _pct(bare, 0.99),
                    "bare model.predict p99",
                ),
                Row(
                    f"/predict throughput at {conc} concurrent",
                    len(lat) / elapsed,
                    "/s",
                    1000 / statistics.mean(bare),
                    "bare predict, 1 stream",
                ),
            ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows + _runtimes(project, work, images, s["requests"])
