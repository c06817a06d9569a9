"""Locating the project (the folder with dvc.yaml) and operational edits to params.yaml."""

from __future__ import annotations

import os
import re
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_write_bytes


def resolve_root(project_dir: str | Path | None = None) -> Path:
    """The project folder: the argument, $SKINTWIN_HOME, the cwd, or this checkout."""
    import skintwin

    candidates = [
        project_dir,
        os.environ.get("SKINTWIN_HOME"),
        Path.cwd(),
        Path(skintwin.__file__).resolve().parent.parent,
    ]
    for c in candidates:
        if c and (Path(c) / "dvc.yaml").is_file():
            return Path(c).resolve()
    if project_dir:
        raise SkinTwinError(f"{project_dir}: no dvc.yaml here; not a Skin-Twin project folder")
    raise SkinTwinError("no dvc.yaml found: run from the project folder or set SKINTWIN_HOME")


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
    pattern = re.compile(r"(^data:\s*\n(?:[ \t]*#.*\n)*[ \t]+path:[ \t]*)([^\s#]+)", re.M)
    match = pattern.search(text)
    if match is None:
        raise SkinTwinError(f"{params}: no 'data.path' key to update")
    if match.group(2) == value:
        return False
    atomic_write_bytes(params, (text[: match.start(2)] + value + text[match.end(2) :]).encode())
    return True
