"""Prefect tasks for the MLflow side: register the evaluated candidate, gate it, summarise."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from skintwin import promotion

# Registry calls go over the network when MLflow is a server: retry transient failures.
_RETRY = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}


@task(cache_policy=NO_CACHE, name="register-candidate", **_RETRY)
def register_candidate(root: str) -> dict:
    """Register the evaluated candidate as a pyfunc version aliased `challenger` (idempotent)."""
    result = promotion.register(Path(root), str(flow_run.get_id() or ""))
    get_run_logger().info("candidate: version %s (new: %s)", result["version"], result["new"])
    return result


@task(cache_policy=NO_CACHE, name="promote-candidate", **_RETRY)
def promote_candidate(root: str, candidate: dict) -> dict:
    """Gate the candidate against the champion evaluated now; move `champion` only on a pass."""
    decision = promotion.gate(Path(root), candidate)
    verdict = "promoted to champion" if decision["promote"] else "not promoted"
    get_run_logger().info(
        "version %s %s: %s", decision["version"], verdict, "; ".join(decision["reasons"])
    )
    return decision


def summary_markdown(stages: list[dict], evaluation: dict, decision: dict) -> str:
    """Markdown for the Prefect UI: stages run, test metrics, tone groups, decision."""
    o = evaluation["overall"]
    groups = "\n".join(
        f"| {g} | {v['images']} | {v['mAP50']:.3f} | {v['mAP50-95']:.3f} |"
        for g, v in evaluation["per_group"].items()
    )
    classes = "\n".join(
        f"| {c} | {v['instances']} | {v['mAP50']:.3f} | {v['mAP50-95']:.3f} |"
        for c, v in evaluation["per_class"].items()
    )
    ran = sorted({s for st in stages for s in st["ran"]}) or ["none (all up to date)"]
    verdict = "**promoted to `champion`**" if decision.get("promote") else "**not promoted**"
    reasons = "\n".join(f"- {r}" for r in decision.get("reasons", []))
    return f"""# Training run summary

Stages run: {", ".join(ran)}

## Test split ({o["images"]} images)
| mAP50 | mAP50-95 | precision | recall |
|---|---|---|---|
| {o["mAP50"]:.3f} | {o["mAP50-95"]:.3f} | {o["precision"]:.3f} | {o["recall"]:.3f} |

| class | instances | mAP50 | mAP50-95 |
|---|---|---|---|
{classes}

| skin-tone group | images | mAP50 | mAP50-95 |
|---|---|---|---|
{groups}

## Decision
Version {decision["version"]} {verdict}.

{reasons}
"""


@task(cache_policy=NO_CACHE, name="publish-summary")
def publish_summary(root: str, stages: list[dict], decision: dict) -> str:
    """Publish the run summary as the `training-summary` markdown artifact."""
    _, evaluation = promotion.load_candidate(Path(root))
    artifact = create_markdown_artifact(
        key="training-summary",
        markdown=summary_markdown(stages, evaluation, decision),
        description="Test metrics and promotion decision",
    )
    return str(artifact)
