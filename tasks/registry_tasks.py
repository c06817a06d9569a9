"""Prefect tasks for the MLflow side: read the evaluation, register the candidate, gate it,
and publish the run's summary."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from skintwin.project import ProjectPaths
from skintwin.registry import champion, promotion
from skintwin.registry.summary import training_markdown
from skintwin.training.evaluation import Evaluation

# Registry calls go over the network when MLflow is a server: retry transient failures.
_RETRY = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}


@task(cache_policy=NO_CACHE, name="read-evaluation")
def read_evaluation(root: str) -> Evaluation:
    """The evaluate stage's test metrics and per-image rows (read once per flow run)."""
    paths = ProjectPaths(Path(root))
    return Evaluation.read(paths.metrics, paths.test_stats)


@task(cache_policy=NO_CACHE, name="register-candidate", **_RETRY)
def register_candidate(root: str, evaluation: Evaluation) -> dict:
    """Register the evaluated candidate as a pyfunc version aliased `challenger` (idempotent)."""
    paths = ProjectPaths(Path(root))
    result = promotion.register(paths, evaluation, str(flow_run.get_id() or ""))
    get_run_logger().info("candidate: version %s (new: %s)", result["version"], result["new"])
    return result


@task(cache_policy=NO_CACHE, name="measure-champion", **_RETRY)
def measure_champion(root: str) -> champion.Measured | None:
    """The current champion on the new test split, for the gate (None: no champion)."""
    measured = champion.measure_current(ProjectPaths(Path(root)))
    if measured is not None:
        get_run_logger().info("champion v%s measured on the test split", measured.version)
    return measured


@task(cache_policy=NO_CACHE, name="gate-candidate", **_RETRY)
def gate_candidate(
    root: str, candidate: dict, evaluation: Evaluation, measured: champion.Measured | None = None
) -> dict:
    """Gate the candidate against the champion on the same test split (`measured` earlier
    in the flow, or now); move `champion` only on a pass."""
    decision = promotion.gate(ProjectPaths(Path(root)), candidate, evaluation, measured)
    verdict = "promoted to champion" if decision["promote"] else "not promoted"
    get_run_logger().info(
        "version %s %s: %s", decision["version"], verdict, "; ".join(decision["reasons"])
    )
    return decision


@task(cache_policy=NO_CACHE, name="publish-summary")
def publish_summary(stages: list[dict], evaluation: Evaluation, decision: dict) -> str:
    """Publish the run summary as the `training-summary` markdown artifact."""
    artifact = create_markdown_artifact(
        key="training-summary",
        markdown=training_markdown(stages, evaluation, decision),
        description="Test metrics and promotion decision",
    )
    return str(artifact)
