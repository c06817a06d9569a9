"""Monitoring on a real (tiny) champion: batch inference, drift flow, alerts, loader fallback."""

from __future__ import annotations

import socket
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
