"""The champion's performance on a production window, estimated without labels: overall and
per tone group, compared with the same estimate on the version's test split.

The estimator (`skintwin.training.estimator`) was fitted on the validation split when the
version was trained and travels with it (`estimator.json`). Comparing the window's estimate
with the estimator's own estimate on the test split, rather than with the true test value,
cancels the estimator's constant bias; `monitor.estimate_drop` is the fall that alerts.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skintwin.io import atomic_write_bytes, atomic_write_json
from skintwin.monitoring.records import json_cell
from skintwin.params import MonitorParams
from skintwin.training.estimator import Estimator
from skintwin.training.truth import FIGURES, slices

WATCHED = ("mAP50", "recall")  # the figures whose fall alerts


def _arrays(current: pd.DataFrame, estimator: Estimator) -> tuple[np.ndarray, ...]:
    """Stored detections as (confidence, class index, image index) arrays."""
    index = {n: k for k, n in enumerate(estimator.names)}
    conf, cls_, image = [], [], []
    for i, dets in enumerate(current["detections"]):
        for d in json_cell(list)(dets):
            if d.get("class_name") in index:
                conf.append(float(d["confidence"]))
                cls_.append(index[d["class_name"]])
                image.append(i)
    return np.array(conf, float), np.array(cls_, int), np.array(image, int)


def fall(baseline: float, now: float) -> float:
    """How far an estimate fell below its baseline, as the alert compares and reports it."""
    return round(baseline - now, 4)


def slice_baseline(tests: dict, name: str) -> dict:
    """The test split's figures a slice is compared with: its own, or (a group too small in
    the test split to have them) the whole split's."""
    return tests.get(name) or tests["all"]


def estimate_window(doc: dict, current: pd.DataFrame, params: MonitorParams) -> dict:
    """{"available", "slices": {name: {"images", figure: {"value", "lo", "hi"},
    "baseline": {figure: value}, "drop": {figure: value}}}, "falls": [...]} for the
    window `current` (store rows), with the version's estimator document `doc`."""
    if not doc.get("available"):
        return {"available": False, "reason": doc.get("reason", "no estimator"), "falls": []}
    floor = doc["estimator"]["floor"]
    if params.conf > floor:  # the store lacks detections the estimator counts on
        reason = f"monitor.conf {params.conf} stores fewer detections than the estimator's {floor}"
        return {"available": False, "reason": reason, "falls": []}
    estimator = Estimator.from_dict(doc["estimator"])
    conf, cls_, image = _arrays(current.reset_index(drop=True), estimator)
    groups = tuple(str(g) for g in current.get("tone_group", pd.Series(["?"] * len(current))))
    out, falls = {}, []
    for name, members in slices(groups, params.estimate_min_images).items():
        keep = np.isin(image, members)
        remap = np.full(len(current), -1)
        remap[members] = np.arange(members.size)
        est = estimator.estimate(
            conf[keep], cls_[keep], remap[image[keep]], int(members.size), doc["operating_conf"]
        )
        base = slice_baseline(doc["test"], name)
        baseline = {f: base["estimate"][f]["value"] for f in FIGURES}
        drop = {f: fall(baseline[f], est[f]["value"]) for f in FIGURES}
        out[name] = {**est, "baseline": baseline, "drop": drop}
        falls += [
            {"slice": name, "figure": f, "drop": drop[f], "now": est[f]["value"]}
            for f in WATCHED
            if drop[f] > params.estimate_drop
        ]
    return {"available": True, "slices": out, "falls": falls}


def corroborate(estimate: dict, drift: dict, params: MonitorParams) -> dict:
    """The estimate with its falls set aside as `unconfirmed` (reported, never alerted)
    when the window's drift check (`drift`: `check_drift`'s result) looked everywhere and
    saw nothing move, and `monitor.estimate_needs_drift` is on. A fixed model's
    performance changes only with what it is shown; a window that shows nothing new but
    fewer detections most likely holds fewer lesions, which no detection can tell from a
    model that misses them, or a chance dip of a small sample (the README's drift table: of
    three calm windows whose estimate fell, two held 4–8% fewer lesions, one a true recall
    0.05 below the test's). Where the check could not look everywhere (`unchecked`), its
    silence proves nothing: the falls stand, and `unchecked` says why."""
    if not (params.estimate_needs_drift and estimate.get("falls")) or drift.get("moved"):
        return estimate
    blind = unchecked(drift)
    if blind:
        return {**estimate, "unchecked": blind}
    return {**estimate, "falls": [], "unconfirmed": estimate["falls"]}


def unchecked(drift: dict) -> list[str]:
    """What a drift result could not compare, beside its column tests: the embeddings (none
    stored on a side, or another version's) and the image features within tone groups (no
    group with `monitor.within_min_images` photos on both sides)."""
    embedding = drift.get("embedding") or {}
    out = []
    if not embedding.get("available"):
        out.append(f"embedding drift ({embedding.get('reason', 'not run')})")
    if not (drift.get("within_groups") or {}).get("tests"):
        out.append("the image features within tone groups (no group large enough on both sides)")
    return out


def unchecked_line(estimate: dict) -> str:
    """e.g. "the drift check could not compare embedding drift (...)"; "" when it compared
    everything (or the estimate's falls were not left to it)."""
    blind = estimate.get("unchecked")
    return f"the drift check could not compare {'; '.join(blind)}" if blind else ""


def all_clear(estimate: dict) -> bool:
    """Whether the window says a performance condition is over: estimated, nothing fell,
    and nothing set aside as unconfirmed (a fall seen again where the drift check just
    missed may be the condition an earlier window alerted on: it neither alerts nor ends
    that alert, or the next window's would be sent again as new)."""
    return (
        bool(estimate.get("available"))
        and not estimate["falls"]
        and not estimate.get("unconfirmed")
    )


def falls_line(estimate: dict, key: str = "falls") -> str:
    """e.g. "recall on dark 0.61 (−0.21)"; "none" when nothing fell."""
    return (
        "; ".join(
            f"{f['figure']} on {f['slice']} {f['now']:.2f} (−{f['drop']:.2f})"
            for f in estimate.get(key, [])
        )
        or "none"
    )


def estimate_line(estimate: dict) -> str:
    """One line: the whole window's estimated mAP50 and recall beside the test baseline."""
    if not estimate.get("available"):
        return f"performance estimate: not available ({estimate.get('reason', 'not run')})"
    s = estimate["slices"]["all"]
    figures = ", ".join(
        f"{f} {s[f]['value']:.2f} [{s[f]['lo']:.2f}, {s[f]['hi']:.2f}]"
        f" (test {s['baseline'][f]:.2f})"
        for f in WATCHED
    )
    return f"estimated without labels: {figures}; fallen: {falls_line(estimate)}"


def estimate_markdown(estimate: dict) -> str:
    """The estimate as a Markdown table (Prefect artifact, report panel)."""
    if not estimate["available"]:
        return f"Label-free performance estimate: not available ({estimate['reason']})\n"
    lines = ["| slice | images | mAP50 (95% CI) | recall (95% CI) | Δ vs test estimate |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, s in estimate["slices"].items():
        cells = [f"{s[f]['value']:.3f} [{s[f]['lo']:.3f}, {s[f]['hi']:.3f}]"
                 + (" ‡" if f in s.get("anchor", {}) else "") for f in WATCHED]  # fmt: skip
        delta = ", ".join(f"{f} {-s['drop'][f]:+.3f}" for f in WATCHED)
        lines.append(f"| {name} | {s['images']} | {cells[0]} | {cells[1]} | {delta} |")
    classes = estimate["slices"]["all"].get("classes") or {}
    if classes:
        lines += ["", "| class (whole window) | AP50 | precision | recall |", "|---|---|---|---|"]
        for name, c in classes.items():
            figures = (c["AP50"], c["precision"], c["recall"])
            cells = [f"{v:.3f}" if v is not None else "-" for v in figures]
            lines.append(f"| {name} | {' | '.join(cells)} |")
    unconfirmed = (
        f"\nFell in a window whose inputs and predictions moved nowhere (not alerted: most "
        f"likely fewer lesions, not a model that misses): {falls_line(estimate, 'unconfirmed')}\n"
        if estimate.get("unconfirmed")
        else ""
    )
    fallen = f"\n\nFallen: {falls_line(estimate)}\n"
    if estimate.get("unchecked"):
        fallen += f"\nAlerted though nothing else was seen to move: {unchecked_line(estimate)}.\n"
    return "\n".join(lines) + fallen + unconfirmed + _anchor_note(estimate)


def _anchor_note(estimate: dict) -> str:
    """What ‡ means: which audit the tone groups were anchored on."""
    on = estimate.get("anchored_on")
    if not on:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(on["ts"]))
    moved = ", ".join(
        f"{name} {f} {s['anchor'][f]['by']:+.3f}"
        for name, s in estimate["slices"].items()
        for f in s.get("anchor", {})
    )
    return (
        f"\n‡ anchored on the labelled audit `{on['subject']}` ({when}): each tone group moved "
        f"by its own error there beyond the whole sample's ({moved}); the fall is the "
        "label-free one.\n"
    )


def write(estimate: dict, out_dir: Path, model: str, version: str) -> None:
    """`performance_estimate.json`, and the estimate as a panel at the top of the drift
    report's HTML page (its own section, above Evidently's)."""
    import markdown

    atomic_write_json(out_dir / "performance_estimate.json", estimate)
    page = out_dir / "drift_report.html"
    if not page.is_file():
        return
    title = f"Performance of {model} v{version}, estimated without labels"
    table = markdown.markdown(estimate_markdown(estimate), extensions=["tables"])
    panel = (
        f'<section id="performance-estimate" style="font-family:sans-serif;margin:1em 2em">'
        f"<h2>{html.escape(title)}</h2>{table}<p style='color:#555'>Compared with the same "
        "estimate on the version's test split. Its error, measured against labelled shifted "
        "batches: the README's <em>How good the estimate is</em> and docs/estimate.md.</p>"
        "</section>"
    )
    text = page.read_text(encoding="utf-8")
    atomic_write_bytes(page, text.replace("<body>", f"<body>{panel}", 1).encode("utf-8"))
