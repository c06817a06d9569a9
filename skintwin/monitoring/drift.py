"""The one place that talks to Evidently: a data-drift report as a plain dict plus files.

Evidently's API changes between releases; nothing else in the project imports it.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir, atomic_write_bytes, atomic_write_json
from skintwin.monitoring.attribution import attribute, not_compared, panel, within_groups
from skintwin.monitoring.embedding_drift import embedding_drift
from skintwin.names import (
    CATEGORICAL_DRIFT_COLUMNS,
    DRIFT_KINDS,
    NUMERIC_DRIFT_COLUMNS,
    P_VALUE_METHODS,
)
from skintwin.params import MonitorParams


def _two_sample_chisquare(reference, current, feature_type, threshold) -> tuple[float, bool]:
    """Pearson's chi-square on the 2 × k table of category counts: a two-sample test.

    Evidently's "chisquare" takes the reference's proportions as exact (goodness of fit);
    with a reference of a few hundred images its false-alarm rate is far above the nominal
    one (a 6-group tone mix, reference 150, window 200, 1% nominal: 29% in simulation, 0.75%
    for this test). Registered with Evidently as "chisquare_2sample".
    """
    from scipy.stats import chi2_contingency

    keys = sorted(set(reference.dropna()) | set(current.dropna()), key=str)
    table = np.array([[int((side == k).sum()) for k in keys] for side in (reference, current)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0, False
    p_value = float(chi2_contingency(table, correction=False)[1])
    return p_value, p_value < threshold


@functools.cache
def _register_tests() -> None:
    """Our tests in Evidently's registry: once, when a report is first made (importing
    Evidently costs ~50 MB, which a scoring process never needs)."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    test = StatTest(
        name="chisquare_2sample",
        display_name="chi-square (two-sample) p_value",
        allowed_feature_types=[ColumnType.Categorical],
    )
    register_stattest(test, default_impl=_two_sample_chisquare)


def drifted(method: str, score: float, threshold: float) -> bool:
    """Evidently's verdict for one column, from its method's direction."""
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


def moved(drifted_columns: list[str]) -> dict[str, list[str]]:
    """What the drifted columns say moved (`names.DRIFT_KINDS`): {kind: its drifted columns}."""
    out = {k: [c for c in cols if c in drifted_columns] for k, cols in DRIFT_KINDS.items()}
    return {k: cols for k, cols in out.items() if cols}


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: MonitorParams,
    out_dir: Path | None = None,
) -> dict:
    """A drift verdict for `current`, or "not enough data" below `params.min_rows` rows.

    Returns:
        `run_drift`'s result with `drift_detected` and `enough_data` (False, with a
        `reason` and no report, when there are too few rows to judge).
    """
    if len(current) < params.min_rows:
        reason = f"{len(current)} current rows < monitor.min_rows {params.min_rows}"
        others = current.attrs.get("other_versions") or {}
        if others:  # a service that has not reloaded the champion, say: monitoring is blind
            held = ", ".join(f"v{v}: {n}" for v, n in sorted(others.items()))
            reason += f"; the window also holds rows of other model versions ({held})"
        result = {
            "drift_detected": False,
            "enough_data": False,
            "reason": reason,
            "drift_share": 0.0,
            "drifted_columns": [],
            "moved": {},
            "embedding": {"available": False, "reason": reason},
            "within_groups": not_compared(),
            "columns": {},
            "scores": {},
            "current_rows": len(current),
        }
        if out_dir is not None:
            atomic_write_json(Path(out_dir) / "drift_summary.json", result)
        return result
    return {**run_drift(reference, current, params, out_dir), "enough_data": True}


def run_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: MonitorParams,
    out_dir: Path | None = None,
    numerical: tuple[str, ...] = NUMERIC_DRIFT_COLUMNS,
    categorical: tuple[str, ...] = CATEGORICAL_DRIFT_COLUMNS,
) -> dict:
    """Compare `current` with `reference` column by column (Evidently `DataDriftPreset`),
    with the tests and thresholds of `params`, over the columns both frames have.

    Beside the column tests: embedding drift (`embedding_drift`) and the within-tone-group
    tests that tell a changed patient mix from changed photos (`attribution`); either one
    alone is drift.

    Returns:
        {"drift_detected", "drift_share", "n_columns", "n_drifted", "drifted_columns",
         "moved", "columns": {name: {"method", "threshold", "score", "drifted"}}, "scores",
         "embedding", "within_groups", "html", "json"}. `html`/`json` are the report paths
         when `out_dir` is given.
    """
    # a column empty on either side (box sizes of a model that found nothing) says nothing
    cols = [
        c
        for c in (*numerical, *categorical)
        if c in reference
        and c in current
        and reference[c].notna().any()
        and current[c].notna().any()
    ]
    snapshot = _evidently_snapshot(
        reference[cols], current[cols], params, [c for c in numerical if c in cols]
    )
    columns = _column_verdicts(snapshot.dict())
    names = [c for c, v in columns.items() if v["drifted"]]
    share = len(names) / len(columns) if columns else 0.0
    embedding = embedding_drift(reference, current, params)
    within = within_groups(reference, current, params)
    result = {
        "drift_detected": share >= params.drift_share
        or embedding.get("drifted", False)
        or bool(within["changed"]),
        "drift_share": share,
        "threshold_share": params.drift_share,
        "n_columns": len(columns),
        "n_drifted": len(names),
        "drifted_columns": names,
        "moved": attribute(moved(names), within, embedding),
        "columns": columns,
        "scores": {c: v["score"] for c, v in columns.items()},
        "reference_rows": len(reference),
        "current_rows": len(current),
        "embedding": embedding,
        "within_groups": within,
    }
    if out_dir is None:
        return result
    _write_report(snapshot, result, Path(out_dir))
    return result | {
        "html": str(Path(out_dir) / "drift_report.html"),
        "json": str(Path(out_dir) / "drift_summary.json"),
    }


def _evidently_snapshot(
    reference: pd.DataFrame, current: pd.DataFrame, params: MonitorParams, numerical: list[str]
):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    _register_tests()
    cols = list(reference.columns)
    definition = DataDefinition(
        numerical_columns=numerical,
        categorical_columns=[c for c in cols if c not in numerical],
    )
    preset = DataDriftPreset(
        columns=cols,
        drift_share=params.drift_share,
        num_method=params.num_method,
        num_threshold=params.num_threshold,
        cat_method=params.cat_method,
        cat_threshold=params.cat_threshold,
        per_column_method={c: t.method for c, t in params.per_column.items()},
        per_column_threshold={c: t.threshold for c, t in params.per_column.items()},
    )
    with warnings.catch_warnings():
        # constant columns (one camera resolution) make its tests divide by zero; harmless
        warnings.simplefilter("ignore", RuntimeWarning)
        return Report([preset]).run(
            current_data=Dataset.from_pandas(current.reset_index(drop=True), definition),
            reference_data=Dataset.from_pandas(reference.reset_index(drop=True), definition),
        )


def _column_verdicts(snapshot: dict) -> dict[str, dict]:
    """Per column: the test Evidently ran, its threshold, score and our verdict."""
    columns: dict[str, dict] = {}
    for metric in snapshot["metrics"]:
        cfg = metric["config"]
        if not cfg.get("type", "").endswith("ValueDrift"):
            continue
        score = float(metric["value"])
        columns[cfg["column"]] = {
            "method": cfg["method"],
            "threshold": cfg["threshold"],
            "score": score,
            "drifted": drifted(cfg["method"], score, cfg["threshold"]),
        }
    return columns


def _write_report(snapshot, result: dict, out_dir: Path) -> None:
    """Evidently HTML, our summary and Evidently's snapshot: all three or none."""
    try:
        with atomic_dir(out_dir, owner="drift") as tmp:
            snapshot.save_html(str(tmp / "drift_report.html"))
            page = tmp / "drift_report.html"
            text = page.read_text(encoding="utf-8")
            page.write_text(text.replace("<body>", f"<body>{panel(result)}", 1), "utf-8")
            atomic_write_json(tmp / "drift_summary.json", result)
            atomic_write_bytes(
                tmp / "evidently_snapshot.json",
                json.dumps(snapshot.dict(), default=str).encode(),
            )
    except OSError as exc:
        raise SkinTwinError(
            f"{out_dir}: cannot write the drift report: {exc.strerror or exc}"
        ) from None
