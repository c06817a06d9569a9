"""Every photo of a dataset is read, once, with its own labels; what the layout leaves
unread, or a label file YOLO would never find, is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from skintwin.data.dataset import discover
from skintwin.errors import SkinTwinError
from skintwin.params import load_params
from skintwin.steps.preprocess import run_preprocess
from skintwin.steps.validate import run_validate
from tests.conftest import REPO, write_dataset, write_image

PARAMS = load_params(REPO / "params.yaml")
FEW = PARAMS.validate_.model_copy(update={"min_images_per_class": 1})


def _problems(root: Path) -> list[dict]:
    return run_validate(discover(root), FEW, 1)["problems"]


def _labelled(root: Path, name: str, seed: int, lines: list[str]) -> None:
    write_image(root / "images" / name, seed)
    label = (root / "labels" / name).with_suffix(".txt")
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text("\n".join(lines) + "\n")


def test_two_photos_of_one_stem_in_sub_folders_keep_their_own_lesions(tmp_path: Path) -> None:
    """`clinic_a/a.jpg` and `clinic_b/a.png` were written as `a.jpg` and `a.png` beside
    each other, one label file for both: one photo trained with the other's lesions."""
    root = write_dataset(tmp_path / "ds", n=6, split_dirs=("train", "valid", "test"))
    train = root / "train"  # both in one split (its own, kept)
    _labelled(train, "clinic_a/a.jpg", 101, ["0 0.2 0.2 0.1 0.1", "1 0.7 0.7 0.1 0.1"])
    _labelled(train, "clinic_b/a.png", 102, ["1 0.5 0.5 0.2 0.2"])
    assert not [p for p in _problems(root) if p["severity"] == "error"]
    out = tmp_path / "out"
    run_preprocess(discover(root), PARAMS.preprocess.model_copy(update={"keep_splits": True}), out)
    table = pd.read_parquet(out / "reference_features.parquet")
    stems = [Path(f).with_suffix("").as_posix() for f in table.file]
    assert len(set(stems)) == len(stems) == 20
    for row in table.itertuples():
        label = out / Path(row.file.replace("images/", "labels/", 1)).with_suffix(".txt")
        assert len(label.read_text().splitlines()) == row.n_labels, row.file


def test_one_photo_twice_with_other_labels_is_an_error_naming_both(tmp_path: Path) -> None:
    """Byte-identical photos: preprocess keeps one. With other labels, which lesions are
    the photo's? It was a warning, and the kept copy's labels won without a word."""
    root = write_dataset(tmp_path / "ds", n=6)
    _labelled(root, "p010.jpg", 7, ["0 0.2 0.2 0.1 0.1", "1 0.7 0.7 0.1 0.1"])
    shutil.copy(root / "images/p010.jpg", root / "images/IMG_0010.jpg")
    (root / "labels/IMG_0010.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (wrong,) = [p for p in _problems(root) if p["rule"] == "duplicate_image_labels"]
    assert wrong["severity"] == "error" and "p010.jpg" in wrong["file"]
    assert "IMG_0010.jpg" in wrong["message"] and "p010.txt" in wrong["message"]
    with pytest.raises(SkinTwinError, match="other labels"):
        run_preprocess(discover(root), PARAMS.preprocess, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (root / "labels/IMG_0010.txt").write_text((root / "labels/p010.txt").read_text())
    (same,) = [p for p in _problems(root) if p["rule"] == "duplicate_image"]
    assert same["severity"] == "warning" and same["file"].endswith("p010.jpg")


def test_of_two_copies_in_train_and_val_the_curated_val_photo_stays(tmp_path: Path) -> None:
    """With `keep_splits`, the copy in test or val stays (the split that measures the
    model); train's goes. Between train and val, val's went; validate named the other."""
    root = write_dataset(tmp_path / "ds", n=6, split_dirs=("train", "valid", "test"))
    shutil.copy(root / "valid/images/img2.jpg", root / "train/images/copy2.jpg")
    shutil.copy(root / "valid/labels/img2.txt", root / "train/labels/copy2.txt")
    (dup,) = [p for p in _problems(root) if p["rule"] == "duplicate_image"]
    assert dup["file"].endswith("train/images/copy2.jpg")
    keep = PARAMS.preprocess.model_copy(update={"keep_splits": True})
    run_preprocess(discover(root), keep, tmp_path / "out")
    out = tmp_path / "out"
    assert [len(list((out / "images" / s).iterdir())) for s in ("train", "val")] == [6, 6]
    assert not list(out.rglob("copy2.*"))


def test_a_symlinked_sub_folder_is_read(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", n=6)
    elsewhere = tmp_path / "clinic_b"
    for i in range(3):
        _labelled(elsewhere, f"b{i}.jpg", 200 + i, ["0 0.5 0.5 0.2 0.2"])
    (root / "images/clinic_b").symlink_to(elsewhere / "images")
    (root / "labels/clinic_b").symlink_to(elsewhere / "labels")
    (root / "images/loop").symlink_to(root / "images")  # read once, not forever
    report = run_validate(discover(root), FEW, 1)
    assert report["images"] == 9 and report["errors"] == 0


def test_photos_no_split_reads_are_named(tmp_path: Path) -> None:
    """data.yaml declares train and val; a test/images beside them was never read."""
    root = write_dataset(tmp_path / "ds", n=6, split_dirs=("train", "valid", "test"))
    doc = yaml.safe_load((root / "data.yaml").read_text())
    del doc["test"]
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    write_image(root / "train/images/new_batch/n0.jpg", 300)  # inside a split: read
    (unused,) = [p for p in _problems(root) if p["rule"] == "unused_images"]
    assert unused["severity"] == "warning" and unused["file"].endswith("test/images")
    assert unused["message"].startswith("6 image(s) in no split that data.yaml names")


def test_a_label_file_yolo_would_not_find_is_an_error(tmp_path: Path) -> None:
    """`img3.TXT`: YOLO reads `img3.txt`, so the photo trained as a negative."""
    root = write_dataset(tmp_path / "ds", n=6)
    (root / "labels/img3.txt").rename(root / "labels/img3.TXT")
    (wrong,) = [p for p in _problems(root) if p["rule"] == "label_suffix"]
    assert wrong["severity"] == "error" and wrong["file"].endswith("img3.TXT")
    assert "'img3.txt'" in wrong["message"]


@pytest.mark.parametrize(
    ("refused", "message", "accepted", "names"),
    [  # an nc that disagrees with names: which is right? Ultralytics refuses it too
     ("nc: 5\nnames: [acne, mole]\n", r"data.yaml: 'nc: 5' but 'names' lists 2",
      "nc: 2\nnames: [acne, mole]\n", ("acne", "mole")),
     # class names go into metric and tag names (`test.class.<name>.mAP50`): one with
     # brackets passed validate and training, then registration crashed in MLflow
     ("names: ['nevus (benign)', mole]\n", r"class name 'nevus \(benign\)': letters",
      "names: [basal-cell carcinoma, naevus_2]\n", ("basal-cell carcinoma", "naevus_2"))],
)  # fmt: skip
def test_class_names_the_project_cannot_carry_are_refused(
    tmp_path: Path, refused: str, message: str, accepted: str, names: tuple
) -> None:
    root = write_dataset(tmp_path / "ds", n=6)
    (root / "data.yaml").write_text(refused)
    with pytest.raises(SkinTwinError, match=message):
        discover(root)
    (root / "data.yaml").write_text(accepted)
    assert discover(root).names == names
