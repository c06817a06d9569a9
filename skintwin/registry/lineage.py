"""Lineage: where a version came from (code, data, params, runs), and its readable card."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from skintwin.data.dataset import read_names
from skintwin.data.tone import GROUP_FLOORS
from skintwin.project import ProjectPaths
from skintwin.registry.client import CHAMPION, alias_version, get_version


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def trained_elsewhere(tags: dict[str, str]) -> bool:
    """Whether a version's weights came from outside this project's training (registered
    from a `.pt`): then its lineage params are this project's, not what trained it."""
    return "lineage.source_weights" in tags


def collect_lineage(paths: ProjectPaths, run_id: str, flow_run_id: str | None = None) -> dict:
    """Code, data and model hashes, params and run ids of a candidate."""
    lock = yaml.safe_load(paths.dvc_lock.read_text()) if paths.dvc_lock.exists() else {}
    stages = (lock or {}).get("stages", {})

    def out_md5(stage: str) -> str:
        outs = stages.get(stage, {}).get("outs", [])
        return outs[0].get("md5", "") if outs else ""

    params = yaml.safe_load(paths.params.read_text()) if paths.params.exists() else {}
    data_yaml = paths.processed / "data.yaml"
    classes = list(read_names(data_yaml)[1]) if data_yaml.is_file() else "unknown"
    return {
        "git_commit": _git(paths.root, "rev-parse", "HEAD") or "none",
        "git_dirty": str(bool(_git(paths.root, "status", "--porcelain", "--untracked-files=no"))),
        "dvc_data_md5": out_md5("preprocess"),
        "dvc_model_md5": out_md5("train"),
        "mlflow_run_id": run_id,
        "prefect_flow_run_id": flow_run_id or "",
        "params": json.dumps(params, sort_keys=True),
        "classes": json.dumps(classes),
        "tone_floors": json.dumps(GROUP_FLOORS),
    }


def _with_interval(tags: dict, prefix: str, metric: str) -> str:
    value = tags.get(f"{prefix}.{metric}")
    if value is None:
        return "-"
    lo, hi = tags.get(f"{prefix}.{metric}_lo"), tags.get(f"{prefix}.{metric}_hi")
    ci = f" [{float(lo):.3f}, {float(hi):.3f}]" if lo is not None and hi is not None else ""
    return f"{float(value):.3f}{ci}"


def _group_lines(tags: dict, metric: str) -> list[str]:
    groups = sorted(
        {k.split(".")[3] for k in tags if k.startswith("metric.test.group.")}
        | {k.split(".")[2] for k in tags if k.startswith("gate.group.")}
    )
    lines = []
    for g in groups:
        n = tags.get(f"metric.test.group.{g}.images")
        shown = _with_interval(tags, f"metric.test.group.{g}", metric)
        gate = tags.get(f"gate.group.{g}", "not compared")
        lines.append(f"    {g:13} n={int(float(n)) if n else '?':<4} {metric} {shown:22} {gate}")
    return lines


def lineage_card(name: str, alias: str | None = CHAMPION, version: str | None = None) -> str:
    """A readable card: version, aliases, decision, metrics with intervals, each tone
    group's figure and gate verdict, and where the version came from."""
    from skintwin.errors import SkinTwinError

    mv = get_version(name, version) if version else alias_version(name, alias)
    if mv is None:
        raise SkinTwinError(f"model '{name}' has no version with alias '{alias}'")
    tags = mv.tags
    params = json.loads(tags.get("lineage.params", "{}") or "{}")
    metric = params.get("promote", {}).get("metric", "mAP50")
    headline = ", ".join(
        f"{m}={_with_interval(tags, 'metric.test', m)}"
        for m in ("mAP50", "mAP50-95", "precision", "recall")
        if f"metric.test.{m}" in tags
    )
    overall = [r for r in tags.get("gate.reasons", "").split("; ") if not r.startswith("tone")]
    lines = [
        f"{name} v{mv.version}  aliases: {', '.join(mv.aliases) or '-'}",
        f"  decision   : {tags.get('gate.decision', '-')} (rule {tags.get('gate.rule') or '-'})"
        f" — {'; '.join(overall)}",
        f"  vs champion: {tags.get('gate.delta', '-')}"
        f" (compared to v{tags.get('gate.compared_to', '-')})",
        f"  test       : {headline or '-'}",
        "  tone groups:",
        *_group_lines(tags, metric),
        f"  git commit : {tags.get('lineage.git_commit')}"
        f" (dirty: {tags.get('lineage.git_dirty')})",
        f"  data (DVC) : md5 {tags.get('lineage.dvc_data_md5')}",
        f"  model (DVC): md5 {tags.get('lineage.dvc_model_md5')}",
        f"  MLflow run : {tags.get('lineage.mlflow_run_id')}",
        f"  Prefect run: {tags.get('lineage.prefect_flow_run_id') or '-'}",
        f"  train      : {json.dumps(params.get('train', {}), sort_keys=True)}",
        f"  data.path  : {params.get('data', {}).get('path', '-')}",
    ]
    return "\n".join(lines)
