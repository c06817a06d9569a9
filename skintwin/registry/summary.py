"""Markdown summary of a training run for the Prefect UI: stages, test metrics, decision."""

from __future__ import annotations

from skintwin.training.evaluation import Evaluation


def training_markdown(stages: list[dict], evaluation: Evaluation, decision: dict) -> str:
    o = evaluation.overall
    groups = "\n".join(
        f"| {g} | {v['images']} | {v['mAP50']:.3f} | {v['mAP50-95']:.3f} |"
        for g, v in evaluation.per_group.items()
    )
    classes = "\n".join(
        f"| {c} | {v['instances']} | {v['mAP50']:.3f} | {v['mAP50-95']:.3f} |"
        for c, v in evaluation.per_class.items()
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
