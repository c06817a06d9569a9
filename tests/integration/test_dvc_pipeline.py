"""Real `dvc repro` in a temporary git repo: skipping, targeted re-runs, metrics, experiments."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import dvc, run


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def _set(project: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_data_stages_skip_when_unchanged_and_rerun_only_what_a_param_touches(
    project: Path,
) -> None:
    first = dvc("repro", "preprocess", cwd=project)
    assert _ran(first.stdout) == ["generate", "validate", "preprocess"]
    assert (project / "data/processed/reference_features.parquet").is_file()
    assert (project / "reports/validate/data_report.json").is_file()
    second = dvc("repro", "preprocess", cwd=project)
    assert _ran(second.stdout) == []
    _set(project, "preprocess", "seed", 4242)
    third = dvc("repro", "preprocess", cwd=project)
    assert _ran(third.stdout) == ["preprocess"]


def test_bad_dataset_stops_the_dag_without_outputs(project: Path) -> None:
    dvc("repro", "generate", cwd=project)
    shutil.copytree(project / "data/demo", project / "data/mine")  # a user's own dataset
    _set(project, "data", "path", "data/mine")
    label = sorted((project / "data/mine/labels").glob("*.txt"))[0]
    label.write_text("9 0.5 0.5 0.1 0.1\n")
    proc = dvc("repro", "preprocess", cwd=project, check=False)
    assert proc.returncode != 0
    assert f"{label.name}:1" in proc.stdout + proc.stderr
    assert not (project / "data/processed").exists()
    assert not (project / "reports/validate/data_report.json").exists()


@pytest.mark.slow
def test_full_dag_epochs_change_reruns_train_and_evaluate_only(project: Path) -> None:
    first = dvc("repro", cwd=project)
    assert _ran(first.stdout) == ["generate", "validate", "preprocess", "train", "evaluate"]
    metrics = yaml.safe_load((project / "reports/evaluate/metrics.json").read_text())
    assert set(metrics) == {"test"}
    test = metrics["test"]
    assert {"images", "mAP50", "mAP50-95", "precision", "recall", "class", "group"} <= set(test)
    assert sum(g["images"] for g in test["group"].values()) == test["images"]
    assert _ran(dvc("repro", cwd=project).stdout) == []
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "baseline"], cwd=project)
    _set(project, "train", "epochs", 3)
    assert _ran(dvc("repro", cwd=project).stdout) == ["train", "evaluate"]
    # tiny models may score the same, so ask for every metric with its HEAD and workspace value
    diff = json.loads(dvc("metrics", "diff", "--all", "--json", cwd=project).stdout)
    rows = diff["reports/evaluate/metrics.json"]
    assert {"old", "new"} <= set(rows["test.mAP50"])
    assert rows["test.images"]["old"] == rows["test.images"]["new"]
    # DVC's names are the names MLflow and the version tags use
    from skintwin.training.evaluation import Evaluation

    flat = Evaluation.read(project / "reports/evaluate/metrics.json").flat()
    assert set(rows) == set(flat)
    exp = dvc("exp", "run", "-S", "train.epochs=2", cwd=project)
    assert "Running stage 'train'" in exp.stdout
    shown = dvc("exp", "show", "--csv", cwd=project).stdout
    assert "train.epochs" in shown.splitlines()[0]
