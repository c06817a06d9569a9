"""Real `dvc repro` in a temporary git repo: skipping, targeted re-runs, metrics, experiments."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import dvc, run
from tests.headless import drawn, offline_dom

# dvc.yaml's Vega plots: the div DVC writes for each, and the title it must show
VEGA_PLOTS = {
    "reports_evaluate_pr_curve_csv": "Test PR curve (IoU 0.5)",
    "reports_evaluate_confusion_csv": "Test confusion matrix (conf 0.25)",
    "models_train_results_csv": "Training curves",
}


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


def _rendered(dom: str) -> dict[str, bool]:
    """Per Vega plot: did the browser draw it (an SVG with marks and the plot's title)?"""
    shown, found = drawn(dom), {}
    for div, title in VEGA_PLOTS.items():
        part = shown.split(f'<div id="{div}"', 1)[-1].split('<div id="', 1)[0]
        found[div] = f'<div id="{div}"' in shown and 'class="marks"' in part and title in part
    return found


def _plots_render_offline(project: Path) -> None:
    """`dvc plots show` with the shipped template draws every Vega plot with the network cut
    off; DVC's own CDN page, under the same conditions, draws none (the failure it fixes)."""
    from skintwin.ops.plots_page import install_template

    install_template(project)
    page = Path(dvc("plots", "show", cwd=project).stdout.strip().removeprefix("file://"))
    assert page == project / "dvc_plots/index.html"
    assert "cdn.jsdelivr.net" not in page.read_text()
    shot = project / "reports/plots_offline.png"
    assert _rendered(offline_dom(page, screenshot=shot)) == dict.fromkeys(VEGA_PLOTS, True)
    assert shot.stat().st_size > 10_000  # a picture to look at when this fails
    dvc("config", "--unset", "plots.html_template", cwd=project)
    dvc("plots", "show", "-o", "cdn_plots", cwd=project)
    assert "cdn.jsdelivr.net" in (project / "cdn_plots/index.html").read_text()
    cdn = _rendered(offline_dom(project / "cdn_plots/index.html"))
    assert cdn == dict.fromkeys(VEGA_PLOTS, False)


@pytest.mark.slow
def test_full_dag_epochs_change_reruns_train_and_evaluate_only(project: Path) -> None:
    first = dvc("repro", cwd=project)
    assert _ran(first.stdout) == ["generate", "validate", "preprocess", "train", "evaluate"]
    metrics = yaml.safe_load((project / "reports/evaluate/metrics.json").read_text())
    assert set(metrics) == {"test"}
    test = metrics["test"]
    assert {"images", "mAP50", "mAP50-95", "precision", "recall", "class", "group"} <= set(test)
    assert sum(g["images"] for g in test["group"].values()) == test["images"]
    # the label-free estimator, fitted on the val split (or why not, for a 1-epoch model)
    estimator = json.loads((project / "reports/evaluate/estimator.json").read_text())
    assert estimator["available"] or "validation detections" in estimator["reason"]
    _plots_render_offline(project)
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
