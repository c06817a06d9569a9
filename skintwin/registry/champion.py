"""The champion measured on the candidate's test split, as the gate compares them.

The gate measures it when it decides; the training flow can measure it earlier, while the
candidate is evaluated (its test split is fixed once preprocess has run), and hand the
result to the gate, which uses it only if the same version is still champion.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.params import Params, load_params
from skintwin.project import ProjectPaths
from skintwin.registry import client
from skintwin.training.evaluation import Evaluation, evaluate_weights
from skintwin.training.tracking import configure_tracking, unreachable_as_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measured:
    """The champion `version` measured on the project's test split, or why it could not be."""

    version: str
    evaluation: Evaluation | None
    error: str | None = None


def evaluate(paths: ProjectPaths, params: Params, version: str) -> Evaluation:
    """Champion `version` measured now on the candidate's test split; an error says why not."""
    name = params.promote.model_name
    try:
        with tempfile.TemporaryDirectory() as tmp:
            weights = client.version_weights(name, version, Path(tmp))
            return evaluate_weights(
                weights,
                paths.processed,
                params.evaluate,
                params.promote.metric,
                params.train.device,
            )
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
            return Measured(str(champ.version), evaluate(paths, params, str(champ.version)))
        except SkinTwinError as exc:
            return Measured(str(champ.version), None, str(exc))


def evaluation_of(
    paths: ProjectPaths, params: Params, version: str, measured: Measured | None
) -> Evaluation:
    """Champion `version`'s evaluation: the earlier measurement if it is of this version,
    else measured now."""
    if measured is None or measured.version != str(version):
        return evaluate(paths, params, version)
    if measured.error:
        raise SkinTwinError(measured.error)
    log.info("champion v%s: measured while the candidate was evaluated", version)
    return measured.evaluation
