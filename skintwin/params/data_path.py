"""`data.path` in params.yaml, set from a flow parameter or the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_write_bytes


def set_data_path(root: Path, data_path: str | Path | None) -> bool:
    """Point `data.path` in params.yaml at `data_path` (as `dvc exp run -S` would).

    The edit keeps comments and layout; the path is stored relative to the project when it
    lies inside it. Returns True when params.yaml changed.
    """
    if not data_path:
        return False
    target = Path(data_path).expanduser()
    resolved = target if target.is_absolute() else (Path.cwd() / target)
    if not resolved.is_dir():
        raise SkinTwinError(f"{data_path}: dataset folder does not exist")
    resolved = resolved.resolve()
    try:
        value = resolved.relative_to(root).as_posix()
    except ValueError:
        value = str(resolved)
    params = root / "params.yaml"
    text = params.read_text()
    match = _DATA_PATH.search(text)
    if match is None:
        raise SkinTwinError(f"{params}: no 'data.path' key to update")
    if _reads_as(match.group(2), value):
        return False
    # a plain scalar where YAML reads it back as this very string; else a quoted one (a
    # folder named `2024`, `null`, `@scans` or `a #1` would be a number, nothing, an
    # error or a comment)
    plain = _reads_as(value, value) and "#" not in value and ": " not in value
    edited = (
        text[: match.start(2)] + (value if plain else json.dumps(value)) + text[match.end(2) :]
    )
    if (yaml.safe_load(edited) or {}).get("data", {}).get("path") != value:
        raise SkinTwinError(
            f"{params}: could not write data.path {value!r} safely; edit it by hand"
        )
    atomic_write_bytes(params, edited.encode())
    return True


def _reads_as(text: str, value: str) -> bool:
    """Whether YAML reads `text` as the string `value`."""
    try:
        return yaml.safe_load(text) == value
    except yaml.YAMLError:
        return False


# `data:`, comment lines, then `  path: <value>`: a quoted value, or a plain one up to a
# comment or the end of the line
_DATA_PATH = re.compile(
    r"(^data:[ \t]*\n(?:[ \t]*#.*\n)*[ \t]+path:[ \t]*)"
    r"(\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\n]|'')*'|[^\s#][^\n]*?)(?=[ \t]+#|[ \t]*$)",
    re.M,
)
