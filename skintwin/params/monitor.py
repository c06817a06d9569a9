"""The `monitor` section of `params.yaml`: production monitoring (drift tests, alerts,
label-free estimates, embedding drift, batch scoring on Dask)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from skintwin.names import (
    CATEGORICAL_DRIFT_COLUMNS,
    CATEGORICAL_METHODS,
    NUMERIC_DRIFT_COLUMNS,
    NUMERIC_METHODS,
    P_VALUE_METHODS,
)
from skintwin.params.sections import PositiveInt, _Section

# The embedding test runs 3 / (threshold / its tests) permutations, each a column of a
# (rows × permutations) matrix: at 1e-4 and 7 tests, 210,000 of them, gigabytes.
EMBED_THRESHOLD_FLOOR = 1e-3


class ColumnTest(_Section):
    method: str
    threshold: Annotated[float, Field(gt=0.0)]


class MonitorParams(_Section):
    window_hours: Annotated[float, Field(gt=0)]
    min_rows: PositiveInt
    num_method: str
    num_threshold: Annotated[float, Field(gt=0.0)]
    cat_method: str
    cat_threshold: Annotated[float, Field(gt=0.0)]
    per_column: dict[str, ColumnTest]
    drift_share: Annotated[float, Field(gt=0.0, le=1.0)]
    critical_share: Annotated[float, Field(gt=0.0, le=1.0)]
    dedup_hours: Annotated[float, Field(ge=0)]
    retrain_on_critical: bool
    webhook_timeout_s: Annotated[float, Field(gt=0, le=300)]
    webhook_retries: Annotated[int, Field(ge=0, le=10)]
    conf: Annotated[float, Field(gt=0.0, lt=1.0)]
    imgsz: Annotated[int, Field(ge=32, le=4096)]
    estimate_drop: Annotated[float, Field(gt=0.0, le=1.0)]  # label-free estimate alert
    estimate_min_images: PositiveInt  # a tone group's own estimate from this many images
    estimate_needs_drift: bool = True  # a fall alerts only where the drift check saw a move
    # each tone group's estimate moved by its own error in the last labelled audit
    anchor_figures: list[Literal["mAP50", "precision", "recall"]] = Field(
        default_factory=lambda: ["recall"]
    )
    anchor_max_age_days: Annotated[float, Field(gt=0)] = 90
    embed_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.01  # MMD p-value, all tests
    embed_permutations: Annotated[int, Field(ge=99, le=10_000)] = 500
    embed_max_rows: Annotated[int, Field(ge=100)] = 2000  # a seeded sample of larger windows
    within_min_images: Annotated[int, Field(ge=5)] = 10  # a group in the within-group tests
    within_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.01  # their KS p-value
    dask_min_images: PositiveInt = 2000  # a batch this large is scored on Dask, in chunks
    dask_workers: Annotated[int, Field(ge=1, le=256)] = 2  # local cluster (no scheduler set)
    chunk_images: Annotated[int, Field(ge=1, le=100_000)] = 256  # images per Dask task

    @model_validator(mode="after")
    def _known_methods(self) -> MonitorParams:
        methods = [("num_method", self.num_method, NUMERIC_METHODS)]
        methods.append(("cat_method", self.cat_method, CATEGORICAL_METHODS))
        for column, test in self.per_column.items():
            if column in NUMERIC_DRIFT_COLUMNS:
                allowed = NUMERIC_METHODS
            elif column in CATEGORICAL_DRIFT_COLUMNS:
                allowed = CATEGORICAL_METHODS
            else:
                known = sorted((*NUMERIC_DRIFT_COLUMNS, *CATEGORICAL_DRIFT_COLUMNS))
                raise ValueError(f"per_column.{column}: not a drift column; one of {known}")
            methods.append((f"per_column.{column}.method", test.method, allowed))
        for key, method, allowed in methods:
            if method not in allowed:
                raise ValueError(
                    f"{key}: {method!r} is not a drift test for this column type; "
                    f"use one of {sorted(allowed)}"
                )
        if self.critical_share < self.drift_share:
            raise ValueError("critical_share: must be at least drift_share")
        return self

    @model_validator(mode="after")
    def _p_values_below_one(self) -> MonitorParams:
        tests = [("num_threshold", self.num_method, self.num_threshold)]
        tests.append(("cat_threshold", self.cat_method, self.cat_threshold))
        for column, test in self.per_column.items():
            tests.append((f"per_column.{column}.threshold", test.method, test.threshold))
        for key, method, threshold in tests:
            if method in P_VALUE_METHODS and not 0.0 < threshold < 1.0:
                raise ValueError(
                    f"{key}: a p-value threshold must be in (0, 1) for {method!r}"
                    f" (got {threshold})"
                )
        if self.embed_threshold < EMBED_THRESHOLD_FLOOR:
            raise ValueError(
                f"embed_threshold: must be at least {EMBED_THRESHOLD_FLOOR:g}"
                f" (got {self.embed_threshold:g}): the embedding test runs 3 / (threshold /"
                " tests) permutations; at 1e-4 over 7 tests that is 210,000, gigabytes of memory"
            )
        return self
