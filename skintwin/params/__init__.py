"""Typed loader for `params.yaml`, the one place for ML knobs.

Every section is a frozen pydantic model that forbids unknown keys, so a typo or a wrong
type fails loudly with the dotted key at fault instead of being silently ignored. The
sections live in `sections.py` (pipeline) and `monitor.py` (production monitoring); this
module reads the file and words the errors.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ConfigDict, Field, ValidationError

from skintwin.errors import SkinTwinError
from skintwin.params.monitor import ColumnTest, MonitorParams
from skintwin.params.sections import (
    AugmentParams,
    DataParams,
    EvaluateParams,
    GenerateParams,
    PreprocessParams,
    PromoteParams,
    TrainParams,
    ValidateParams,
    _Section,
)

__all__ = [
    "AugmentParams",
    "ColumnTest",
    "DataParams",
    "EvaluateParams",
    "GenerateParams",
    "MonitorParams",
    "Params",
    "PreprocessParams",
    "PromoteParams",
    "TrainParams",
    "ValidateParams",
    "load_params",
    "parse_params",
    "with_overrides",
]


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
    return f"{loc}: {error['msg']}{shown}{_yaml_number_hint(got)}"


def _yaml_number_hint(got: object) -> str:
    """YAML 1.1 reads `1e-3` as text, not a number (it wants a point and a signed
    exponent, `1.0e-3`): say so."""
    found = (
        re.fullmatch(r"([-+]?\d+)(\.\d*)?[eE]([-+]?)(\d+)", got.strip())
        if isinstance(got, str)
        else None
    )
    if found is None:
        return ""
    mantissa, point, sign, exponent = found.groups()
    return f"; YAML reads {got} as text: write {mantissa}{point or '.0'}e{sign or '+'}{exponent}"


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
