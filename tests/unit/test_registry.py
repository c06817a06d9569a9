"""Registry rules decided without training: metric names, the "already decided" branch,
the lineage card, pinned requirements. Real MLflow on a temporary SQLite file."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from skintwin.project import ProjectPaths
from skintwin.registry import client, promotion
from skintwin.registry.lineage import lineage_card
from skintwin.training.evaluation import Evaluation
from tests.conftest import REPO

NAME = "skin-twin-detector"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return client.client()


def _version(registry, tags: dict[str, str], aliases: tuple[str, ...] = ()) -> str:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # created by an earlier call
        registry.create_registered_model(NAME)
    source = Path(registry.tracking_uri.removeprefix("sqlite:///")).parent.as_uri()
    mv = registry.create_model_version(NAME, source=source, tags=tags)
    for alias in aliases:
        registry.set_registered_model_alias(NAME, alias, mv.version)
    return mv.version


def test_one_metric_name_scheme() -> None:
    e = Evaluation(
        {"images": 10, "mAP50": 0.9, "mAP50-95": 0.6},
        {"acne": {"instances": 4, "mAP50": 0.8}},
        {"dark": {"images": 5, "mAP50": 0.7}},
    )
    assert e.flat() == {
        "test.images": 10.0,
        "test.mAP50": 0.9,
        "test.mAP50-95": 0.6,
        "test.class.acne.instances": 4.0,
        "test.class.acne.mAP50": 0.8,
        "test.group.dark.images": 5.0,
        "test.group.dark.mAP50": 0.7,
    }
    assert Evaluation.from_metrics_doc(json.loads(json.dumps(e.metrics_doc()))) == e


def test_already_decided_candidate_is_not_gated_again(registry) -> None:
    v = _version(registry, {"gate.decision": "rejected"})
    candidate = {"version": v, "new": False, "run_id": "r", "decision": "rejected"}
    out = promotion.gate(ProjectPaths(REPO), candidate | {"rule": "superior"})
    assert out == {
        "promote": False,
        "version": v,
        "reasons": ["already decided: rejected"],
        "rule": "superior",  # the summary said "floor", whatever rule decided
        "repeat": True,
    }
    assert client.alias_version(NAME, client.CHAMPION) is None  # nothing moved
    registry.set_registered_model_alias(NAME, client.CHAMPION, v)  # a human's approval
    again = promotion.gate(ProjectPaths(REPO), candidate)
    assert again["promote"] is False and again["rule"] == "-"
    assert "champion now by a human's approval" in again["reasons"][-1]


def test_lineage_card_shows_version_decision_and_origin(registry) -> None:
    tags = {
        "gate.decision": "promoted",
        "gate.rule": "superior",
        "gate.reasons": "mAP50 0.9 reaches the floor 0.5",
        "gate.delta": "+0.0400 (CI +0.0100 to +0.0700)",
        "gate.group.dark": "no regression beyond tolerance: n = 30, Δ +0.010",
        "metric.test.mAP50": "0.9",
        "metric.test.mAP50_lo": "0.85",
        "metric.test.mAP50_hi": "0.93",
        "metric.test.group.dark.images": "30",
        "metric.test.group.dark.mAP50": "0.7",
        "metric.test.group.dark.mAP50_lo": "0.6",
        "metric.test.group.dark.mAP50_hi": "0.8",
        "lineage.git_commit": "abc123",
        "lineage.git_dirty": "False",
        "lineage.dvc_data_md5": "d41d8",
        "lineage.prefect_flow_run_id": "flow-1",
        "lineage.params": json.dumps({"train": {"epochs": 30}, "data": {"path": "data/demo"}}),
    }
    v = _version(registry, tags, aliases=("champion",))
    card = lineage_card(NAME)
    assert card.startswith(f"{NAME} v{v}  aliases: champion")
    assert "promoted (rule superior) — mAP50 0.9 reaches the floor 0.5" in card
    assert "+0.0400 (CI +0.0100 to +0.0700)" in card
    assert "test       : mAP50=0.900 [0.850, 0.930]\n" in card  # with its interval
    dark = next(line for line in card.splitlines() if line.strip().startswith("dark"))
    assert "n=30" in dark and "0.700 [0.600, 0.800]" in dark and "no regression" in dark
    assert "abc123" in card and "flow-1" in card and '{"epochs": 30}' in card
    assert "data.path  : data/demo" in card
    assert "approved" not in card
    # a version a human made champion over the gate says who and why (it said "rejected")
    registry.set_model_version_tag(NAME, v, "gate.approved", "cli user ana: read it")
    assert "  approved   : cli user ana: read it\n" in lineage_card(NAME)


def test_lineage_names_neither_a_reasons_pieces_nor_anothers_model(registry) -> None:
    """A group's reason holds "; " itself: split on it, its pieces read as overall reasons.
    Weights trained elsewhere: the card named the workspace's model hash and epochs."""
    import mlflow

    _version(registry, {})  # the registered model
    with mlflow.start_run() as run:
        pass
    source = Path(registry.tracking_uri.removeprefix("sqlite:///")).parent.as_uri()
    tags = {"lineage.source_weights": "partner.pt", "lineage.dvc_model_md5": "55399127.dir",
            "lineage.params": json.dumps({"train": {"epochs": 30}})}  # fmt: skip
    v = registry.create_model_version(NAME, source, run.info.run_id, tags=tags).version
    record = {
        "reasons": ["mAP50 0.89 reaches the floor 0.5", "mAP50 +0.001: not worse",
                    "tone group 'dark': no detectable regression — n = 40; a drop ≥ 0.25 "
                    "would have shown"],
        "rule": "non_inferior",
    }  # fmt: skip
    client.record_decision(NAME, v, record, promote=False)
    card = lineage_card(NAME, version=v)
    decision = next(line for line in card.splitlines() if "decision" in line)
    assert decision.endswith("— mAP50 0.89 reaches the floor 0.5; mAP50 +0.001: not worse")
    assert "55399127" not in card and '"epochs": 30' not in card
    assert "trained elsewhere (partner.pt)" in card


def test_lineage_of_a_missing_version_is_a_clear_error(registry) -> None:
    from skintwin.errors import SkinTwinError

    _version(registry, {})
    with pytest.raises(SkinTwinError, match="has no version 999"):
        lineage_card(NAME, version="999")
    with pytest.raises(SkinTwinError, match="no version with alias 'champion'"):
        lineage_card(NAME)


def test_requirements_are_pinned() -> None:
    pins = client.pinned_requirements()
    assert any(p.startswith("ultralytics==") for p in pins)
    assert all("==" in p for p in pins if not p.startswith("opencv"))


def test_each_project_gets_its_own_embedded_registry_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow copies a tracking URI into the environment; the embedded default of one
    project must not become the 'user's choice' for the next, or for the stages it starts."""
    import mlflow

    from skintwin.training.tracking import configure_tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first, second = tmp_path / "a", tmp_path / "b"
    try:
        assert configure_tracking(first) == f"sqlite:///{first.resolve() / 'mlflow.db'}"
        assert configure_tracking(second) == f"sqlite:///{second.resolve() / 'mlflow.db'}"
        assert mlflow.get_tracking_uri() == f"sqlite:///{second.resolve() / 'mlflow.db'}"
        assert "MLFLOW_TRACKING_URI" not in os.environ
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + str(tmp_path / "chosen.db"))
        assert configure_tracking(first).endswith("chosen.db")  # the user's choice wins
    finally:
        mlflow.set_tracking_uri(None)
