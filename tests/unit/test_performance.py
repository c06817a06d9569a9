"""A production window's label-free estimate, from store rows: quiet on a window like the
test split, a fall named by slice and figure on a degraded one, honest when it cannot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from skintwin.monitoring.performance import (
    corroborate,
    estimate_line,
    estimate_markdown,
    estimate_window,
    falls_line,
    write,
)
from skintwin.params import parse_params
from skintwin.training.estimator import Estimator
from skintwin.training.truth import FIGURES
from tests.conftest import REPO
from tests.unit.test_estimator import NAMES, simulate

PARAMS = parse_params(__import__("yaml").safe_load((REPO / "params.yaml").read_text())).monitor


def _doc() -> dict:
    estimator = Estimator.fit(simulate(0, n=400), NAMES, floor=0.25)
    test = estimator.estimate_stats(simulate(1), 0.25, n_boot=50)
    baseline = {"all": {"images": 200, "estimate": {f: test[f] for f in FIGURES}}}
    return {"available": True, "operating_conf": 0.25, "estimator": estimator.to_dict(),
            "test": baseline}  # fmt: skip


def _window(stats, groups=("dark",)) -> pd.DataFrame:
    """Store rows of these detections (≥ 0.25, as production logs them)."""
    rows = []
    for i in range(len(stats)):
        mine = (stats.det_image == i) & (stats.conf >= 0.25)
        dets = [{"class_name": NAMES[c], "confidence": float(p), "box": [0, 0, 1, 1]}
                for c, p in zip(stats.pred_cls[mine], stats.conf[mine], strict=True)]  # fmt: skip
        rows.append({"detections": dets, "tone_group": groups[i % len(groups)]})
    return pd.DataFrame(rows)


def test_a_window_like_the_test_split_has_no_fall_and_a_degraded_one_does() -> None:
    doc = _doc()
    same = estimate_window(doc, _window(simulate(5)), PARAMS)
    assert same["available"] and same["falls"] == [], same["falls"]
    assert set(same["slices"]) == {"all", "dark"}  # 200 images of one group: its own slice
    worse = estimate_window(doc, _window(simulate(5, tp_conf=(1.5, 3))), PARAMS)
    fallen = {(f["slice"], f["figure"]) for f in worse["falls"]}
    assert ("all", "recall") in fallen and ("dark", "recall") in fallen
    assert "recall on all" in falls_line(worse)
    assert estimate_line(worse).startswith("estimated without labels: mAP50 ")
    assert "not available (too weak)" in estimate_line({"available": False, "reason": "too weak"})


# a drift check that compared everything and saw nothing move (`check_drift`'s keys read)
CALM = {"moved": {}, "embedding": {"available": True}, "within_groups": {"tests": 5}}


def test_a_fall_where_nothing_moved_is_reported_but_not_alerted() -> None:
    worse = estimate_window(_doc(), _window(simulate(5, tp_conf=(1.5, 3))), PARAMS)
    assert worse["falls"]
    calm = corroborate(worse, CALM, PARAMS)
    assert calm["falls"] == [] and calm["unconfirmed"] == worse["falls"]
    assert "not alerted" in estimate_markdown(calm)
    assert "recall on all" in falls_line(calm, "unconfirmed")
    moved = {**CALM, "moved": {"appearance": ["blur"]}}
    assert corroborate(worse, moved, PARAMS) is worse  # a move: it stands
    alone = PARAMS.model_copy(update={"estimate_needs_drift": False})
    assert corroborate(worse, CALM, alone) is worse
    assert "not alerted" not in estimate_markdown(worse)


@pytest.mark.parametrize(
    ("blind", "named"),
    [
        ({"embedding": {"available": False, "reason": "embeddings: reference 0"}}, "embedding"),
        ({"within_groups": {"tests": 0}}, "within tone groups"),
    ],
)
def test_a_fall_stands_where_the_drift_check_could_not_look(blind: dict, named: str) -> None:
    """Silence from a check that could not compare the embeddings, or the features within
    tone groups, proves nothing: the fall is alerted, and the report says what was not
    compared."""
    worse = estimate_window(_doc(), _window(simulate(5, tp_conf=(1.5, 3))), PARAMS)
    kept = corroborate(worse, {**CALM, **blind}, PARAMS)
    assert kept["falls"] == worse["falls"] and not kept.get("unconfirmed")
    assert any(named in u for u in kept["unchecked"])
    assert named in estimate_markdown(kept) and "not alerted" not in estimate_markdown(kept)


def test_no_estimator_or_too_high_a_floor_says_why() -> None:
    frame = _window(simulate(5))
    none = estimate_window({"available": False, "reason": "too weak"}, frame, PARAMS)
    assert none == {"available": False, "reason": "too weak", "falls": []}
    strict = PARAMS.model_copy(update={"conf": 0.5})  # the store would lack 0.25–0.5
    assert "fewer detections" in estimate_window(_doc(), frame, strict)["reason"]
    lenient = PARAMS.model_copy(update={"conf": 0.1})  # below the floor: ignored
    assert estimate_window(_doc(), frame, lenient)["available"]


def test_the_estimate_is_a_panel_of_the_drift_report(tmp_path: Path) -> None:
    (tmp_path / "drift_report.html").write_text("<html><body><div id='evidently'></div></body>")
    estimate = estimate_window(_doc(), _window(simulate(5)), PARAMS)
    write(estimate, tmp_path, "skin-twin-detector", "3")
    page = (tmp_path / "drift_report.html").read_text()
    assert page.index('id="performance-estimate"') < page.index("evidently")
    assert "<table>" in page and "skin-twin-detector v3" in page
    assert "| class (whole window) |" in estimate_markdown(estimate)
    assert (tmp_path / "performance_estimate.json").is_file()


def test_photos_without_a_tone_group_count_in_the_whole_window_only() -> None:
    """Their group read "None", a slice of its own held against the whole test split."""
    window = _window(simulate(5), groups=(None,))
    assert list(estimate_window(_doc(), window, PARAMS)["slices"]) == ["all"]
