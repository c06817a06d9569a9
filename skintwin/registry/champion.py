"""The champion measured on the candidate's test split, as the gate compares them.

The gate measures it when it decides; the training flow can measure it earlier, while the
candidate is evaluated (its test split is fixed once preprocess has run), and hand the
result to the gate, which uses it only if the same version is still champion.

The two are compared on the test photos the champion never trained on: the version lists
the photos it trained and was selected on (`seen.json`), and a dataset that grew or was
split again can put some of them in the new test split, where the champion would score as
well as on its training photos.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from skintwin.data.dataset import read_names
from skintwin.errors import SkinTwinError
from skintwin.params import Params, load_params
from skintwin.project import ProjectPaths
from skintwin.registry import client
from skintwin.training.evaluation import Evaluation, evaluate_weights, summarise
from skintwin.training.seen import FILE, digests_of, read_seen
from skintwin.training.tracking import configure_tracking, unreachable_as_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measured:
    """The champion `version` measured on the project's test split, or why it could not be."""

    version: str
    evaluation: Evaluation | None
    error: str | None = None
    seen: frozenset[str] | None = None  # digests of the photos it trained on; None: unknown


def evaluate(paths: ProjectPaths, params: Params, version: str) -> Measured:
    """Champion `version` measured now on the candidate's test split; an error says why not."""
    name = params.promote.model_name
    try:
        with tempfile.TemporaryDirectory() as tmp:
            weights = client.version_weights(name, version, Path(tmp))
            listed = next(Path(tmp).rglob(FILE), None)
            seen = read_seen(listed) if listed else None
            evaluation = evaluate_weights(
                weights,
                paths.processed,
                params.evaluate,
                params.promote.metric,
                params.train.device,
            )
            return Measured(str(version), evaluation, seen=seen)
    except Exception as exc:  # any failure: the candidate waits for a human, nothing moves
        log.exception("champion v%s could not be evaluated", version)
        raise SkinTwinError(
            f"champion v{version} could not be evaluated on this test split "
            f"({type(exc).__name__}: {str(exc)[:300]}); a human must decide"
        ) from None


def measure_current(paths: ProjectPaths) -> Measured | None:
    """The current champion measured now (None when there is none): for the gate later."""
    with unreachable_as_error(configure_tracking(paths.root)):
        params = load_params(paths.params)
        champ = client.alias_version(params.promote.model_name, client.CHAMPION)
        if champ is None:
            return None
        try:
            return evaluate(paths, params, str(champ.version))
        except SkinTwinError as exc:
            return Measured(str(champ.version), None, str(exc))


def measurement_of(
    paths: ProjectPaths, params: Params, version: str, measured: Measured | None
) -> Measured:
    """Champion `version` measured: the earlier measurement if it is of this version, else
    now."""
    if measured is None or measured.version != str(version):
        return evaluate(paths, params, version)
    if measured.error:
        raise SkinTwinError(measured.error)
    log.info("champion v%s: measured while the candidate was evaluated", version)
    return measured


def comparison(
    paths: ProjectPaths, params: Params, version: str, candidate: Evaluation, measured=None
) -> tuple[Evaluation, Evaluation, str]:
    """(candidate, champion `version`, a sentence saying on which photos): both on the test
    photos the champion never trained on, or on all of them when it lists none."""
    champ = measurement_of(paths, params, version, measured)
    if champ.seen is None:
        why = (f"champion v{version} lists no photos it trained on (registered before versions "
               "listed them, or trained elsewhere): it may be scored on some")  # fmt: skip
        return candidate, champ.evaluation, why
    files = candidate.stats.files if candidate.stats is not None else ()
    keep = [i for i, d in enumerate(digests_of(paths.processed, files)) if d not in champ.seen]
    n = len(files)
    if len(keep) == n:
        why = f"none of the {n} test photos is one champion v{version} trained on"
        return candidate, champ.evaluation, why
    if not keep:
        raise SkinTwinError(f"champion v{version} trained on all {n} test photos: no fair "
                            "comparison is possible; a human must decide")  # fmt: skip
    names = read_names(paths.processed / "data.yaml")[1]
    groups = tuple(candidate.groups[i] for i in keep)
    theirs = champ.evaluation.stats.aligned_to(files)
    return (
        summarise(candidate.stats.subset(keep), groups, names, None),
        summarise(theirs.subset(keep), groups, names, None),
        f"compared on the {len(keep)} of {n} test photos champion v{version} never trained "
        f"on ({n - len(keep)} it trained or was selected on left out)",
    )
