"""Prefect task that starts another deployment (the drift flow's retraining trigger)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

TRAINING_DEPLOYMENT = "training/manual"


@task(cache_policy=NO_CACHE, name="start-deployment", retries=2, retry_delay_seconds=[2, 10])
def start_deployment(name: str = TRAINING_DEPLOYMENT, parameters: dict | None = None) -> str:
    """Ask the Prefect server to run deployment `name`; returns the new flow-run id.

    The run is scheduled, not awaited: a worker of the deployment's pool picks it up.
    """
    from prefect.deployments import run_deployment

    run = run_deployment(name, parameters=parameters or {}, timeout=0)
    get_run_logger().info("started deployment %s: flow run %s", name, run.id)
    return str(run.id)
