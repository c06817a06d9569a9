"""The label-free estimate anchored on the last labelled audit of the same version.

The estimate cannot see a tone group's own shortfall: the model may find a smaller share
of the lesions on dark skin without doubting what it does find, and its confidences look
the same (docs/estimate.md). A labelled audit (`monitoring.audit`) measures it: on the
audited photos, how far the estimate erred on each group beside how far it erred on the
whole sample. Each tone group's estimate in a later window is moved by that difference —
the group's own error, not the sample's, so an audit made under a shift (whose error lands
on every group alike) does not carry the shift into later windows. The whole window's
estimate is never moved.

Only figures in `monitor.anchor_figures` are anchored (recall: the benchmark measured its
error per group as the model's own, carrying from one condition to the next; mAP50's
changes with the condition and anchoring it made it worse), only on an audit of this very
version no older than `monitor.anchor_max_age_days`, and only from an audited group of
`monitor.estimate_min_images` photos. The baseline moves with the value, so the fall that
alerts is the label-free one, unchanged; the interval widens by the audit's own error.
"""

from __future__ import annotations

import time

import numpy as np
from sqlalchemy import insert, select

from skintwin.monitoring.schema import audit_errors
from skintwin.params import MonitorParams

Z95 = 1.96
WHOLE = "all"


def log_audit(store, result: dict, subject: str, now: float | None = None) -> int:
    """Keep an audit's error of the estimate (`audit.audit_sample`'s result) in the store:
    a row per slice and figure, with the truth's sampling error (None where the audit could
    not measure it: that figure of that slice anchors nothing). An audit without an
    estimate keeps nothing."""
    if not result.get("estimate_available"):
        return 0
    ts = time.time() if now is None else now
    model = result["model"]
    rows = [
        {"ts": ts, "subject": subject, "model_name": model["name"],
         "model_version": str(model["version"]), "slice": name, "figure": figure,
         "images": s["images"], "error": error, "sd": s["true_sd"].get(figure)}
        for name, s in result["slices"].items()
        for figure, error in s.get("estimate_error", {}).items()
    ]  # fmt: skip
    if rows:
        with store.engine.begin() as conn:
            conn.execute(insert(audit_errors), rows)
    return len(rows)


def latest_audit(store, model_name: str, version: str, since: float) -> dict | None:
    """The newest audit of this version at or after `since`: {"subject", "ts", "slices":
    {name: {"images", figure: {"error", "sd"}}}}, or None."""
    c = audit_errors.c
    q = select(audit_errors).where(
        c.model_name == model_name, c.model_version == str(version), c.ts >= since
    )
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(c.ts.desc(), c.id)).mappings().all()
    if not rows:
        return None
    newest = [r for r in rows if r["ts"] == rows[0]["ts"] and r["subject"] == rows[0]["subject"]]
    slices: dict = {}
    for r in newest:
        entry = slices.setdefault(r["slice"], {"images": r["images"]})
        entry[r["figure"]] = {"error": r["error"], "sd": r["sd"]}
    return {"subject": rows[0]["subject"], "ts": rows[0]["ts"], "slices": slices}


def corrections(audit: dict, figures: tuple[str, ...], min_images: int) -> dict:
    """{group: {figure: (shift, sd)}}: how much to move each audited tone group's estimate
    (its error beyond the whole sample's, negated) and that shift's sampling error."""
    whole = audit["slices"].get(WHOLE)
    if whole is None:
        return {}
    out: dict = {}
    for name, s in audit["slices"].items():
        if name == WHOLE or s["images"] < min_images:
            continue
        # the shift's error: the group's truth's (the whole sample's is smaller, and shared)
        moves = {
            f: (-(s[f]["error"] - whole[f]["error"]), s[f]["sd"])
            for f in figures
            if f in s and f in whole and s[f]["sd"] is not None  # an unknown error: no move
        }
        if moves:
            out[name] = moves
    return out


def anchor_slice(entry: dict, moves: dict) -> dict:
    """A slice of `performance.estimate_window` moved by `moves` ({figure: (shift, sd)}):
    value and baseline shifted by one amount, cut so that both stay within [0, 1] (so the
    report's value less its baseline is the drop the falls name: the label-free pair's),
    the interval widened by `sd` in quadrature, and the label-free value kept under
    "anchor"."""
    out = dict(entry)
    out["baseline"] = dict(entry["baseline"])
    out["anchor"] = {}
    for figure, (wanted, sd) in moves.items():
        was, base = entry[figure], entry["baseline"][figure]
        shift = float(np.clip(wanted, -min(was["value"], base), 1 - max(was["value"], base)))
        half = np.hypot((was["hi"] - was["lo"]) / 2, Z95 * sd)
        value = was["value"] + shift
        out[figure] = {"value": round(value, 4),
                       "lo": round(float(max(0.0, value - half)), 4),
                       "hi": round(float(min(1.0, value + half)), 4)}  # fmt: skip
        out["baseline"][figure] = round(base + shift, 4)
        out["anchor"][figure] = {"by": round(shift, 4), "label_free": was}
    return out


def anchor_window(estimate: dict, audit: dict | None, params: MonitorParams) -> dict:
    """The window's estimate with each tone group anchored on `audit` (`latest_audit`);
    the estimate as it was when there is none or it anchors nothing. Falls are unchanged."""
    if not (estimate.get("available") and audit and params.anchor_figures):
        return estimate
    moves = corrections(audit, tuple(params.anchor_figures), params.estimate_min_images)
    moves = {name: m for name, m in moves.items() if name in estimate["slices"]}
    if not moves:
        return estimate
    slices = {
        name: anchor_slice(s, moves[name]) if name in moves else s
        for name, s in estimate["slices"].items()
    }
    audited = {"subject": audit["subject"], "ts": audit["ts"], "slices": sorted(moves),
               "figures": list(params.anchor_figures)}  # fmt: skip
    # a fall keeps its drop; its "now" is the value the report shows beside it
    falls = [{**f, "now": slices[f["slice"]][f["figure"]]["value"]} for f in estimate["falls"]]
    return {**estimate, "slices": slices, "falls": falls, "anchored_on": audited}


def anchor_since(params: MonitorParams, now: float | None = None) -> float:
    """The oldest audit that may still anchor an estimate."""
    return (time.time() if now is None else now) - params.anchor_max_age_days * 86400
