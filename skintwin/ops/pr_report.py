"""The report a pull request gets from the training workflow, the way DVC users get one from
CML: metrics and params against the base branch (`dvc metrics diff`, `dvc params diff`), the
gate's decision with its table per skin-tone group, and the evaluation's plots.

    skintwin report --base origin/main --out reports/pr

writes `reports/pr/report.md` with its pictures beside it, ready for
`cml comment create reports/pr/report.md` (which uploads the pictures it links).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir
from skintwin.ops.processes import bin_path
from skintwin.params import load_params
from skintwin.project import ProjectPaths, read_run_record
from skintwin.registry.summary import gate_table


def _dvc(root: Path, *args: str) -> str:
    proc = subprocess.run(
        [bin_path("dvc"), *args], cwd=root, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SkinTwinError(f"dvc {' '.join(args)} failed: {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip()


def _headline(root: Path, base: str, metric: str) -> str:
    """The figures a reviewer reads first: overall, and per tone group the gate's `metric`,
    with the interval."""
    import json

    from skintwin.names import TONE_GROUPS

    found = json.loads(_dvc(root, "metrics", "diff", base, "--all", "--json") or "{}")
    figures = {k: v for per_file in found.values() for k, v in per_file.items()}
    keys = ["test.mAP50", "test.mAP50-95", "test.precision", "test.recall"]
    keys += [f"test.group.{g}.{metric}" for g in TONE_GROUPS]
    rows = []
    for key in (k for k in keys if k in figures):
        f, lo, hi = figures[key], figures.get(f"{key}_lo", {}), figures.get(f"{key}_hi", {})
        interval = f"[{lo['new']:.3f}, {hi['new']:.3f}]" if lo.get("new") is not None else "–"
        rows.append(f"| {key} | {_num(f.get('old'))} | {_num(f.get('new'))} | "
                    f"{_num(f.get('diff'), signed=True)} | {interval} |")  # fmt: skip
    if not rows:
        return ""
    head = f"| figure | `{base}` | this change | change | 95% interval |\n|---|---|---|---|---|"
    return head + "\n" + "\n".join(rows)


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _decision(paths: ProjectPaths) -> tuple[str | None, dict | None]:
    """The registered version of this workspace's training run, and its gate's record (with
    `approved`, a human's approval of it, where there is one)."""

    import mlflow

    from skintwin.registry import client
    from skintwin.training.tracking import configure_tracking

    if not paths.run_record.is_file():
        return None, None
    run_id = read_run_record(paths.run_record)["run_id"]
    configure_tracking(paths.root)
    name = load_params(paths.params).promote.model_name
    version = client.find_version(name, run_id)
    if version is None:
        return None, None
    uri = f"runs:/{run_id}/promotion/decision-v{version.version}.json"
    try:
        record = mlflow.artifacts.load_dict(uri)
    except Exception:  # registered, not gated yet
        return str(version.version), None
    return str(version.version), record | {"approved": version.tags.get("gate.approved")}


def _decision_section(version: str | None, record: dict | None) -> str:
    if version is None:
        return "No version is registered from this workspace's training run."
    if record is None:
        return f"Version {version} is registered; the gate has not decided on it yet."
    verdict = "**promoted to `champion`**" if record.get("promote") else "**not promoted**"
    if record.get("approved"):  # the gate said no; a human made it champion
        verdict += f" by the gate; **approved as champion by a human** ({record['approved']})"
    reasons = "\n".join(f"- {r}" for r in record.get("reasons", []))
    return f"Version {version} {verdict} (rule: {record.get('rule', 'floor')}).\n\n{reasons}\n" + (
        gate_table(record) or "\n(no champion to compare with: no table per group)\n"
    )


def write_report(paths: ProjectPaths, base: str, out: Path) -> Path:
    """Write `out/report.md` and its pictures; returns the Markdown file."""
    headline = _headline(paths.root, base, load_params(paths.params).promote.metric)
    moved = _dvc(paths.root, "metrics", "diff", base, "--md")  # every figure that moved
    changed = _dvc(paths.root, "params", "diff", base, "--md")
    if len(changed.splitlines()) < 3:  # dvc writes a table's head with no row: none changed
        changed = ""
    version, record = _decision(paths)
    charts = sorted((paths.evaluate_dir / "charts").glob("*.png"))
    pictures = "\n".join(f"![{c.stem.replace('_', ' ')}]({c.name})" for c in charts)
    text = f"""# Training report

## Metrics against `{base}`
{headline or "No metrics on either side."}

<details><summary>Every metric that moved (dvc metrics diff)</summary>

{moved if len(moved.splitlines()) > 2 else "None."}

</details>

## Parameters changed against `{base}`
{changed or "None."}

## Gate decision
{_decision_section(version, record)}
## Plots
{pictures or "No plots: the evaluate stage has not run."}
"""
    with atomic_dir(out, owner="report") as tmp:
        for chart in charts:
            shutil.copy(chart, tmp / chart.name)
        (tmp / "report.md").write_text(text, encoding="utf-8")
    return out / "report.md"
