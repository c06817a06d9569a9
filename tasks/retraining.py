"""Start the training flow from a critical alert: through its deployment when a Prefect
server is configured, in this process otherwise."""

from __future__ import annotations

import os

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

TRAINING_DEPLOYMENT = "training/manual"


@task(cache_policy=NO_CACHE, name="trigger-retraining")
def trigger_retraining(root: str) -> dict:
    """Returns {"via": "deployment"|"in-process", "flow_run": id or result summary}."""
    logger = get_run_logger()
    if os.environ.get("PREFECT_API_URL"):
        from prefect.deployments import run_deployment

        run = run_deployment(TRAINING_DEPLOYMENT, timeout=0)
        logger.info(
            "retraining requested through deployment %s: flow run %s", TRAINING_DEPLOYMENT, run.id
        )
        return {"via": "deployment", "flow_run": str(run.id)}
    from flows.training import training_flow

    logger.info("no Prefect server configured: retraining in this process")
    result = training_flow(project_dir=root)
    return {"via": "in-process", "decision": result["decision"].get("promote")}
