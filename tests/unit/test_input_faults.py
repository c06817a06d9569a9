"""A dataset's odd corners: nothing of it is lost or changed without a word, and what is
wrong with it is named (file, line) before any model is trained or registered."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from skintwin.data.dataset import discover, parse_labels
from skintwin.data.images import ImageError, decode_image
from skintwin.errors import SkinTwinError
from skintwin.params import load_params
from skintwin.project import ProjectPaths
from skintwin.steps.preprocess import run_preprocess
from skintwin.steps.validate import run_validate
from tests.conftest import REPO, write_dataset, write_image

PARAMS = load_params(REPO / "params.yaml")
FEW = PARAMS.validate_.model_copy(update={"min_images_per_class": 1})


def _rules(root: Path) -> list[tuple[str, str]]:
    report = run_validate(discover(root), FEW, 1)
    return [(p["rule"], p["severity"]) for p in report["problems"]]


def test_a_box_just_past_the_edge_is_clipped_and_kept_by_preprocess(tmp_path: Path) -> None:
    """Validate passes it as "clipped"; preprocess once dropped the lesion without a word."""
    root = write_dataset(tmp_path / "ds", n=10)
    (root / "labels" / "img0.txt").write_text("0 0.3 0.5 0.2 0.2\n1 0.91 0.5 0.2 0.2\n")
    assert ("box_outside_image", "warning") in _rules(root)
    (box,) = parse_labels(root / "labels" / "img0.txt", 2, 0.02)[0][1:]
    assert box.cx + box.w / 2 == pytest.approx(1.0) and box.w == pytest.approx(0.19)
    overflow = PARAMS.validate_.max_box_overflow
    run_preprocess(discover(root), PARAMS.preprocess, tmp_path / "out", max_overflow=overflow)
    table = pd.read_parquet(tmp_path / "out" / "reference_features.parquet")
    row = table[table.file.str.endswith("/img0.jpg")].iloc[0]
    assert (row.n_acne, row.n_mole) == (1, 1)
    label = tmp_path / "out" / row.file.replace("images", "labels").replace(".jpg", ".txt")
    assert "1 0.905000 0.500000 0.190000 0.200000" in label.read_text()


def test_preprocess_refuses_a_label_line_validate_would_refuse(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", n=10)
    (root / "labels" / "img3.txt").write_text("0 0.3 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(SkinTwinError, match=r"img3\.txt:2: class id 7"):
        run_preprocess(discover(root), PARAMS.preprocess, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_photos_of_one_name_in_sub_folders_are_all_kept(tmp_path: Path) -> None:
    """`clinic_a/p0.jpg`, `clinic_b/p0.jpg`, `clinic_c/p0.jpg`: the third was once copied
    over the second, its row pointing at a photo that was not its own."""
    root = write_dataset(tmp_path / "ds", n=3)
    for k, clinic in enumerate(("clinic_a", "clinic_b", "clinic_c")):
        for i in range(4):
            write_image(root / "images" / clinic / f"p{i}.jpg", 100 + 10 * k + i)
            (root / "labels" / clinic).mkdir(parents=True, exist_ok=True)
            (root / "labels" / clinic / f"p{i}.txt").write_text("0 0.3 0.5 0.2 0.2\n")
    run_preprocess(discover(root), PARAMS.preprocess, tmp_path / "out")
    table = pd.read_parquet(tmp_path / "out" / "reference_features.parquet")
    on_disk = [p for p in (tmp_path / "out" / "images").rglob("*") if p.is_file()]
    assert len(table) == len(set(table.file)) == len(on_disk) == 15
    assert table.sha256.nunique() == 15


def test_two_photos_sharing_one_label_file_are_an_error(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", n=6)
    write_image(root / "images" / "img0.png", 99)
    report = run_validate(discover(root), FEW, 1)
    shared = [p for p in report["problems"] if p["rule"] == "shared_label"]
    assert report["errors"] and len(shared) == 1
    assert shared[0]["file"].endswith("img0.txt") and "img0.png" in shared[0]["message"]


def test_a_photo_under_ten_pixels_a_side_is_an_error_of_validate(tmp_path: Path) -> None:
    """Ultralytics drops it from training as corrupt; preprocess crashed on it in OpenCV."""
    root = write_dataset(tmp_path / "ds", n=6)
    from PIL import Image

    Image.new("RGB", (1, 40), (200, 150, 120)).save(root / "images" / "thin.png")
    report = run_validate(discover(root), FEW, 1)
    (thin,) = [p for p in report["problems"] if p["file"].endswith("thin.png")]
    assert thin["severity"] == "error" and "a side under 10" in thin["message"]


def test_near_duplicates_of_a_photo_a_pixel_wide_are_looked_for_not_crashed_on(
    tmp_path: Path,
) -> None:
    """Preprocess run without validate once crashed in OpenCV on an empty crop window."""
    from PIL import Image

    from skintwin.data.near_duplicates import near_duplicate_groups

    Image.new("RGB", (1, 30), (200, 150, 120)).save(tmp_path / "thin.png")
    write_image(tmp_path / "a.jpg", 1)
    assert near_duplicate_groups([tmp_path / "thin.png", tmp_path / "a.jpg"]) == []


def test_a_split_inside_the_export_wins_over_a_folder_beside_it(tmp_path: Path) -> None:
    """Roboflow's `train: ../train/images` means the export's own train/images."""
    export = write_dataset(tmp_path / "exports" / "ds", n=4, split_dirs=("train", "valid"))
    write_dataset(tmp_path / "exports", n=2, split_dirs=("train",))  # another export's
    layout = discover(export)
    assert layout.splits["train"] == export / "train" / "images"


def test_every_step_reads_images_under_the_configured_pixel_limit(
    tmp_path: Path, monkeypatch
) -> None:
    write_image(tmp_path / "p.jpg", 1)  # 48 × 48 pixels
    assert decode_image(tmp_path / "p.jpg").shape[:2] == (48, 48)
    monkeypatch.setenv("SKINTWIN_MAX_MEGAPIXELS", "0.001")
    with pytest.raises(ImageError, match="exceeds"):
        decode_image(tmp_path / "p.jpg")
    assert decode_image(tmp_path / "p.jpg", max_pixels=None).shape[:2] == (48, 48)


def test_figures_of_other_weights_are_not_registered(tmp_path: Path) -> None:
    """After `dvc repro train` alone the evaluate stage's figures are the last model's:
    registration refuses them, naming both runs, before anything reaches MLflow."""
    from skintwin.io import file_sha256
    from skintwin.registry.promotion import run_record

    paths = ProjectPaths(tmp_path)
    (paths.train_dir / "weights").mkdir(parents=True)
    (paths.train_dir / "weights" / "best.pt").write_bytes(b"new weights")
    paths.run_record.write_text(json.dumps({"run_id": "new", "weights": "weights/best.pt"}))
    paths.evaluate_dir.mkdir(parents=True)
    with pytest.raises(SkinTwinError, match=r"candidate\.json: missing; run `dvc repro evaluate`"):
        run_record(paths)
    paths.evaluated.write_text(json.dumps({"run_id": "old", "weights_sha256": "0" * 64}))
    with pytest.raises(SkinTwinError, match=r"figures are of run old, not of .*train \(run new\)"):
        run_record(paths)
    weights = paths.train_dir / "weights" / "best.pt"
    paths.evaluated.write_text(
        json.dumps({"run_id": "new", "weights_sha256": file_sha256(weights)})
    )
    assert run_record(paths)["run_id"] == "new"


@pytest.mark.parametrize(
    ("text", "fault"),
    [(None, "missing"), ("{not json", "unreadable"), ('{"run_id": "r"}', "no weights")],
)
def test_a_damaged_run_record_is_named(tmp_path: Path, text: str | None, fault: str) -> None:
    """Evaluate stops with one line naming run.json and what is wrong with it."""
    from skintwin.project import read_run_record
    from skintwin.steps.evaluate import main

    model = tmp_path / "models" / "train"
    model.mkdir(parents=True)
    if text is not None:
        (model / "run.json").write_text(text)
    with pytest.raises(SkinTwinError, match=f"run.json: {fault}"):
        read_run_record(model / "run.json")
    args = ["--data", str(tmp_path), "--model", str(model), "--out", str(tmp_path / "e")]
    assert main([*args, "--params", str(REPO / "params.yaml")]) == 1
    assert not (tmp_path / "e").exists()


_PIPELINE = """
stages:
  preprocess:
    cmd: echo ${preprocess.seed} > processed.txt
    params: [preprocess.seed]
    outs: [processed.txt]
  train:
    cmd: cat processed.txt > model.txt && echo ${train.model} >> model.txt
    deps: [processed.txt]
    params: [train.model]
    outs: [model.txt]
  evaluate:
    cmd: cat processed.txt model.txt > metrics.txt
    deps: [processed.txt, model.txt]
    params: [evaluate.imgsz]
    outs: [metrics.txt]
"""


def test_a_candidate_the_project_no_longer_describes_is_not_registered(tmp_path: Path) -> None:
    """Registration reads lineage (params, data hashes) from the project as it is. After
    `dvc repro`, a param changed by hand, or `dvc repro preprocess` alone, the project no
    longer describes the candidate: `dvc.lock` (a real DVC run) shows where, and
    registration is refused, naming the key or the output."""
    import yaml

    from skintwin.ops.scratch import dvc, run
    from skintwin.registry.lineage import unrecorded_changes
    from skintwin.registry.promotion import run_record

    params = {"preprocess": {"seed": 1}, "train": {"model": "yolo11n.yaml"},
              "evaluate": {"imgsz": 192}}  # fmt: skip
    (tmp_path / "dvc.yaml").write_text(_PIPELINE)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run(["git", "init", "-q"], cwd=tmp_path)
    dvc("init", "-q", cwd=tmp_path)
    dvc("repro", "-q", cwd=tmp_path)
    paths = ProjectPaths(tmp_path)
    assert unrecorded_changes(paths) == []
    params["train"]["model"] = "yolov8n.yaml"  # put back by hand after training
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SkinTwinError, match="changed since the candidate was made") as err:
        run_record(paths)
    assert "train.model: the train stage ran with 'yolo11n.yaml', params.yaml has " in str(
        err.value
    )
    params["train"]["model"], params["preprocess"]["seed"] = "yolo11n.yaml", 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    dvc("repro", "-q", "--single-item", "preprocess", cwd=tmp_path)  # new split, old model
    assert unrecorded_changes(paths) == [
        "processed.txt: the preprocess stage wrote it again after train read it",
        "processed.txt: the preprocess stage wrote it again after evaluate read it",
    ]
    dvc("repro", "-q", cwd=tmp_path)
    assert unrecorded_changes(paths) == []


def test_evaluate_without_its_training_run_stops_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A fresh clone without `mlflow.db`: the evaluate stage cannot log to the run that
    trained the weights. It once wrote its reports, then failed on a raw MLflow traceback."""
    from skintwin.steps import evaluate

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    model = tmp_path / "models" / "train"
    (model / "weights").mkdir(parents=True)
    (model / "weights" / "best.pt").write_bytes(b"weights")
    (model / "run.json").write_text(json.dumps({"run_id": "0" * 32, "weights": "weights/best.pt"}))
    out = tmp_path / "reports" / "evaluate"
    argv = ["--data", "data/processed", "--model", str(model), "--out", str(out)]
    assert evaluate.main(argv) != 0
    err = capsys.readouterr().err
    assert f"run.json: run {'0' * 32} is not in the MLflow store" in err
    assert "Traceback" not in err and not out.exists()


def test_local_weights_to_train_from_must_be_where_dvc_sees_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train.model: weights/start.pt` was only a param string to DVC: the file replaced at
    the same path, `dvc repro` said up to date. Local files must lie in models/pretrained,
    the train stage's dependency; a real `dvc status` sees one there change."""
    import yaml

    from skintwin.model.yolo import build_model
    from skintwin.ops.scratch import dvc, scratch_project

    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "start.pt").write_bytes(b"weights")
    with pytest.raises(SkinTwinError, match=r"'weights/start\.pt' is outside models/pretrained/"):
        build_model("weights/start.pt")
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]
    assert "models/pretrained" in stage["deps"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    root = scratch_project(tmp_path / "project", params)
    start = root / "models" / "pretrained" / "start.pt"
    start.write_bytes(b"weights v1")
    dvc("stage", "add", "-n", "pin", "-d", "models/pretrained", "echo ok", cwd=root)
    dvc("repro", "pin", cwd=root)
    assert "up to date" in dvc("status", "pin", cwd=root).stdout
    start.write_bytes(b"weights v2")  # the same path, new weights
    assert "modified:           models/pretrained" in dvc("status", "pin", cwd=root).stdout
