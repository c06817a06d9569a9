"""The control plane end to end: real Prefect and MLflow servers on 127.0.0.1, deployments
from prefect.yaml, a process worker running them to Completed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from skintwin.ops import plane as ops
from skintwin.ops.processes import bin_path
from tests.conftest import free_port, make_project, port_free
from tests.headless import drawn, offline_dom

pytestmark = pytest.mark.slow
NAME = "skin-twin-detector"


def _prefect(p: ops.Plane, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [bin_path("prefect"), *args],
        cwd=p.root,
        env=p.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"prefect {args}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _run_deployment(p: ops.Plane, name: str, *params: str) -> str:
    """Trigger a deployment, let one worker pass run it; returns the flow-run id."""
    out = _prefect(p, "deployment", "run", name, *[a for kv in params for a in ("--param", kv)])
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1)
    _prefect(p, "worker", "start", "--pool", ops.POOL, "--run-once")
    return run_id


def _api(p: ops.Plane, path: str, body: dict | None = None):
    url = f"{p.prefect_api}{path}"
    r = httpx.post(url, json=body, timeout=30) if body is not None else httpx.get(url, timeout=30)
    r.raise_for_status()
    return r.json()


def _edit_params(root: Path, retrain_on_critical: bool, epochs: int) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["monitor"]["retrain_on_critical"] = retrain_on_critical
    params["train"]["epochs"] = epochs
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_control_plane_runs_deployments(tmp_path: Path, tiny_params: dict) -> None:
    from mlflow.tracking import MlflowClient

    from skintwin.params import parse_params
    from skintwin.steps.generate import run_generate

    tiny_params["monitor"]["imgsz"] = 64
    root = make_project(tmp_path / "project", tiny_params, with_flows=True)
    gen = parse_params(tiny_params).generate.model_copy(update={"n_images": 40, "seed": 77})
    run_generate(root / "batches" / "dark", gen, shift="lighting", labels=False, workers=1)
    p = ops.plane(root, free_port(), free_port())
    try:
        ops.start_servers(p)
        ui = httpx.get(f"http://127.0.0.1:{p.prefect_port}/", timeout=30)
        assert ui.status_code == 200 and "<html" in ui.text.lower()
        ops.deploy(p)
        ops.deploy(p)  # again, as a second `up` does: the pool exists (its name was cut)

        run_id = _run_deployment(p, "training/manual")
        run = _api(p, f"/flow_runs/{run_id}")
        assert run["state"]["type"] == "COMPLETED", run["state"]
        tasks = _api(p, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
        names = [t["name"] for t in tasks]
        for expected in (
            "dvc repro validate",
            "dvc repro train",
            "register-candidate",
            "gate-candidate",
            "publish-summary",
        ):
            assert any(n.startswith(expected) for n in names), (expected, names)
        assert all(t["state"]["type"] == "COMPLETED" for t in tasks)
        artifacts = _api(
            p, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
        )
        assert "training-summary" in {a["key"] for a in artifacts}
        client = MlflowClient(tracking_uri=p.mlflow_uri)
        champion = client.get_model_version_by_alias(NAME, "champion")
        assert champion.version == client.get_model_version_by_alias(NAME, "challenger").version
        assert champion.tags["lineage.prefect_flow_run_id"] == run_id

        drift = _api(p, "/deployments/name/drift/daily")
        assert [s["schedule"]["cron"] for s in drift["schedules"]] == ["0 6 * * *"]
        # a critical drift with retrain_on_critical starts training/manual on the server;
        # a changed recipe (more epochs) gives that run a new candidate to gate
        _edit_params(root, retrain_on_critical=True, epochs=2)
        drift_run = _run_deployment(p, "drift/daily", f"images_dir={root / 'batches' / 'dark'}")
        assert _api(p, f"/flow_runs/{drift_run}")["state"]["type"] == "COMPLETED"
        reports = list((root / "reports" / "drift").glob("*-dark/drift_report.html"))
        assert len(reports) == 1
        page = drawn(offline_dom(reports[0]))  # Evidently's page is self-contained
        assert "Drifted Columns" in page and page.count("<canvas") >= 10  # one per column
        manual = {"deployments": {"name": {"any_": ["manual"]}}}
        started = [r["id"] for r in _api(p, "/flow_runs/filter", manual) if r["id"] != run_id]
        assert len(started) == 1, "the drift run did not start training/manual"
        _prefect(p, "worker", "start", "--pool", ops.POOL, "--run-once")
        retrain = _api(p, f"/flow_runs/{started[0]}")
        assert retrain["state"]["type"] == "COMPLETED", retrain["state"]
        newest = max(client.search_model_versions(f"name='{NAME}'"), key=lambda v: int(v.version))
        assert newest.version != champion.version
        assert newest.tags["lineage.prefect_flow_run_id"] == started[0]
        assert newest.tags["gate.decision"] in {"promoted", "rejected"}
    finally:
        stopped = ops.down(p)
    assert set(stopped) >= {"prefect-server", "mlflow-server"}
    assert port_free(p.prefect_port) and port_free(p.mlflow_port)
