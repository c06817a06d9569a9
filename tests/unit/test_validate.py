from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skintwin.data.dataset import discover
from skintwin.errors import SkinTwinError
from skintwin.params import ValidateParams
from skintwin.steps.validate import main as validate_main
from skintwin.steps.validate import run_validate
from tests.conftest import write_dataset, write_image

PARAMS = ValidateParams(min_images_per_class=2, max_box_overflow=0.02)


def _validate(root: Path) -> dict:
    return run_validate(discover(root), PARAMS, workers=1)


def _rules(report: dict, severity: str = "error") -> set[str]:
    return {p["rule"] for p in report["problems"] if p["severity"] == severity}


def test_clean_dataset_passes(tmp_path: Path) -> None:
    report = _validate(write_dataset(tmp_path / "d"))
    assert report["errors"] == 0
    assert report["images"] == 6
    assert report["classes"]["acne"] == {"images": 6, "boxes": 6}


# Each defect: how to break a clean dataset, the rule expected, and the line (labels only).
DEFECTS = {
    "column_count": (lambda r, i: _label(r, i, "0 0.5 0.5 0.2"), 1),
    "not_a_number": (lambda r, i: _label(r, i, "0 0.5 x 0.2 0.2"), 1),
    "class_out_of_range": (lambda r, i: _label(r, i, "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2"), 2),
    "coords_out_of_range": (lambda r, i: _label(r, i, "1 1.4 0.5 .2 .2"), 1),
    "zero_size_box": (lambda r, i: _label(r, i, "1 0.5 0.5 0 0.2"), 1),
    "box_outside_image": (lambda r, i: _label(r, i, "1 0.95 0.5 .4 .2"), 1),
    "unreadable_image": (
        lambda r, i: (r / f"images/img{i}.jpg").write_bytes(b"not an image"),
        None,
    ),
    "label_without_image": (lambda r, i: _label(r, f"ghost{i}", "0 .5 .5 .1 .1"), None),
}


def _label(root: Path, i: int | str, text: str) -> None:
    (root / f"labels/img{i}.txt" if isinstance(i, int) else root / f"labels/{i}.txt").write_text(
        text + "\n"
    )


def _truncate(root: Path) -> None:
    data = (root / "images/img2.jpg").read_bytes()
    (root / "images/img2.jpg").write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("rule", sorted(DEFECTS))
def test_each_defect_is_an_error_with_file_and_line(tmp_path: Path, rule: str) -> None:
    root = write_dataset(tmp_path / "d")
    breaker, line = DEFECTS[rule]
    breaker(root, 0)
    report = _validate(root)
    found = [p for p in report["problems"] if p["rule"] == rule]
    assert found and found[0]["severity"] == "error"
    assert Path(found[0]["file"]).name in {"img0.txt", "img0.jpg", "ghost0.txt"}
    assert found[0]["line"] == line


def test_truncated_jpeg_is_unreadable(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d")
    _truncate(root)
    problems = [p for p in _validate(root)["problems"] if p["rule"] == "unreadable_image"]
    assert [Path(p["file"]).name for p in problems] == ["img2.jpg"]


def test_image_without_label_is_background_not_error(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d")
    (root / "labels/img3.txt").unlink()
    report = _validate(root)
    assert report["errors"] == 0
    assert report["background_images"] == 1
    assert "background_images" in _rules(report, "warning")


def test_duplicates_are_warnings(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d")
    (root / "images/copy.jpg").write_bytes((root / "images/img0.jpg").read_bytes())
    (root / "labels/copy.txt").write_text((root / "labels/img0.txt").read_text())
    report = _validate(root)
    assert report["errors"] == 0
    assert len(report["duplicate_groups"]) == 1
    (root / "labels/copy.txt").unlink()  # unlabelled: kept first, its lesions would be lost
    assert "duplicate_image_labels" in _rules(_validate(root))


def test_too_few_images_per_class(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", n=3)
    for i in range(3):
        (root / f"labels/img{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    report = _validate(root)
    assert "too_few_images" in _rules(report)
    assert any("'mole'" in p["message"] for p in report["problems"])


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda r: None, "does not exist"),
        (lambda r: (r.mkdir(), (r / "images").mkdir()), "no data.yaml"),
        (lambda r: (write_dataset(r), (r / "data.yaml").write_text("nc: 2\n")), "'names'"),
        (
            lambda r: (write_dataset(r), (r / "data.yaml").write_text("names: [a, a]\n")),
            "duplicates",
        ),
    ],
)
def test_unusable_dataset_raises(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "d"
    setup(root)
    with pytest.raises(SkinTwinError, match=message):
        discover(root)


def test_empty_dataset_and_empty_split(tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [acne]\n")
    assert "empty_dataset" in _rules(_validate(root))
    exported = write_dataset(tmp_path / "e", split_dirs=("train", "valid"))
    for f in (exported / "valid/images").iterdir():
        f.unlink()
    for f in (exported / "valid/labels").iterdir():
        f.unlink()
    assert "empty_split" in _rules(_validate(exported))


def test_export_layout_with_relative_paths(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "export", split_dirs=("train", "valid", "test"))
    layout = discover(root)
    assert set(layout.splits) == {"train", "val", "test"}
    report = _validate(root)
    assert report["errors"] == 0
    assert report["splits"]["val"]["images"] == 6


def test_every_defect_listed_and_cli_fails(tmp_path: Path, capsys) -> None:
    root = write_dataset(tmp_path / "d", n=12)
    for i, (breaker, _) in enumerate(DEFECTS.values()):
        breaker(root, i + 3)
    _truncate(root)  # img2.jpg
    _label(root, 0, "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2")
    report_path = tmp_path / "out/report.json"
    code = validate_main(
        [
            "--data",
            str(root),
            "--report",
            str(report_path),
            "--params",
            str(_params_file(tmp_path)),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert not report_path.exists()  # nothing half-written
    for rule in DEFECTS:
        assert f"[{rule}]" in err
    assert "img0.txt:2" in err
    assert "img2.jpg" in err


def _params_file(tmp_path: Path) -> Path:
    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["validate"]["min_images_per_class"] = 2
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_write_image_helper_differs(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 1)
    write_image(tmp_path / "b.jpg", 2)
    assert (tmp_path / "a.jpg").read_bytes() != (tmp_path / "b.jpg").read_bytes()
