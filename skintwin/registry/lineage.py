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


_UPSTREAM = ("validate", "preprocess", "train", "evaluate")  # what a candidate is made of
_ABSENT = object()


def _lookup(doc: object, dotted: str) -> object:
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _ABSENT
        doc = doc[part]
    return doc


def _locked_stages(paths: ProjectPaths) -> dict:
    """`dvc.lock`'s stages ({} without a lock)."""
    lock = yaml.safe_load(paths.dvc_lock.read_text()) if paths.dvc_lock.is_file() else {}
    return (lock or {}).get("stages", {})


def _params(paths: ProjectPaths) -> dict:
    """params.yaml as it is now ({} without one)."""
    return (yaml.safe_load(paths.params.read_text()) if paths.params.is_file() else {}) or {}


def unrecorded_changes(paths: ProjectPaths) -> list[str]:
    """Where the project no longer is what made the candidate, by `dvc.lock`: a param of
    the candidate's stages whose value in params.yaml is not the one the stage ran with,
    and a stage that read an output its upstream stage has written again since (`dvc repro
    preprocess` after evaluate). Registered so, the version's lineage would name params
    and data that did not make it, and the gate would hold its old figures against a
    champion measured on the new split. Nothing without a lock (a project not run by DVC)."""
    if not paths.dvc_lock.is_file():
        return []
    stages, now = _locked_stages(paths), _params(paths)
    out = []
    for stage in _UPSTREAM:
        for key, value in stages.get(stage, {}).get("params", {}).get("params.yaml", {}).items():
            found = _lookup(now, key)
            if found != value:
                shown = "(absent)" if found is _ABSENT else repr(found)
                out.append(f"{key}: the {stage} stage ran with {value!r}, params.yaml has {shown}")
    written = {o["path"]: (name, o.get("md5")) for name in _UPSTREAM
               for o in stages.get(name, {}).get("outs", [])}  # fmt: skip
    for stage in _UPSTREAM:
        for dep in stages.get(stage, {}).get("deps", []):
            by, md5 = written.get(dep["path"], (None, None))
            if by is not None and dep.get("md5") != md5:
                out.append(f"{dep['path']}: the {by} stage wrote it again after {stage} read it")
    return out


def _edited(paths: ProjectPaths, stages: dict) -> list[str]:
    """Tracked files changed since the commit, but for what the pipeline itself writes:
    dvc.lock, the stages' outputs and the .gitignore DVC keeps beside them. A first run
    from a clean clone rewrites those, and its version read "dirty" for code as committed."""
    outs = {o["path"] for stage in stages.values() for o in stage.get("outs", [])}
    written = {"dvc.lock"} | outs | {(Path(o).parent / ".gitignore").as_posix() for o in outs}
    changed = _git(paths.root, "diff", "--name-only", "-z", "HEAD").split("\0")
    return [f for f in changed if f and not any(f == w or f.startswith(f"{w}/") for w in written)]


def collect_lineage(paths: ProjectPaths, run_id: str, flow_run_id: str | None = None) -> dict:
    """Code, data and model hashes, params and run ids of a candidate."""
    stages = _locked_stages(paths)

    def out_md5(stage: str) -> str:
        outs = stages.get(stage, {}).get("outs", [])
        return outs[0].get("md5", "") if outs else ""

    params = _params(paths)
    data_yaml = paths.processed / "data.yaml"
    classes = list(read_names(data_yaml)[1]) if data_yaml.is_file() else "unknown"
    return {
        "git_commit": _git(paths.root, "rev-parse", "HEAD") or "none",
        "git_dirty": str(bool(_edited(paths, stages))),
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
    external = trained_elsewhere(tags)  # the workspace's model and train params: not its
    overall = (
        [tags["gate.overall_reasons"]]
        if "gate.overall_reasons" in tags
        else [r for r in tags.get("gate.reasons", "").split("; ") if not r.startswith("tone")]
    )  # a version recorded before: a group reason's own "; " leaves pieces
    lines = [
        f"{name} v{mv.version}  aliases: {', '.join(mv.aliases) or '-'}",
        f"  decision   : {tags.get('gate.decision', '-')} (rule {tags.get('gate.rule') or '-'})"
        f" — {'; '.join(overall)}",
        *([f"  approved   : {tags['gate.approved']}"] if "gate.approved" in tags else []),
        f"  vs champion: {tags.get('gate.delta', '-')}"
        f" (compared to v{tags.get('gate.compared_to', '-')})",
        f"  test       : {headline or '-'}",
        "  tone groups:",
        *_group_lines(tags, metric),
        f"  git commit : {tags.get('lineage.git_commit')}"
        f" (dirty: {tags.get('lineage.git_dirty')})",
        f"  data (DVC) : md5 {tags.get('lineage.dvc_data_md5')}",
        f"  model (DVC): md5 {tags.get('lineage.dvc_model_md5')}"
        if not external
        else f"  weights    : trained elsewhere ({tags['lineage.source_weights']})",
        f"  MLflow run : {tags.get('lineage.mlflow_run_id')}",
        f"  Prefect run: {tags.get('lineage.prefect_flow_run_id') or '-'}",
        f"  train      : {json.dumps(params.get('train', {}), sort_keys=True)}"
        if not external
        else "  train      : unknown (trained elsewhere)",
        f"  data.path  : {params.get('data', {}).get('path', '-')}",
    ]
    return "\n".join(lines)
