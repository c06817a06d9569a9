"""Typed loader for `params.yaml`, the one place for ML knobs.

Every section is a frozen pydantic model that forbids unknown keys, so a typo or a wrong
type fails loudly with the dotted key at fault instead of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from skintwin.errors import SkinTwinError
from skintwin.names import (
    CATEGORICAL_DRIFT_COLUMNS,
    CATEGORICAL_METHODS,
    LESION_CLASSES,
    NUMERIC_DRIFT_COLUMNS,
    NUMERIC_METHODS,
    TONE_GROUPS,
)

PositiveInt = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # what NumPy and PyTorch seeding accept


class _Section(BaseModel):
    # inf and nan are never a sensible knob: a timeout of .inf waits forever
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DataParams(_Section):
    path: str = Field(min_length=1)


class GenerateParams(_Section):
    seed: Seed
    n_images: PositiveInt
    image_size: Annotated[int, Field(ge=64, le=4096)]
    max_lesions: Annotated[int, Field(ge=1, le=20)]
    background_fraction: Fraction
    class_weights: dict[str, Annotated[float, Field(gt=0)]]
    tone_weights: dict[str, Annotated[float, Field(ge=0)]]

    @model_validator(mode="after")
    def _known_names(self) -> GenerateParams:
        unknown = set(self.class_weights) - set(LESION_CLASSES)
        if unknown:
            raise ValueError(f"class_weights: unknown classes {sorted(unknown)}")
        bad_tones = set(self.tone_weights) - set(TONE_GROUPS)
        if bad_tones:
            raise ValueError(f"tone_weights: unknown tone groups {sorted(bad_tones)}")
        if sum(self.tone_weights.values()) <= 0:
            raise ValueError("tone_weights: at least one weight must be positive")
        return self


class ValidateParams(_Section):
    min_images_per_class: PositiveInt
    max_box_overflow: Annotated[float, Field(ge=0.0, le=0.5)]


class PreprocessParams(_Section):
    seed: Seed
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)]
    test_fraction: Annotated[float, Field(gt=0.0, lt=0.5)]
    min_test_per_group: Annotated[int, Field(ge=0)]  # test images each tone group gets at least
    keep_splits: bool  # keep a dataset's own train/val/test split instead of re-splitting
    workers: PositiveInt


class AugmentParams(_Section):
    fliplr: Fraction
    flipud: Fraction
    mosaic: Fraction
    hsv_h: Fraction
    hsv_s: Fraction
    hsv_v: Fraction
    degrees: Annotated[float, Field(ge=0.0, le=180.0)]
    scale: Fraction


class TrainParams(_Section):
    model: str = Field(min_length=1)
    epochs: PositiveInt
    imgsz: Annotated[int, Field(ge=32, le=4096)]
    batch: PositiveInt
    patience: Annotated[int, Field(ge=0)]
    optimizer: Literal["SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp", "auto"]
    lr0: Annotated[float, Field(gt=0.0, le=1.0)]
    seed: Seed
    device: str
    workers: Annotated[int, Field(ge=0)]
    plots: bool
    augment: AugmentParams


Resamples = Annotated[int, Field(ge=100, le=20_000)]


class EvaluateParams(_Section):
    conf: Annotated[float, Field(gt=0.0, lt=1.0)]
    iou: Annotated[float, Field(gt=0.0, lt=1.0)]
    imgsz: Annotated[int, Field(ge=32, le=4096)]
    bootstrap: Resamples  # resamples for the 95% intervals
    seed: Seed
    embed_layer: Annotated[int, Field(ge=0)] = 6  # the backbone layer pooled for drift
    embed_dims: Annotated[int, Field(ge=2, le=128)] = 32  # ... reduced to this many


class PromoteParams(_Section):
    model_name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    metric: Literal["mAP50", "mAP50-95"]  # the gate's figure: an AP, with a paired interval
    floor: Fraction
    rule: Literal["superior", "non_inferior"]
    min_delta: Annotated[float, Field(ge=0.0, le=1.0)]
    non_inferiority_margin: Annotated[float, Field(ge=0.0, le=0.5)]
    min_group_images: PositiveInt
    group_tolerance: Fraction
    max_detectable_drop: Annotated[float, Field(gt=0.0, le=1.0)]
    on_insufficient: Literal["block", "allow"]
    confidence: Annotated[float, Field(ge=0.5, lt=1.0)]
    bootstrap: Resamples
    seed: Seed


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
    embed_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.01  # MMD p-value, all tests
    embed_permutations: Annotated[int, Field(ge=99, le=10_000)] = 500
    embed_max_rows: Annotated[int, Field(ge=100)] = 2000  # a seeded sample of larger windows
    within_min_images: Annotated[int, Field(ge=5)] = 15  # a group in the within-group tests
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


class Params(_Section):
    data: DataParams
    generate: GenerateParams
    validate_: ValidateParams = Field(alias="validate")
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams
    promote: PromoteParams
    monitor: MonitorParams

    model_config = _Section.model_config | ConfigDict(populate_by_name=True)  # `validate`


def _describe(error: dict) -> str:
    loc = ".".join(str(p) for p in error["loc"] if p != "validate_") or "(top level)"
    loc = loc.replace("validate_", "validate")
    kind = error["type"]
    if kind == "missing":
        return f"{loc}: required key is missing"
    if kind == "extra_forbidden":
        return f"{loc}: unknown key (typo?)"
    if kind == "value_error":  # our own validators start their message with the key
        return f"{loc}.{error['msg'].removeprefix('Value error, ')}"
    got = error.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    return f"{loc}: {error['msg']}{shown}"


def _problems(head: str, lines: list[str]) -> str:
    """One line for one problem; a list under a heading for several."""
    if len(lines) == 1:
        return f"{head.split(':')[0]}: {lines[0]}" if ":" in head else lines[0]
    return f"{head}:\n  " + "\n  ".join(lines)


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate an already-parsed mapping; errors name every key at fault."""
    if not isinstance(raw, dict):
        raise SkinTwinError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise SkinTwinError(_problems(f"{source}: invalid parameters", lines)) from None


def with_overrides(section: _Section, name: str, **values: object) -> _Section:
    """A copy of a params section with some values replaced (e.g. from a command line),
    validated like the file; errors name `name.key`."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return type(section).model_validate({**section.model_dump(), **given})
    except ValidationError as exc:
        lines = [_describe({**e, "loc": (name, *e["loc"])}) for e in exc.errors()]
        raise SkinTwinError(_problems("invalid value", lines)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate `params.yaml`.

    Raises:
        SkinTwinError: the file is missing, is not YAML, or has a missing, unknown or
            mistyped key (the message names each one).
    """
    path = Path(path)
    if not path.is_file():
        raise SkinTwinError(f"{path}: parameters file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SkinTwinError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise SkinTwinError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, source=str(path))
