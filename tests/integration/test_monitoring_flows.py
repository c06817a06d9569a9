"""Monitoring on a real (tiny) champion: batch inference, drift flow, alerts, loader fallback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import MlflowServer

pytestmark = pytest.mark.slow
NAME = "skin-twin-detector"


def test_batch_inference_logs_every_prediction(champion: Path) -> None:
    from flows.batch_inference import batch_inference_flow
    from skintwin.monitoring.monitor import ModelMonitor

    folder = champion / "batches" / "normal" / "images"
    (folder / "scan.jpg").write_bytes(b"%PDF-1.4 renamed document")  # a bad upload
    try:
        summary = batch_inference_flow(str(folder), source="normal", project_dir=str(champion))
    finally:
        (folder / "scan.jpg").unlink()
    assert summary["images"] == 41 and summary["failed"] == 1
    assert (Path(summary["out_dir"]) / "predictions.csv").is_file()
    frame = ModelMonitor(project_dir=champion).store.window(source="normal")
    assert len(frame) == 41 and frame["error"].notna().sum() == 1
    assert frame["model_version"].eq("1").all()


def test_drift_flow_alerts_once_on_shift_and_not_on_normal(champion: Path) -> None:
    import yaml

    from flows.batch_inference import batch_inference_flow
    from flows.drift import drift_flow

    alerts = champion / ".monitoring" / "alerts"
    params_file = champion / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["monitor"]["retrain_on_critical"] = True
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        shifted = drift_flow(
            source="lighting",
            images_dir=str(champion / "batches/lighting"),
            project_dir=str(champion),
        )
    finally:
        params_file.write_text(original)
    assert shifted["result"]["drift_detected"] is True
    assert shifted["alert"] is not None and shifted["alert"]["severity"] == "critical"
    # no Prefect server configured here: training ran as a subflow (nothing was stale)
    assert shifted["retraining"]["via"] == "subflow"
    assert Path(shifted["result"]["html"]).is_file()
    embedding = shifted["result"]["embedding"]  # the champion's backbone, from the registry
    assert embedding["available"] and embedding["tests"]["all"]["images"][1] == 40
    assert 'id="embedding-drift"' in Path(shifted["result"]["html"]).read_text()
    again = drift_flow(source="lighting", project_dir=str(champion))
    assert again["result"]["drift_detected"] is True and again["alert"] is None
    assert len(list(alerts.glob("*-data_drift-*.json"))) == 1

    batch_inference_flow(
        str(champion / "batches/normal/images"), source="normal2", project_dir=str(champion)
    )
    normal = drift_flow(source="normal2", project_dir=str(champion))
    assert normal["result"]["drift_detected"] is False and normal["alert"] is None

    empty = drift_flow(source="nobody", project_dir=str(champion))
    assert empty["result"]["enough_data"] is False and empty["alert"] is None
    assert (Path(empty["report_dir"]) / "drift_summary.json").is_file()


def test_two_drift_checks_at_once_raise_one_alert(champion: Path) -> None:
    """The de-duplication state is claimed atomically in the store, not a JSON file."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from flows.batch_inference import batch_inference_flow
    from flows.drift import drift_flow

    batch_inference_flow(
        str(champion / "batches/lighting"), source="twice", project_dir=str(champion)
    )
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(lambda _: drift_flow(source="twice", project_dir=str(champion)), range(2))
        )
    assert all(r["result"]["drift_detected"] for r in runs)
    assert sum(r["alert"] is not None for r in runs) == 1
    reports = {r["report_dir"] for r in runs}  # the same second: each its own folder
    assert len(reports) == 2 and all((Path(d) / "drift_report.html").is_file() for d in reports)
    files = (champion / ".monitoring" / "alerts").glob("*-data_drift-*.json")
    keys = [json.loads(f.read_text())["key"] for f in files]
    assert keys.count("data_drift:twice") == 1


def test_loader_follows_alias_and_survives_registry_outage(
    champion: Path, tmp_path, monkeypatch
) -> None:
    import mlflow

    from skintwin.registry.client import log_and_register
    from skintwin.serving.loader import ModelLoader
    from skintwin.training.tracking import TRAINING_EXPERIMENT, experiment_id

    weights = champion / "models/train/weights/best.pt"
    server = MlflowServer(tmp_path / "server")
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mlflow.set_tracking_uri(server.url)
        client = mlflow.tracking.MlflowClient()
        versions = []
        for _ in range(2):
            with mlflow.start_run(
                experiment_id=experiment_id(TRAINING_EXPERIMENT, tmp_path)
            ) as run:
                pass
            versions.append(log_and_register(weights, run.info.run_id, NAME, {"source": "test"}))
        client.set_registered_model_alias(NAME, "champion", versions[0])
        cache = tmp_path / "cache"
        loader = ModelLoader(project_dir=champion, cache_dir=cache)
        first = loader.load_all_models()[NAME]
        assert (first.version, first.source) == ("1", "registry")
        client.set_registered_model_alias(NAME, "champion", versions[1])
        assert loader.reload_if_moved() == [NAME]
        assert loader.models[NAME].version == "2"
    finally:
        server.stop()
    with socket.socket() as s:  # nothing listens on the port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", server.port))
    offline = ModelLoader(project_dir=champion, cache_dir=tmp_path / "cache").load_all_models()
    model = offline[NAME]
    assert (model.version, model.source) == ("2", "local cache")
    image = next((champion / "batches/normal/images").iterdir())
    assert isinstance(model.predict(str(image))[0]["detections"], list)


# ---- hardening (issue #11): batches checked first, idempotent, bounded, inside the project ----


def _bomb_png() -> bytes:
    """A ~100-byte PNG whose header declares 30000×30000 pixels (2.7 GB decoded)."""
    import io
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = (30000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve, so a child of this big test
# process would report the test's own memory; VmHWM starts afresh with the new program.
_PEAK = (
    "import sys\n"
    "from pathlib import Path\n"
    "from skintwin.ops.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = [l for l in Path('/proc/self/status').read_text().splitlines() if 'VmHWM' in l]\n"
    "print('PEAK_KB', hwm[0].split()[1], file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _score_cli(champion: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`skintwin score` in its own process; returns it and that process's peak memory (MB)."""
    import os
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, "score", *args],
        cwd=champion,
        env=dict(os.environ, SKINTWIN_HOME=str(champion)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_KB")]
    return proc, int(peak[-1]) / 1024 if peak else float("nan")


def test_a_batch_with_bombs_and_odd_names_scores_the_rest_once(
    champion: Path, tmp_path: Path
) -> None:
    import os
    import shutil

    from skintwin.monitoring.monitor import ModelMonitor

    folder = tmp_path / "odd"
    shutil.copytree(champion / "batches/normal/images", folder)
    for i in range(4):
        (folder / f"bomb{i}.png").write_bytes(_bomb_png())
    odd = os.fsencode(folder) + b"/caf\xe9-latin1.jpg"  # a name that is not UTF-8
    with open(odd, "wb") as fh:
        fh.write(next((champion / "batches/normal/images").iterdir()).read_bytes())
    store = ModelMonitor(project_dir=champion).store
    before = store.count()
    proc, peak_mb = _score_cli(champion, "--images", str(folder), "--source", "odd")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert peak_mb < 1536  # four 2.7 GB bombs refused from their headers
    rows = store.window(source="odd")
    assert len(rows) == 45 and rows["error"].notna().sum() == 4
    assert rows[rows["error"].notna()]["error"].str.contains("exceeds").all()
    assert "caf\\xe9-latin1.jpg" in set(rows["image_ref"])
    reports = list((champion / "reports/batch").glob("*-odd/predictions.csv"))
    assert len(reports) == 1
    again, _ = _score_cli(champion, "--images", str(folder), "--source", "odd")
    assert again.returncode == 0 and store.count() == before + 45  # replaced, not doubled
    named = ("--images", str(folder), "--source", "odd", "--batch-id", "odd-rescored")
    other, _ = _score_cli(champion, *named)  # the README's --batch-id: a batch of its own
    assert other.returncode == 0 and store.count() == before + 90, other.stderr[-3000:]


@pytest.mark.parametrize(
    ("source", "named"),
    [("x" * 260, "source"), ("x/../../../../../../tmp/p", "source"), ("..", "source")],
)
def test_bad_sources_fail_before_any_write(
    champion: Path, tmp_path: Path, source: str, named: str
) -> None:
    from flows.batch_inference import batch_inference_flow
    from skintwin.errors import SkinTwinError
    from skintwin.monitoring.monitor import ModelMonitor

    store = ModelMonitor(project_dir=champion).store
    before, reports = store.count(), set((champion / "reports").rglob("*"))
    outside = set(Path("/tmp").glob("p*"))
    with pytest.raises(SkinTwinError, match=named):
        batch_inference_flow(
            str(champion / "batches/normal/images"), source=source, project_dir=str(champion)
        )
    assert store.count() == before and set((champion / "reports").rglob("*")) == reports
    assert set(Path("/tmp").glob("p*")) == outside
