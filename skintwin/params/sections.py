"""The sections of `params.yaml` the pipeline reads: data, generate, validate, preprocess,
train, evaluate, promote. Frozen pydantic models that forbid unknown keys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from skintwin.names import LESION_CLASSES, TONE_GROUPS

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
    amp: bool = True  # mixed precision on a GPU (bfloat16); a CPU always trains in FP32
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
