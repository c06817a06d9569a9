"""The model card: built from what the pipeline recorded, validated against the shipped
schema, rendered as Markdown and a standalone HTML page; unknown facts say "unknown"."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from skintwin.errors import SkinTwinError
from skintwin.project import ProjectPaths
from skintwin.registry import card
from skintwin.training.evaluation import Evaluation
from tests.conftest import REPO

EVALUATION = Evaluation.read(REPO / "reports/evaluate/metrics.json")  # the demo's record
RECORD = {
    "promote": True,
    "rule": "superior",
    "metric": "mAP50",
    "reasons": ["mAP50 +0.021 vs champion (95% CI +0.004 to +0.038): better with evidence"],
    "groups": {"dark": {"n": 25, "delta": 0.01, "verdict": "no detectable regression"}},
    "change_control": [],
}
PARAMS = {"train": {"imgsz": 192, "model": "yolov8n.yaml"}, "data": {"path": "data/demo"}}
TAGS = {
    "lineage.params": json.dumps(PARAMS),
    "lineage.classes": json.dumps(["acne", "mole", "rash"]),
    "lineage.git_commit": "abc123",
    "lineage.mlflow_run_id": "run1",
}


@pytest.fixture
def project(tmp_path: Path) -> ProjectPaths:
    shutil.copy(REPO / card.TEXT_FILE, tmp_path / card.TEXT_FILE)
    paths = ProjectPaths(tmp_path)
    paths.split_report.parent.mkdir(parents=True)
    shutil.copy(REPO / "reports/preprocess/split_report.json", paths.split_report)
    paths.reference_features.parent.mkdir(parents=True)
    table = pd.DataFrame({"split": ["train"] * 3 + ["test"] * 2, "ita": [60, 30, -40, 10, 45]})
    table.to_parquet(paths.reference_features)
    charts = tmp_path / "charts"
    charts.mkdir()
    (charts / "per_group.png").write_bytes(b"\x89PNG fake chart")
    return paths


def test_a_card_holds_every_section_and_validates(project: ProjectPaths) -> None:
    doc = card.build(project, "skin-twin-detector", "3", TAGS, EVALUATION, RECORD)
    card.validate(doc)
    assert doc["evaluation"]["overall"]["value"] == EVALUATION.overall["mAP50"]
    assert set(doc["evaluation"]["tone_groups"]) == set(EVALUATION.per_group)
    assert doc["training_data"]["ita"]["train"]["median"] == 30.0
    assert doc["lineage"]["prefect_flow_run_id"] == "unknown"  # never a guess
    page = card.write(doc, project.model_cards / "v3", project.root / "charts")
    text = page.read_text()
    for section in ("Intended use", "Out of scope", "Training data", "By skin-tone group",
                    "Promotion decision", "Known limitations", "Lineage"):  # fmt: skip
        assert f">{section}<" in text, section
    assert "data:image/png;base64," in text and "http" not in text.split("<body>")[1]
    assert json.loads((page.parent / "model_card.json").read_text()) == doc


def test_unknown_data_says_unknown(project: ProjectPaths) -> None:
    project.split_report.unlink()
    doc = card.build(project, "m", "1", {}, EVALUATION, RECORD)
    card.validate(doc)
    assert doc["training_data"] == "unknown" and doc["model"]["classes"] == "unknown"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [(("intended_use",), [], "intended_use"),
     (("evaluation", "overall", "value"), 1.7, "evaluation/overall/value"),
     (("model", "version"), "v3", "model/version"),
     (("decision", "promoted"), "yes", "decision/promoted")],
)  # fmt: skip
def test_a_broken_card_fails_naming_the_field(project, path, value, field) -> None:
    doc = copy.deepcopy(card.build(project, "m", "3", TAGS, EVALUATION, RECORD))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(SkinTwinError, match=f"model card field {field}:"):
        card.validate(doc)
    with pytest.raises(SkinTwinError):
        card.write(doc, project.model_cards / "broken", None)
    assert not (project.model_cards / "broken").exists()  # nothing half-written


def test_the_intended_use_text_is_required(project: ProjectPaths) -> None:
    (project.root / card.TEXT_FILE).write_text("intended_use: []\n")
    with pytest.raises(SkinTwinError, match=r"model_card\.yaml: intended_use must be"):
        card.build(project, "m", "1", TAGS, EVALUATION, RECORD)


def test_a_human_approval_is_added_to_the_card_with_its_own_charts(project) -> None:
    doc = card.build(project, "m", "4", TAGS, EVALUATION, {**RECORD, "promote": False})
    folder = project.model_cards / "v4"
    card.write(doc, folder, project.root / "charts")
    shutil.rmtree(project.root / "charts")  # a later evaluation: the card keeps its copies
    approval = {"by": "cli user ana", "reason": "reviewed", "time": "2026-05-01T10:00:00Z"}
    page = card.record_approval(folder, {**approval, "over": "3"})
    again = json.loads((folder / "model_card.json").read_text())
    assert again["decision"]["promoted"] is False  # the gate's decision stays as recorded
    assert again["decision"]["approval"] == {**approval, "over": "3"}
    text = page.read_text()
    assert "Approved as champion by a human" in text and "cli user ana" in text
    assert "data:image/png;base64," in text
    with pytest.raises(SkinTwinError, match="decision/approval"):
        card.record_approval(folder, {**approval, "reason": "", "over": None})
    assert json.loads((folder / "model_card.json").read_text()) == again  # nothing changed
    assert card.record_approval(project.model_cards / "v9", {**approval, "over": None}) is None


def test_a_persons_words_are_shown_on_the_page_never_run(project) -> None:
    """An approval's reason went into the page as HTML: a <script> in it ran."""
    attack = 'ok <img src=x onerror="alert(1)"> <script>alert(2)</script>'
    record = {**RECORD, "reasons": [f"mAP50 0.9 reaches the floor; {attack}"]}
    doc = card.build(project, "m<b>", "4", TAGS, EVALUATION, record)
    folder = project.model_cards / "v4"
    card.write(doc, folder, None)
    approval = {"by": "<b>ana</b>", "reason": attack, "time": "2026-05-01T10:00:00Z"}
    text = card.record_approval(folder, {**approval, "over": "3"}).read_text()
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in text and "&lt;b&gt;ana" in text


def test_the_cards_group_table_carries_the_gates_bounds(project) -> None:
    """It showed Δ alone; the gate decided on one-sided bounds and a detectable drop."""
    group = {"n": 8, "delta": -0.27537, "lo": -0.33167, "hi": -0.05397, "sdd": 0.263,
             "verdict": "regressed"}  # fmt: skip
    doc = card.build(project, "m", "4", TAGS, EVALUATION, {**RECORD, "groups": {"dark": group}})
    text = card.markdown(doc)
    assert "| dark | 8 | -0.275 | [-0.332, -0.054] | 0.263 | **regressed** |" in text
    first = card.build(project, "m", "1", TAGS, EVALUATION, {**RECORD, "groups": {}})
    assert "Δ vs champion" not in card.markdown(first)  # no champion: no empty table


def test_weights_trained_elsewhere_name_their_own_source_not_the_workspaces(project) -> None:
    tags = {**TAGS, "lineage.source_weights": "partner.pt", "lineage.dvc_model_md5": "55.dir"}
    lineage = card.build(project, "m", "3", tags, EVALUATION, RECORD)["lineage"]
    assert lineage["dvc_model_md5"] == "unknown" and lineage["source_weights"] == "partner.pt"
    assert "train" not in json.loads(lineage["params"])  # the epochs of another model
