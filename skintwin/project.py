"""Where a project lives: the one root resolver, every path the stages and monitors write,
and operational edits to params.yaml."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.io import read_record

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def safe_name(value: str, field: str) -> str:
    """A name that becomes part of a path (a batch source, a subject): 1–64 letters,
    digits, `.`, `_` or `-`, not starting with a dot; anything else is an error naming
    `field`. Flow parameters come from whoever can start a deployment."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value.strip(".") == "":
        shown = value if isinstance(value, str) and len(value) <= 80 else f"{str(value)[:80]}…"
        raise SkinTwinError(
            f"{field}: {shown!r} is not a valid name (1–64 of A–Z a–z 0–9 . _ -, "
            "starting with a letter or digit)"
        )
    return value


def slug(text: str, default: str = "batch") -> str:
    """A valid `safe_name` made from free text (a folder name): other characters become
    `-`; `default` when nothing is left."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:64].rstrip("-._")
    return cleaned or default


def inside(base: Path, *parts: str) -> Path:
    """`base/parts...`, refused unless it resolves inside `base` (no `..` or link escapes)."""
    base = Path(base).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise SkinTwinError(f"{'/'.join(parts)}: resolves outside {base}")
    return target


def _is_project(folder: Path) -> bool:
    return (folder / "dvc.yaml").is_file()


def resolve_root(project_dir: str | Path | None = None) -> Path:
    """The project folder (the one holding dvc.yaml).

    The argument if given, else $SKINTWIN_HOME, else the current directory or the nearest
    parent that holds dvc.yaml (as git and DVC search). A folder named explicitly must be a
    project itself: there is no silent fallback to another one.
    """
    for given, what in ((project_dir, "project folder"), (os.environ.get("SKINTWIN_HOME"), None)):
        if given:
            folder = Path(given).expanduser()
            if not _is_project(folder):
                label = what or "SKINTWIN_HOME"
                raise SkinTwinError(
                    f"{given}: no dvc.yaml here; not a Skin-Twin project folder ({label})"
                )
            return folder.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder
    raise SkinTwinError(
        f"{here}: no dvc.yaml here or above: run from the project folder, "
        "pass --project-dir or set SKINTWIN_HOME"
    )


@dataclass(frozen=True)
class ProjectPaths:
    """Every file a stage, flow or monitor reads or writes, named once.

    Stage outputs agree with the `dvc.yaml` commands (a contract test checks it).
    """

    root: Path

    @classmethod
    def find(cls, project_dir: str | Path | None = None) -> ProjectPaths:
        return cls(resolve_root(project_dir))

    # configuration and DVC
    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def dvc_lock(self) -> Path:
        return self.root / "dvc.lock"

    @property
    def training_lock(self) -> Path:
        """Held by a training run for its whole length (DVC's own tmp folder, git-ignored)."""
        return self.root / ".dvc" / "tmp" / "skintwin-training.lock"

    # stage outputs
    @property
    def data_report(self) -> Path:
        return self.root / "reports" / "validate" / "data_report.json"

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def reference_features(self) -> Path:
        return self.processed / "reference_features.parquet"

    @property
    def split_report(self) -> Path:
        return self.root / "reports" / "preprocess" / "split_report.json"

    @property
    def train_dir(self) -> Path:
        return self.root / "models" / "train"

    @property
    def run_record(self) -> Path:
        return self.train_dir / "run.json"

    @property
    def evaluate_dir(self) -> Path:
        return self.root / "reports" / "evaluate"

    @property
    def evaluated(self) -> Path:
        """Which training run and weights the evaluate stage's figures are of."""
        return self.evaluate_dir / "candidate.json"

    @property
    def metrics(self) -> Path:
        return self.evaluate_dir / "metrics.json"

    @property
    def model_cards(self) -> Path:
        return self.root / "reports" / "model_card"

    @property
    def test_stats(self) -> Path:
        return self.evaluate_dir / "test_stats.npz"

    # operational outputs (outside the DAG)
    @property
    def batches(self) -> Path:
        return self.root / "data" / "batches"

    @property
    def batch_reports(self) -> Path:
        return self.root / "reports" / "batch"

    @property
    def drift_reports(self) -> Path:
        return self.root / "reports" / "drift"

    @property
    def audit_reports(self) -> Path:
        return self.root / "reports" / "audit"

    @property
    def monitoring(self) -> Path:
        return self.root / ".monitoring"

    @property
    def alerts(self) -> Path:
        return self.monitoring / "alerts"

    @property
    def journal(self) -> Path:
        return self.monitoring / "journal"

    @property
    def predictions_db(self) -> Path:
        return self.monitoring / "predictions.db"

    @property
    def model_cache(self) -> Path:
        return self.monitoring / "model_cache"

    @property
    def reference_cache(self) -> Path:
        return self.monitoring / "reference"

    @property
    def performance(self) -> Path:
        return self.monitoring / "performance_metrics.json"

    # tool state
    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlartifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def ops_state(self) -> Path:
        return self.root / ".ops"

    @property
    def prefect_home(self) -> Path:
        return self.root / ".prefect"


def read_run_record(path: Path) -> dict:
    """The train stage's record (`run.json`): the MLflow run id and the weights' path."""
    return read_record(path, ("run_id", "weights"), "run `dvc repro train` first")
