"""Markdown summary of a training run for the Prefect UI: stages, test metrics with their
intervals and counts, and the gate's decision group by group."""

from __future__ import annotations

from skintwin.training.evaluation import Evaluation


def _ci(scores: dict, metric: str) -> str:
    lo, hi = scores.get(f"{metric}_lo"), scores.get(f"{metric}_hi")
    return (
        f"{scores[metric]:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{scores[metric]:.3f}"
    )


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def gate_table(decision: dict) -> str:
    groups = decision.get("groups") or {}
    if not groups:
        return ""
    rows = "\n".join(
        f"| {g} | {v['n']} | {_signed(v.get('delta'))} | "
        + (f"[{v['lo']:+.3f}, {v['hi']:+.3f}]" if v.get("lo") is not None else "–")
        + f" | {v['sdd'] if v.get('sdd') is not None else '–'} | **{v['verdict']}** |"
        for g, v in groups.items()
    )
    head = (
        "| tone group | test images | Δ vs champion | bounds (one-sided, Bonferroni) "
        "| detectable drop | verdict |"
    )
    return f"\n{head}\n|---|---|---|---|---|---|\n{rows}\n"


def training_markdown(stages: list[dict], evaluation: Evaluation, decision: dict) -> str:
    metric = decision.get("metric", "mAP50")
    o = evaluation.overall
    groups = "\n".join(
        f"| {g} | {v['images']} | {_ci(v, metric)} | {v['mAP50-95']:.3f} |"
        for g, v in evaluation.per_group.items()
    )
    classes = "\n".join(
        f"| {c} | {v['instances']} | {_ci(v, metric)} | {v['mAP50-95']:.3f} |"
        for c, v in evaluation.per_class.items()
    )
    ran = sorted({s for st in stages for s in st["ran"]}) or ["none (all up to date)"]
    verdict = "**promoted to `champion`**" if decision.get("promote") else "**not promoted**"
    reasons = "\n".join(f"- {r}" for r in decision.get("reasons", []))
    return f"""# Training run summary

Stages run: {", ".join(ran)}

## Test split ({o["images"]} images; {metric} with its 95% bootstrap interval)
| {metric} | mAP50-95 | precision | recall |
|---|---|---|---|
| {_ci(o, metric)} | {o["mAP50-95"]:.3f} | {o["precision"]:.3f} | {o["recall"]:.3f} |

| class | instances | {metric} | mAP50-95 |
|---|---|---|---|
{classes}

| skin-tone group | images | {metric} | mAP50-95 |
|---|---|---|---|
{groups}

## Decision
Version {decision["version"]} {verdict} (rule: {decision.get("rule", "floor")}).

{reasons}
{gate_table(decision)}{_card_line(decision)}"""


def _card_line(decision: dict) -> str:
    page = decision.get("model_card")
    if not page:
        return ""
    return f"\nModel card: `{page}` (also on the version's MLflow run, `model_card/`)\n"
