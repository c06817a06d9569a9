"""The one place that talks to Evidently: a data-drift report as a plain dict plus files.

Evidently's API changes between releases; nothing else in the project imports it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir, atomic_write_bytes, atomic_write_json

# Tests whose score is a p-value (drift when score < threshold); the others are distances
# (drift when score ≥ threshold).
P_VALUE_METHODS = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "fisher_exact",
        "g_test",
        "t_test",
        "mannw",
        "anderson",
        "cramer_von_mises",
        "epps_singleton",
        "empirical_mmd",
    }
)
DISTANCE_METHODS = frozenset(
    {"wasserstein", "psi", "jensenshannon", "kl_div", "hellinger", "TVD", "ed"}
)


def drifted(method: str, score: float, threshold: float) -> bool:
    """Evidently's verdict for one column, from its method's direction."""
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


def run_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    *,
    num_method: str,
    num_threshold: float,
    cat_method: str,
    cat_threshold: float,
    drift_share: float,
    per_column: dict[str, dict] | None = None,
    out_dir: Path | None = None,
) -> dict:
    """Compare `current` with `reference` column by column (Evidently `DataDriftPreset`).

    Returns:
        {"dataset_drift", "drift_share", "n_columns", "n_drifted", "drifted_columns",
         "columns": {name: {"method", "threshold", "score", "drifted"}}, "html", "json"}.
        `html`/`json` are the written report paths when `out_dir` is given.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    per_column = per_column or {}
    cols = [c for c in numerical + categorical if c in reference and c in current]
    definition = DataDefinition(
        numerical_columns=[c for c in numerical if c in cols],
        categorical_columns=[c for c in categorical if c in cols],
    )
    preset = DataDriftPreset(
        columns=cols,
        drift_share=drift_share,
        num_method=num_method,
        num_threshold=num_threshold,
        cat_method=cat_method,
        cat_threshold=cat_threshold,
        per_column_method={c: v["method"] for c, v in per_column.items() if "method" in v},
        per_column_threshold={
            c: v["threshold"] for c, v in per_column.items() if "threshold" in v
        },
    )
    with warnings.catch_warnings():
        # constant columns (one camera resolution) make its tests divide by zero; harmless
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report([preset]).run(
            current_data=Dataset.from_pandas(current[cols].reset_index(drop=True), definition),
            reference_data=Dataset.from_pandas(reference[cols].reset_index(drop=True), definition),
        )
    columns: dict[str, dict] = {}
    for metric in snapshot.dict()["metrics"]:
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
    names = [c for c, v in columns.items() if v["drifted"]]
    share = len(names) / len(columns) if columns else 0.0
    result = {
        "dataset_drift": share >= drift_share,
        "drift_share": share,
        "threshold_share": drift_share,
        "n_columns": len(columns),
        "n_drifted": len(names),
        "drifted_columns": names,
        "columns": columns,
        "reference_rows": len(reference),
        "current_rows": len(current),
    }
    if out_dir is not None:
        try:
            with atomic_dir(out_dir) as tmp:  # a report is whole or absent
                snapshot.save_html(str(tmp / "drift_report.html"))
                atomic_write_json(tmp / "drift_summary.json", result)
                atomic_write_bytes(
                    tmp / "evidently_snapshot.json",
                    json.dumps(snapshot.dict(), default=str).encode(),
                )
        except OSError as exc:
            raise SkinTwinError(
                f"{out_dir}: cannot write the drift report: {exc.strerror or exc}"
            ) from None
        result = {
            **result,
            "html": str(out_dir / "drift_report.html"),
            "json": str(out_dir / "drift_summary.json"),
        }
    return result
