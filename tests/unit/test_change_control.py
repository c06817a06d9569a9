"""The change-control plan: what may change without a human, decided from lineage tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from skintwin.errors import SkinTwinError
from skintwin.registry.change_control import FILE, Plan, changed_since, violations
from tests.conftest import REPO

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _tags(classes=("acne", "mole", "rash"), **changes: object) -> dict[str, str]:
    params = json.loads(json.dumps(PARAMS))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    return {"lineage.params": json.dumps(params), "lineage.classes": json.dumps(list(classes))}


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan.load(REPO / FILE)


def test_new_data_and_schedule_pass_model_changes_need_a_human(plan: Plan) -> None:
    champion = _tags()
    assert violations(plan, champion, _tags(train__epochs=60, train__lr0=0.001)) == []
    assert violations(plan, champion, _tags(data__path="data/clinic-2026-11")) == []
    assert violations(plan, champion, _tags(train__imgsz=256)) == [
        "train.imgsz 192 → 256 (clause human.input_size)"
    ]
    assert violations(plan, champion, _tags(train__model="yolov8s.yaml")) == [
        "train.model yolov8n.yaml → yolov8s.yaml (clause human.architecture)"
    ]
    (line,) = violations(plan, champion, _tags(classes=("acne", "mole", "rash", "wart")))
    assert line.startswith("classes ") and line.endswith("(clause human.class_list)")
    assert violations(plan, champion, _tags(promote__group_tolerance=0.2)) == [
        "promote.group_tolerance 0.05 → 0.2 (clause human.gate_settings)"
    ]
    # a key no clause names needs a human too
    assert violations(plan, champion, _tags(train__cos_lr=True)) == [
        "train.cos_lr (absent) → True (clause human.unlisted)"
    ]


def test_without_a_plan_or_older_lineage_nothing_is_held(plan: Plan, tmp_path: Path) -> None:
    assert Plan.load(tmp_path / FILE) is None
    assert violations(None, _tags(), _tags(train__imgsz=256)) == []
    older = {"lineage.params": _tags()["lineage.params"]}  # a champion without classes
    assert violations(plan, older, _tags()) == []


def test_lineage_params_cut_at_a_tag_limit_need_a_human(plan: Plan) -> None:
    """Params cut at MLflow 2's tag limit (4,900 characters then) cannot be compared. Cut on
    both sides they read alike, and an architecture change once passed unseen."""
    champion, candidate = _tags(), _tags(train__model="yolo11n.yaml")
    cut_champion = {"lineage.params": champion["lineage.params"][:300]}
    cut_candidate = {"lineage.params": candidate["lineage.params"][:300]}
    assert violations(plan, cut_champion, candidate) == [
        "the champion's lineage params are unreadable (300 characters): nothing can be "
        "compared (needs a human)"
    ]
    both = violations(plan, cut_champion, cut_candidate)
    assert len(both) == 2 and "candidate's lineage params are unreadable" in both[1]
    (line,) = changed_since(plan, cut_candidate, PARAMS)  # one line, not one per key
    assert line.startswith("the candidate's lineage params are unreadable")


def test_a_malformed_plan_names_the_file_and_clause(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text("human:\n  architecture: train.model\n")
    with pytest.raises(SkinTwinError, match=r"change_control.yaml: human.architecture must be"):
        Plan.load(path)
    path.write_text("human: [oops\n")
    with pytest.raises(SkinTwinError, match=r"change_control\.yaml: not valid YAML"):
        Plan.load(path)


def test_gate_settings_loosened_since_registration_need_a_human(plan: Plan) -> None:
    """A version gated again (its first gate could not compare it) is judged by today's
    settings: where they differ from its registration's in a key the plan gives to a human,
    it is held; today's schedule or monitoring settings do not matter to the gate."""
    registered = _tags()
    assert changed_since(plan, registered, PARAMS) == []
    looser = json.loads(json.dumps(PARAMS))
    looser["promote"]["group_tolerance"] = 0.2
    looser["train"]["epochs"] = 99  # not a gate setting
    assert changed_since(plan, registered, looser) == [
        "promote.group_tolerance 0.05 → 0.2 since it was registered (clause human.gate_settings)"
    ]
    assert changed_since(None, registered, looser) == []  # no plan: every change automatic
    assert changed_since(plan, {}, looser) == []  # registered before lineage kept params
