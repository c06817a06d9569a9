"""A labelled audit's sample is checked before anything runs: a sample that would make a
working model look as if it had fallen to nothing (no labels, no lesion labelled, too few
photos) fails naming the folder or file, and the report says what each slice was compared
with."""

from __future__ import annotations

from pathlib import Path

import pytest

from skintwin.errors import SkinTwinError
from skintwin.monitoring.audit import MIN_IMAGES, audit_falls_line, audit_markdown, sample_images

NAMES = ("acne", "mole", "rash")


def _sample(root: Path, n: int = MIN_IMAGES, labels: bool = True, box: str = "0 0.5 0.5 0.2 0.2"):
    (root / "images").mkdir(parents=True)
    if labels:
        (root / "labels").mkdir()
    for i in range(n):
        (root / "images" / f"p{i}.jpg").write_bytes(b"")
        if labels:
            (root / "labels" / f"p{i}.txt").write_text(f"{box}\n" if box else "")
    return root


def test_a_labelled_sample_lists_its_photos(tmp_path: Path) -> None:
    images = sample_images(_sample(tmp_path), NAMES)
    assert sorted(p.name for p in images) == sorted(f"p{i}.jpg" for i in range(MIN_IMAGES))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("no labels folder", "no labels/ folder"),
        ("no lesion labelled", "no lesion is labelled"),
        ("too few photos", f"need {MIN_IMAGES}"),
    ],
)
def test_a_sample_that_cannot_measure_anything_fails(tmp_path: Path, kind, expected) -> None:
    """Each of these would have read as a model that finds nothing: every photo lesion-free
    (recall 0 with an interval of zero width, a 'sure' critical fall), or halves too small
    to give an interval at all."""
    root = {
        "no labels folder": lambda: _sample(tmp_path, labels=False),
        "no lesion labelled": lambda: _sample(tmp_path, box=""),
        "too few photos": lambda: _sample(tmp_path, n=MIN_IMAGES - 1),
    }[kind]()
    with pytest.raises(SkinTwinError, match=expected) as err:
        sample_images(root, NAMES)
    assert str(root) in str(err.value)


def test_a_bad_label_names_file_and_line_and_an_unreadable_one_names_the_file(tmp_path) -> None:
    root = _sample(tmp_path)
    (root / "labels/p3.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(SkinTwinError, match=r"p3\.txt:2: "):
        sample_images(root, NAMES)
    (root / "labels/p3.txt").write_text("0 0.5 0.5 0.2 0.2\n", encoding="utf-16")
    with pytest.raises(SkinTwinError) as err:
        sample_images(root, NAMES)
    assert "p3.txt" in str(err.value) and ":None" not in str(err.value)


def test_two_photos_sharing_one_label_file_are_refused(tmp_path: Path) -> None:
    """`p0.jpg` and `p0.png` share `p0.txt`: the validate stage refuses that, and the audit
    once scored the second photo against the first's lesions (misses that are not)."""
    root = _sample(tmp_path)
    (root / "images" / "p0.png").write_bytes(b"")
    with pytest.raises(SkinTwinError, match=r"audit: .*p0\.txt: the label file of .*p0\.jpg"):
        sample_images(root, NAMES)


def test_the_report_says_which_groups_were_held_against_the_whole_test_split() -> None:
    def figures(value: float) -> dict:
        return {f: {"value": value, "lo": value - 0.05, "hi": value + 0.05}
                for f in ("mAP50", "precision", "recall")}  # fmt: skip

    test = {"mAP50": 0.9, "precision": 0.9, "recall": 0.9}
    result = {
        "images": 120,
        "model": {"name": "skin-twin-detector", "version": "3"},
        "test_available": True,
        "estimate_available": False,
        "estimate_reason": "monitor.conf 0.5 stores fewer detections than the estimator's 0.25",
        "slices": {
            "all": {"images": 120, "true": figures(0.85), "test": test, "test_slice": "all"},
            "dark": {"images": 40, "true": figures(0.7), "test": test, "test_slice": "all"},
        },
        "falls": [
            dict(
                slice="dark",
                figure="recall",
                images=40,
                fall=0.2,
                now=0.7,
                against="all",
                sure=False,
            )
        ],
        "no_lesions": ["tan"],
    }
    text = audit_markdown(result)
    assert "Compared with the whole test split (too few of their photos in it): dark" in text
    assert "No lesion labelled, nothing measured: tan" in text
    assert "No label-free estimate: monitor.conf 0.5" in text
    assert "No test figures" not in text  # the falls are still measured against the test
    assert audit_falls_line(result) == "recall on dark 0.70 (−0.20)"
