"""Register and gate the candidate that the evaluate stage left in the project.

One implementation for the Prefect tasks, the `skintwin promote` command and the
application's Python API.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from skintwin import registry
from skintwin.errors import SkinTwinError
from skintwin.params import load_params
from skintwin.tracking import configure_tracking, unreachable_as_error

log = logging.getLogger(__name__)


def load_candidate(root: Path) -> tuple[dict, dict]:
    """The train stage's run record and the evaluate stage's metrics."""
    run_json, metrics_json = root / "models/train/run.json", root / "reports/evaluate/metrics.json"
    for path in (run_json, metrics_json):
        if not path.is_file():
            raise SkinTwinError(f"{path}: missing; run `dvc repro evaluate` first")
    record = json.loads(run_json.read_text())
    m = json.loads(metrics_json.read_text())
    return record, {"overall": m["test"], "per_group": m["per_group"], "per_class": m["per_class"]}


def register(root: Path, flow_run_id: str | None = None) -> dict:
    """Register the current candidate (idempotent: a run is registered once)."""
    with unreachable_as_error(configure_tracking(root)):
        return _register(root, flow_run_id)


def _register(root: Path, flow_run_id: str | None) -> dict:
    params = load_params(root / "params.yaml")
    record, evaluation = load_candidate(root)
    name = params.promote.model_name
    existing = registry.find_version(name, record["run_id"])
    if existing is not None:
        log.info("candidate of run %s is already version %s", record["run_id"], existing.version)
        return {
            "version": existing.version,
            "new": False,
            "run_id": record["run_id"],
            "decision": existing.tags.get("gate.decision"),
        }
    lineage = registry.collect_lineage(root, record["run_id"], flow_run_id)
    version = registry.register_candidate(
        root / "models/train" / record["weights"], record["run_id"], name, evaluation, lineage
    )
    log.info("registered %s version %s (alias %s)", name, version, registry.CHALLENGER)
    return {"version": version, "new": True, "run_id": record["run_id"], "decision": None}


def gate(root: Path, candidate: dict) -> dict:
    """Apply the promotion gate to a registered candidate (once per version)."""
    with unreachable_as_error(configure_tracking(root)):
        return _gate(root, candidate)


def _gate(root: Path, candidate: dict) -> dict:
    params = load_params(root / "params.yaml")
    if not candidate["new"] and candidate["decision"]:
        log.info("version %s was already gated: %s", candidate["version"], candidate["decision"])
        return {
            "promote": candidate["decision"] == "promoted",
            "version": candidate["version"],
            "reasons": [f"already decided: {candidate['decision']}"],
            "repeat": True,
        }
    _, evaluation = load_candidate(root)
    decision = registry.promote(
        params.promote.model_name,
        candidate["version"],
        evaluation,
        root / "data/processed",
        params.evaluate,
        params.promote,
        params.train.device,
    )
    verdict = "PROMOTED to champion" if decision.promote else "not promoted"
    log.info("version %s %s: %s", candidate["version"], verdict, "; ".join(decision.reasons))
    return {**decision.as_dict(), "version": candidate["version"], "repeat": False}
