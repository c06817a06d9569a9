"""No leakage: near-duplicates (resized, re-encoded, cropped ≤ 10 %, re-lit) are found and kept
in one split; a kept test split stays clean; two splits in one folder are read once."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageEnhance

from skintwin.data.dataset import discover
from skintwin.data.near_duplicates import near_duplicate_groups
from skintwin.params import load_params
from skintwin.steps.preprocess import run_preprocess
from skintwin.steps.validate import run_validate
from tests.conftest import REPO

PARAMS = load_params(REPO / "params.yaml")
KINDS = ("resize", "jpeg", "crop", "bright")


def _variant(im: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    w, h = im.size
    if kind == "resize":
        return im.resize((int(w * rng.uniform(0.5, 0.8)),) * 2)
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(40, 70)))
        return Image.open(io.BytesIO(buf.getvalue()))
    if kind == "crop":  # up to 10 % off the width, less off the height, anywhere
        f = rng.uniform(0.03, 0.10)
        dx, dy = int(w * f), int(h * f * rng.uniform())
        left, top = int(dx * rng.uniform()), int(dy * rng.uniform())
        return im.crop((left, top, w - (dx - left), h - (dy - top)))
    return ImageEnhance.Brightness(im).enhance(float(rng.choice([0.88, 0.92, 1.08, 1.12])))


@pytest.fixture(scope="module")
def with_copies(demo_dataset: Path, tmp_path_factory) -> tuple[Path, list[tuple[str, str]]]:
    """The demo dataset plus 40 near-duplicate copies (10 of each kind), labels kept."""
    root = tmp_path_factory.mktemp("near") / "ds"
    shutil.copytree(demo_dataset, root)
    rng = np.random.default_rng(0)
    originals = sorted((root / "images").iterdir())
    pairs = []
    for k, i in enumerate(rng.choice(len(originals), 40, replace=False)):
        source = originals[i]
        kind = KINDS[k % 4]
        copy = root / "images" / f"copy{k}_{kind}.jpg"
        _variant(Image.open(source).convert("RGB"), kind, rng).save(copy, quality=90)
        label = root / "labels" / f"{source.stem}.txt"
        if label.exists() and kind != "crop":  # a crop moves the boxes: leave it unlabelled
            shutil.copy(label, root / "labels" / f"{copy.stem}.txt")
        pairs.append((source.name, copy.name))
    return root, pairs


def test_injected_near_duplicates_are_found_precisely(with_copies) -> None:
    root, pairs = with_copies
    paths = sorted((root / "images").iterdir())
    groups = near_duplicate_groups(paths)
    found = {(paths[a].name, paths[b].name) for g in groups for a in g for b in g if a != b}
    hits = sum(pair in found for pair in pairs)
    truth = {frozenset(p) for p in pairs}
    right = sum(frozenset(p) in truth for p in found) // 2
    print(f"found {hits} of {len(pairs)}; {right} of {len(found) // 2} reported pairs right")
    assert hits >= 0.95 * len(pairs)
    assert right >= 0.95 * (len(found) // 2)


def test_near_duplicates_never_straddle_splits(with_copies, tmp_path: Path) -> None:
    root, pairs = with_copies
    report = run_preprocess(discover(root), PARAMS.preprocess, tmp_path / "out")
    split_of = {
        Path(f).name: f.split("/")[1]
        for f in (
            p.relative_to(tmp_path / "out").as_posix()
            for p in (tmp_path / "out/images").rglob("*.jpg")
        )
    }
    assert all(split_of[a] == split_of[b] for a, b in pairs)
    assert len(report["near_duplicates"]["groups"]) >= 38
    assert report["splits_per_near_duplicate_group"] == [
        (1, len(report["near_duplicates"]["groups"]))
    ]


def _export(root: Path, demo: Path, test_copy: bool) -> Path:
    """An export layout (train/valid/test folders) of the demo images."""
    images = sorted((demo / "images").iterdir())
    for split, part in (("train", images[:80]), ("valid", images[80:100]), ("test", images[100:])):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for image in part:
            shutil.copy(image, root / split / "images")
            label = demo / "labels" / f"{image.stem}.txt"
            if label.exists():
                shutil.copy(label, root / split / "labels")
    if test_copy:  # a re-encoded copy of a test image sitting in train: a leak
        source = root / "test" / "images" / images[110].name
        _variant(Image.open(source).convert("RGB"), "jpeg", np.random.default_rng(1)).save(
            root / "train" / "images" / "leak.jpg"
        )
    doc = {"names": ["acne", "mole", "rash"], "train": "../train/images"}
    doc |= {"val": "../valid/images", "test": "../test/images"}
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    return root


def test_a_kept_test_split_stays_what_it_is_and_leaks_are_dropped(
    demo_dataset: Path, tmp_path: Path
) -> None:
    root = _export(tmp_path / "export", demo_dataset, test_copy=True)
    keep = PARAMS.preprocess.model_copy(update={"keep_splits": True})
    report = run_preprocess(discover(root), keep, tmp_path / "out")
    test = sorted(p.name for p in (tmp_path / "out/images/test").iterdir())
    assert test == sorted(p.name for p in (root / "test/images").iterdir())
    assert report["near_duplicates"]["dropped_from_training_side"] == ["train/images/leak.jpg"]
    assert not (tmp_path / "out/images/train/leak.jpg").exists()


def test_two_splits_in_one_folder_are_read_once(demo_dataset: Path, tmp_path: Path) -> None:
    """coco128 names one folder for train and val: one warning, no false duplicates."""
    root = tmp_path / "coco-like"
    shutil.copytree(demo_dataset, root)
    doc = yaml.safe_load((root / "data.yaml").read_text())
    (root / "data.yaml").write_text(yaml.safe_dump(doc | {"train": "images", "val": "images"}))
    layout = discover(root)
    assert layout.overlaps == (("val", "train"),)
    report = run_validate(layout, PARAMS.validate_)
    rules = [p["rule"] for p in report["problems"]]
    assert rules.count("overlapping_splits") == 1 and "duplicate_image" not in rules
    assert report["images"] == len(list((demo_dataset / "images").iterdir()))
    out = run_preprocess(layout, PARAMS.preprocess, tmp_path / "out")
    assert out["near_duplicates"]["exact_duplicates_dropped"] == 0


def test_a_corrupt_image_stops_preprocessing_naming_it(demo_dataset: Path, tmp_path: Path) -> None:
    from skintwin.errors import SkinTwinError

    root = tmp_path / "ds"
    shutil.copytree(demo_dataset, root)
    victim = sorted((root / "images").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:200])  # cut short
    with pytest.raises(SkinTwinError, match=victim.name):
        run_preprocess(discover(root), PARAMS.preprocess, tmp_path / "out")
    assert not (tmp_path / "out").exists()
