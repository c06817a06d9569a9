"""Evaluation and gate on a really trained model: our figures are `yolo val`'s, and the
gate's error rates hold on its real detections (issue #12)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from skintwin.project import ProjectPaths
from tests.conftest import dvc, make_project

pytestmark = pytest.mark.slow
NAME = "skin-twin-detector"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, base_params: dict):
    """A project trained for real (20 epochs) with a test split of ~25 images per group."""
    import mlflow

    params = copy.deepcopy(base_params)
    params["generate"].update(n_images=400, image_size=128, seed=21)
    params["validate"]["min_images_per_class"] = 3
    params["preprocess"].update(min_test_per_group=25, workers=2)
    params["train"].update(epochs=20, imgsz=128, batch=16, workers=0, plots=False)
    params["evaluate"].update(imgsz=128, bootstrap=300)
    params["promote"].update(floor=0.0, bootstrap=300)
    root = make_project(tmp_path_factory.mktemp("evaluation") / "project", params)
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    dvc("repro", cwd=root)
    yield ProjectPaths(root)
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old
    mlflow.set_tracking_uri(old or "")


def test_our_figures_are_yolo_val_on_the_test_split(trained: ProjectPaths) -> None:
    from ultralytics import YOLO

    from skintwin.params import load_params
    from skintwin.training.evaluation import Evaluation

    ours = Evaluation.read(trained.metrics, trained.test_stats)
    p = load_params(trained.params).evaluate
    theirs = YOLO(str(trained.train_dir / "weights/best.pt")).val(
        data=str(trained.processed / "data.yaml"),
        split="test",
        conf=p.conf,
        iou=p.iou,
        imgsz=p.imgsz,
        plots=False,
        verbose=False,
        project=str(trained.root / "runs"),
    )
    print(f"ours {ours.overall['mAP50']} vs yolo val {theirs.box.map50}")
    assert ours.overall["mAP50"] > 0.2  # a trained model: the comparison means something
    assert ours.overall["mAP50"] == pytest.approx(theirs.box.map50, abs=0.005)
    assert ours.overall["mAP50-95"] == pytest.approx(theirs.box.map, abs=0.005)
    for k, c in enumerate(theirs.box.ap_class_index):
        name = theirs.names[int(c)]
        assert ours.per_class[name]["mAP50"] == pytest.approx(theirs.box.ap50[k], abs=0.005)
        assert ours.per_class[name]["mAP50-95"] == pytest.approx(theirs.box.ap[k], abs=0.005)
    o = ours.overall
    assert o["mAP50_lo"] <= o["mAP50"] <= o["mAP50_hi"]
    assert sum(g["images"] for g in ours.per_group.values()) == o["images"]
    assert all(g["images"] >= 25 for g in ours.per_group.values())


def test_the_gate_errs_rarely_on_real_detections(trained: ProjectPaths, tmp_path: Path) -> None:
    """Equivalent re-draws and a third of the dark group's true positives lost, on the
    model's detections over 540 labelled images (90 per tone group)."""
    from skintwin.ops.gatesim import above, labelled_detections
    from skintwin.params import load_params
    from skintwin.registry.simulation import gate_rates

    params = load_params(trained.params)
    weights = trained.train_dir / "weights/best.pt"
    stats, groups, names = labelled_detections(weights, params, 540, 5, tmp_path)
    promote = params.promote.model_copy(update={"bootstrap": 200})
    r = gate_rates(above(stats, 0.01), groups, names, promote, reps=40, sigma=1.5)
    print(r)
    assert r.equivalent_not_blocked >= 38  # ≥ 95 %
    assert r.equivalent_not_promoted >= 36  # ≥ 90 %
    assert r.degraded_blocked >= 36  # ≥ 90 %


def test_lineage_and_the_version_show_intervals_and_group_verdicts(
    trained: ProjectPaths, capsys
) -> None:
    from skintwin.ops.cli import main as skintwin
    from skintwin.registry import promotion

    first = promotion.gate(trained, promotion.register(trained))
    assert first["promote"] is True  # the first model: the floor only
    again = promotion.register_external(trained, trained.train_dir / "weights/best.pt")
    decision = again["decision"]  # the same weights, compared on the same images
    assert decision["promote"] is False and decision["overall"]["delta"] == 0
    assert set(decision["groups"]) == {
        "very_light",
        "light",
        "intermediate",
        "tan",
        "brown",
        "dark",
    }
    assert all(g["verdict"] and g["rule"] for g in decision["groups"].values())
    capsys.readouterr()
    argv = ["--project-dir", str(trained.root), "lineage", "--version", again["version"]]
    assert skintwin(argv) == 0
    card = capsys.readouterr().out
    assert "test       : mAP50=" in card and "CI" in card
    dark = next(line for line in card.splitlines() if line.strip().startswith("dark"))
    assert "[" in dark and ("regression" in dark or "insufficient" in dark), card


def test_a_champion_that_cannot_be_evaluated_moves_nothing(trained: ProjectPaths) -> None:
    """Nothing moves, and the decision is not final: gated again (the flow run again, or
    `skintwin promote`), the candidate is compared once the champion can be measured. A
    failed download made it a lasting "rejected" until a human approved it."""
    import mlflow

    from skintwin.registry import client, promotion

    good = client.alias_version(NAME, client.CHAMPION).version
    garbage = trained.root / "broken.pt"
    garbage.write_bytes(b"not a model")
    with mlflow.start_run() as run:
        pass
    broken = client.log_and_register(garbage, run.info.run_id, NAME, {})
    client.client().set_registered_model_alias(NAME, client.CHAMPION, broken)
    decision = promotion.register_external(trained, trained.train_dir / "weights/best.pt")
    assert decision["decision"]["promote"] is False
    assert "could not be evaluated" in decision["decision"]["reasons"][0]
    assert str(client.alias_version(NAME, client.CHAMPION).version) == broken
    version = client.get_version(NAME, decision["version"])
    assert version.tags["gate.decision"] == "rejected"

    client.client().set_registered_model_alias(NAME, client.CHAMPION, good)  # measurable again
    tags = version.tags  # what registering the same run again returns
    again = {"version": version.version, "new": False, "decision": tags["gate.decision"],
             "rule": tags["gate.rule"]}  # fmt: skip
    compared = promotion.gate(trained, again)
    assert not compared["repeat"] and compared["champion"] is not None
    assert compared["overall"]["delta"] == 0  # the same weights as the champion, compared
    tags = client.get_version(NAME, version.version).tags
    assert tags["gate.rule"] == "superior" and tags["gate.compared_to"] == str(good)
    assert "could not be evaluated" not in tags["gate.reasons"]
    settled = {**again, "decision": tags["gate.decision"], "rule": tags["gate.rule"]}
    assert promotion.gate(trained, settled)["repeat"]  # a comparison made is final


def test_a_labelled_audit_measures_the_champion_and_alarms_on_a_true_fall(
    trained: ProjectPaths, prefect_api, tmp_path: Path, capsys
) -> None:
    """Labels come back for production photos: the audit gives each slice's true figures
    beside the test figures and the label-free estimate of the same photos; a batch the
    model really does worse on raises an alert; a bad label line stops it, writing nothing."""
    import json
    import shutil

    from PIL import Image

    from skintwin.monitoring import anchor
    from skintwin.monitoring.monitor import ModelMonitor
    from skintwin.ops.cli import main as skintwin
    from skintwin.params import load_params
    from skintwin.registry import client, promotion
    from skintwin.steps.generate import run_generate

    version = str(promotion.register(trained)["version"])
    client.client().set_registered_model_alias(NAME, client.CHAMPION, version)
    gen = load_params(trained.params).generate
    for name, shift, seed in (("same", "none", 41), ("tiny", "resolution-tiny", 42)):
        run_generate(tmp_path / name, gen.model_copy(update={"n_images": 120, "seed": seed}),
                     shift=shift, workers=1)  # fmt: skip

    def audit(name: str, *extra: str) -> dict:
        argv = ["--project-dir", str(trained.root), "audit", "--images", str(tmp_path / name)]
        assert skintwin([*argv, *extra]) == 0
        folder = max(trained.audit_reports.glob(f"*-{name}"))
        assert (folder / "audit.md").is_file()
        return json.loads((folder / "audit.json").read_text())

    same = audit("same", "--min-images", "15")
    assert str(same["model"]["version"]) == str(version) and same["images"] == 120
    assert same["estimate_available"] and len(same["slices"]) > 1  # all, and tone groups
    whole = same["slices"]["all"]
    for figure in ("mAP50", "recall"):
        true = whole["true"][figure]
        assert true["lo"] <= true["value"] <= true["hi"] and true["hi"] - true["lo"] > 0
        assert abs(whole["estimate_error"][figure]) < 0.15, whole
    assert not [f for f in same["falls"] if f["slice"] == "all" and f["sure"]], same["falls"]
    kept = anchor.latest_audit(ModelMonitor(project_dir=trained.root).store, NAME, version, 0)
    assert kept and kept["subject"] == "same" and "all" in kept["slices"]  # it anchors later

    tiny = audit("tiny")
    fell = {f["figure"]: f for f in tiny["falls"] if f["slice"] == "all"}
    assert fell and all(f["fall"] > 0.05 for f in fell.values()), tiny["slices"]["all"]
    alerts = [json.loads(p.read_text()) for p in trained.alerts.glob("*performance_audit*")]
    assert [a["severity"] for a in alerts if a["key"] == "performance_audit:tiny"] == ["critical"]

    before = sorted(trained.audit_reports.iterdir())
    label = next((tmp_path / "same/labels").glob("*.txt"))
    label.write_text("0 0.5 0.5 0.2\n")  # four columns
    argv = ["--project-dir", str(trained.root), "audit", "--images", str(tmp_path / "same")]
    assert skintwin(argv) != 0
    assert sorted(trained.audit_reports.iterdir()) == before  # nothing written

    # a photo the validator passes over (a side under 10 px) would leave every slice a photo
    # short of what the report says it measured: it fails by name instead
    few = tmp_path / "few"
    for part in ("images", "labels"):
        (few / part).mkdir(parents=True)
    for image in sorted((tmp_path / "tiny/images").iterdir())[:12]:
        shutil.copy2(image, few / "images" / image.name)
        label = tmp_path / "tiny/labels" / f"{image.stem}.txt"
        if label.is_file():
            shutil.copy2(label, few / "labels" / label.name)
    Image.new("RGB", (200, 8), (180, 140, 120)).save(few / "images/sliver.png")
    capsys.readouterr()
    argv = ["--project-dir", str(trained.root), "audit", "--images", str(few)]
    assert skintwin([*argv, "--min-images", "10"]) != 0
    assert "sliver.png" in capsys.readouterr().err
    assert sorted(trained.audit_reports.iterdir()) == before
