"""The photos a model has seen: the SHA-256 of every source image of the training and
validation splits it was fitted and selected on. The evaluate stage writes them
(`seen.json`); they are logged with the registered version, so that the gate can leave out
of a comparison the test photos the champion trained on (`registry/champion.py`): a
champion scored on its own training photos looks better than it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_write_json

SEEN_SPLITS = ("train", "val")
FILE = "seen.json"


def _table(dataset: Path) -> pd.DataFrame:
    path = Path(dataset) / "reference_features.parquet"
    table = pd.read_parquet(path)
    if "sha256" not in table.columns:
        raise SkinTwinError(f"{path}: no sha256 column (written by an older preprocess); "
                            "run `dvc repro preprocess` again")  # fmt: skip
    return table


def write_seen(dataset: Path, path: Path) -> int:
    """Write the digests of `dataset`'s training and validation photos; how many."""
    table = _table(dataset)
    digests = sorted(set(table.loc[table["split"].isin(SEEN_SPLITS), "sha256"]))
    atomic_write_json(path, {"splits": list(SEEN_SPLITS), "sha256": digests})
    return len(digests)


def read_seen(path: Path) -> frozenset[str]:
    try:
        return frozenset(json.loads(Path(path).read_text())["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SkinTwinError(f"{path}: not a list of seen photos ({exc})") from None


def digests_of(dataset: Path, files: tuple[str, ...]) -> list[str]:
    """The source digest of each of `files` (paths as the evaluation names them)."""
    by_file = _table(dataset).set_index("file")["sha256"]
    missing = [f for f in files if f not in by_file.index]
    if missing:
        raise SkinTwinError(f"{dataset}: {missing[0]} is not in the reference table")
    return [str(by_file[f]) for f in files]
