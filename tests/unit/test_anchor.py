"""The label-free estimate anchored on the version's last labelled audit: each tone group
moved by its own error there beyond the whole sample's, the whole window and the alarm
left as they were; an audit of another version, a stale one or a small group moves
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from skintwin.monitoring.anchor import anchor_since, anchor_window, latest_audit, log_audit
from skintwin.monitoring.performance import estimate_markdown, estimate_window
from skintwin.monitoring.store import PredictionStore
from tests.unit.test_estimator import simulate
from tests.unit.test_performance import PARAMS, _doc, _window

DAY = 86400.0


def _audit(errors: dict, images: dict, version: str = "3", estimate: bool = True) -> dict:
    """An `audit_sample` result whose estimate erred by `errors[slice]` on recall and by
    0.1 on mAP50 in every slice."""

    def figures(value: float) -> dict:
        return {f: {"value": value, "lo": value - 0.04, "hi": value + 0.04}
                for f in ("mAP50", "precision", "recall")}  # fmt: skip

    slices = {
        name: {"images": images[name], "true": figures(0.9),
               "true_sd": {f: 0.02 for f in ("mAP50", "precision", "recall")},
               "estimate_error": {"mAP50": 0.1, "recall": err}}
        for name, err in errors.items()
    }  # fmt: skip
    return {"model": {"name": "skin-twin-detector", "version": version},
            "estimate_available": estimate, "slices": slices}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> PredictionStore:
    return PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")


def _estimate() -> dict:
    """A 400-image window of two tone groups of 200: each its own slice."""
    return estimate_window(_doc(), _window(simulate(5, n=400), ("dark", "light")), PARAMS)


def test_each_group_moves_by_its_own_error_beyond_the_whole_samples(store) -> None:
    errors = {"all": 0.02, "dark": 0.08, "light": 0.0}
    log_audit(store, _audit(errors, {"all": 300, "dark": 150, "light": 150}), "clinic-a", 1e9)
    audit = latest_audit(store, "skin-twin-detector", "3", since=1e9 - DAY)
    assert audit["subject"] == "clinic-a" and audit["slices"]["dark"]["recall"]["error"] == 0.08
    before = _estimate()
    after = anchor_window(before, audit, PARAMS)
    b, a = before["slices"], after["slices"]
    assert a["all"] == b["all"]  # the whole window: never moved
    moved = {g: a[g]["recall"]["value"] - b[g]["recall"]["value"] for g in ("dark", "light")}
    assert moved == pytest.approx({"dark": -0.06, "light": 0.02}, abs=1e-4)
    assert a["dark"]["mAP50"] == b["dark"]["mAP50"]  # anchor_figures: recall only
    for name in ("dark", "light"):
        width = {s: s_[name]["recall"]["hi"] - s_[name]["recall"]["lo"]
                 for s, s_ in (("before", b), ("after", a))}  # fmt: skip
        assert width["after"] > width["before"]  # the audit's own error joins the interval
        assert a[name]["drop"] == b[name]["drop"]  # the baseline moved with the value
    assert after["falls"] == before["falls"]
    assert after["anchored_on"]["slices"] == ["dark", "light"]
    table = estimate_markdown(after)
    assert "‡" in table and "`clinic-a`" in table and "dark recall -0.060" in table
    assert "‡" not in estimate_markdown(before)


def test_another_version_a_stale_audit_or_a_small_group_anchors_nothing(store) -> None:
    now = 2e9
    log_audit(store, _audit({"all": 0.0, "dark": 0.1}, {"all": 300, "dark": 150}, "2"), "old",
              now - 100 * DAY)  # fmt: skip
    since = anchor_since(PARAMS, now)  # anchor_max_age_days: 90
    assert latest_audit(store, "skin-twin-detector", "2", since) is None  # too old
    assert latest_audit(store, "skin-twin-detector", "3", now - 200 * DAY) is None  # not v3
    estimate = _estimate()
    small = _audit({"all": 0.0, "dark": 0.1, "light": 0.1}, {"all": 300, "dark": 99,
                                                            "light": 150})  # fmt: skip
    log_audit(store, small, "a", now - DAY)
    log_audit(store, _audit({"all": 0.0, "dark": 0.1}, {"all": 300, "dark": 150}), "b", now)
    newest = latest_audit(store, "skin-twin-detector", "3", since)
    assert newest["subject"] == "b" and set(newest["slices"]) == {"all", "dark"}
    older = latest_audit(store, "skin-twin-detector", "3", since)
    older = {**older, "slices": {**older["slices"], "dark": {**older["slices"]["dark"],
                                                             "images": 99}}}  # fmt: skip
    assert anchor_window(estimate, older, PARAMS) is estimate  # dark: under 100 photos
    off = PARAMS.model_copy(update={"anchor_figures": []})
    assert anchor_window(estimate, newest, off) is estimate
    assert log_audit(store, _audit({"all": 0.0}, {"all": 300}, estimate=False), "c") == 0


def test_near_the_ends_value_and_baseline_stay_in_range_and_an_unknown_error_moves_nothing(
    store,
) -> None:
    from skintwin.monitoring.anchor import anchor_slice

    figure = {"value": 0.97, "lo": 0.93, "hi": 1.0}
    entry = {
        "images": 150,
        "recall": figure,
        "baseline": {"recall": 0.98},
        "drop": {"recall": 0.01},
    }
    # one shift for both, cut where the first reaches an end: the report's value less its
    # baseline stays the drop the falls name (cut apart, 1.0 and 1.0 read as no fall)
    up = anchor_slice(entry, {"recall": (0.06, 0.01)})
    assert (up["recall"]["value"], up["baseline"]["recall"]) == (0.99, 1.0)
    assert up["drop"] == entry["drop"] and up["anchor"]["recall"]["by"] == 0.02
    low = {**entry, "recall": {"value": 0.03, "lo": 0.0, "hi": 0.07},
           "baseline": {"recall": 0.02}}  # fmt: skip
    down = anchor_slice(low, {"recall": (-0.06, 0.01)})
    assert (down["recall"]["value"], down["baseline"]["recall"]) == (0.01, 0.0)
    # the audit keeps the truth's own sampling error, not one read back from a clipped
    # interval; where the audit could not measure it, that group is not moved
    audit = _audit({"all": 0.0, "dark": 0.1, "light": 0.1}, {"all": 300, "dark": 150,
                                                            "light": 150})  # fmt: skip
    sds = {"all": 0.02, "dark": 0.031, "light": None}
    for name, s in audit["slices"].items():
        s["true_sd"] = {f: sds[name] for f in ("mAP50", "precision", "recall")}
    log_audit(store, audit, "clinic-a", 1e9)
    kept = latest_audit(store, "skin-twin-detector", "3", since=1e9 - DAY)
    assert kept["slices"]["dark"]["recall"]["sd"] == 0.031  # not the clipped interval's
    after = anchor_window(_estimate(), kept, PARAMS)
    assert after["anchored_on"]["slices"] == ["dark"]


def test_an_anchored_fall_reads_the_same_in_the_alert_and_the_report() -> None:
    """The alert said "recall on dark 0.80 (-0.15)", the report 0.900 against 1.0."""
    from skintwin.monitoring.performance import falls_line

    def figure(v: float) -> dict:
        return {"value": v, "lo": v - 0.03, "hi": v + 0.03}

    dark = {"images": 150, "recall": figure(0.80), "baseline": {"recall": 0.95},
            "drop": {"recall": 0.15}}  # fmt: skip
    whole = {"images": 400, "recall": figure(0.93), "baseline": {"recall": 0.93},
             "drop": {"recall": 0.0}}  # fmt: skip
    fell = [{"slice": "dark", "figure": "recall", "drop": 0.15, "now": 0.80}]
    estimate = {"available": True, "falls": fell, "slices": {"all": whole, "dark": dark}}
    errors = {"all": (300, 0.0, 0.02), "dark": (120, -0.10, 0.03)}
    audit = {"subject": "audit", "ts": 1.8e9,
             "slices": {name: {"images": n, "recall": {"error": e, "sd": sd}}
                        for name, (n, e, sd) in errors.items()}}  # fmt: skip
    shown = anchor_window(estimate, audit, PARAMS)
    after = shown["slices"]["dark"]
    assert after["baseline"]["recall"] - after["recall"]["value"] == pytest.approx(0.15)
    assert falls_line(shown) == f"recall on dark {after['recall']['value']:.2f} (−0.15)"
