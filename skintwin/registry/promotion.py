"""Registration and promotion: the one path every candidate takes into the registry.

The training flow and `skintwin promote` register the candidate that the evaluate stage
left in the project; the application's `register_yolo_model` registers a `.pt` trained
elsewhere after evaluating it here. Both go through `_register`, then `_gate`, which
evaluates the champion now on the same test split and moves `champion` only on a pass.
"""

from __future__ import annotations

import logging
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.io import file_sha256, read_record
from skintwin.params import Params, load_params
from skintwin.project import ProjectPaths, read_run_record
from skintwin.registry import aliases, approval, card, champion, client, recording
from skintwin.registry.artifacts import runtime_tags, version_artifacts
from skintwin.registry.gate import Decision, decide
from skintwin.registry.lineage import collect_lineage, unrecorded_changes
from skintwin.training.evaluation import Evaluation, evaluate_weights
from skintwin.training.tracking import (
    TRAINING_EXPERIMENT,
    configure_tracking,
    experiment_id,
    log_evaluation,
    unreachable_as_error,
)

log = logging.getLogger(__name__)
NO_COMPARISON = "no comparison"  # the rule of a decision made without the champion's figures


def run_record(paths: ProjectPaths) -> dict:
    """The train stage's record, if the evaluate stage's figures are of its weights (after
    `dvc repro train` alone they are the previous model's, and registering would tag new
    weights with them, and gate them on them), and params.yaml and the data are still what
    made them (`lineage.unrecorded_changes`)."""
    changed = unrecorded_changes(paths)
    if changed:
        raise SkinTwinError(
            "the pipeline changed since the candidate was made; run `dvc repro` first:\n  "
            + "\n  ".join(changed)
        )
    record = read_run_record(paths.run_record)
    evaluated = read_record(paths.evaluated, ("weights_sha256",), "run `dvc repro evaluate`")
    if evaluated["weights_sha256"] != file_sha256(paths.train_dir / record["weights"]):
        raise SkinTwinError(
            f"{paths.evaluate_dir}: the figures are of run {evaluated.get('run_id')}, not of "
            f"{paths.train_dir} (run {record['run_id']}); run `dvc repro evaluate`"
        )
    return record


def register(
    paths: ProjectPaths, evaluation: Evaluation | None = None, flow_run_id: str | None = None
) -> dict:
    """Register the evaluated candidate (idempotent: one version per training run).

    Returns:
        {"version", "new", "run_id", "decision"} (decision: an earlier gate's, or None).
    """
    with unreachable_as_error(configure_tracking(paths.root)):
        params = load_params(paths.params)
        record = run_record(paths)
        evaluation = evaluation or Evaluation.read(paths.metrics, paths.test_stats)
        weights = paths.train_dir / record["weights"]
        return _register(paths, params, weights, record["run_id"], evaluation, flow_run_id)


def gate(
    paths: ProjectPaths,
    candidate: dict,
    evaluation: Evaluation | None = None,
    measured: champion.Measured | None = None,
) -> dict:
    """Apply the promotion gate to a registered candidate (once per version, unless the
    champion could not be compared with it: gated again, as it may be now); `measured`:
    the champion measured earlier in the flow (`champion.measure_current`)."""
    with unreachable_as_error(configure_tracking(paths.root)):
        params = load_params(paths.params)
        final = candidate.get("rule") != NO_COMPARISON  # a download that failed is no verdict
        if not candidate["new"] and candidate["decision"] and final:
            log.info("version %s already gated: %s", candidate["version"], candidate["decision"])
            reasons = [f"already decided: {candidate['decision']}"]
            champ = client.alias_version(params.promote.model_name, client.CHAMPION)
            now = champ is not None and str(champ.version) == str(candidate["version"])
            if candidate["decision"] == "promoted" and not now:  # rolled back since
                reasons.append(f"champion is v{champ.version if champ else '-'} now")
            if candidate["decision"] != "promoted" and now:
                reasons.append("champion now by a human's approval (`skintwin lineage`)")
            return {
                "promote": candidate["decision"] == "promoted" and now,
                "version": candidate["version"],
                "reasons": reasons,
                "rule": candidate.get("rule") or "-",
                "repeat": True,
            }
        evaluation = evaluation or Evaluation.read(paths.metrics, paths.test_stats)
        return _gate(paths, params, candidate["version"], evaluation, measured)


def register_external(
    paths: ProjectPaths,
    weights: Path,
    reported: dict | None = None,
    tags: dict | None = None,
    model_name: str | None = None,
) -> dict:
    """Evaluate a `.pt` trained elsewhere on this project's test split, then register and
    gate it like any candidate. `reported` metrics are recorded, never trusted.

    Returns:
        {"version", "decision": {...}, "evaluation": Evaluation}.
    """
    import mlflow

    params = load_params(paths.params)
    if model_name:
        params = params.model_copy(
            update={"promote": params.promote.model_copy(update={"model_name": model_name})}
        )
    if not Path(weights).is_file():
        raise SkinTwinError(f"{weights}: model file not found")
    if not paths.reference_features.is_file():
        raise SkinTwinError(f"{paths.processed}: no test split; run `dvc repro preprocess` first")
    with unreachable_as_error(configure_tracking(paths.root)):
        evaluation = evaluate_weights(
            weights, paths.processed, params.evaluate, params.promote.metric, params.train.device
        )
        with mlflow.start_run(
            experiment_id=experiment_id(TRAINING_EXPERIMENT, paths.root),
            run_name=f"external-{Path(weights).stem}",
            tags={"skintwin.source": "external", **(tags or {})},
        ) as run:
            numbers = {k: v for k, v in (reported or {}).items() if isinstance(v, int | float)}
            mlflow.log_metrics({f"reported.{k}": float(v) for k, v in numbers.items()})
            mlflow.log_dict(evaluation.metrics_doc(), "evaluation/metrics.json")
        log_evaluation(run.info.run_id, evaluation.flat())
        candidate = _register(
            paths, params, Path(weights), run.info.run_id, evaluation, None, Path(weights).name
        )
        decision = _gate(paths, params, candidate["version"], evaluation)
    return {"version": candidate["version"], "decision": decision, "evaluation": evaluation}


def _register(
    paths: ProjectPaths,
    params: Params,
    weights: Path,
    run_id: str,
    evaluation: Evaluation,
    flow_run_id: str | None,
    source_weights: str | None = None,
) -> dict:
    name = params.promote.model_name
    existing = client.find_version(name, run_id)
    if existing is not None:
        log.info("candidate of run %s is already version %s", run_id, existing.version)
        return {
            "version": existing.version,
            "new": False,
            "run_id": run_id,
            "decision": existing.tags.get("gate.decision"),
            "rule": existing.tags.get("gate.rule"),
        }
    lineage = collect_lineage(paths, run_id, flow_run_id)
    if source_weights:
        lineage["source_weights"] = source_weights
    tags = {f"lineage.{k}": str(v) for k, v in lineage.items()}
    tags |= {f"metric.{k}": str(v) for k, v in evaluation.flat().items()}
    card.texts(paths.root)  # a project without its card's text fails before registering
    extra = {} if source_weights else version_artifacts(paths.evaluate_dir)
    tags |= runtime_tags(extra.get("parity"))
    version = client.log_and_register(weights, run_id, name, tags, extra, params.monitor.conf)
    why = f"new candidate of run {run_id}"
    aliases.move(paths.root, name, client.CHALLENGER, version, "register", why)
    log.info("registered %s version %s (alias %s)", name, version, client.CHALLENGER)
    return {"version": version, "new": True, "run_id": run_id, "decision": None}


def _gate(
    paths: ProjectPaths,
    params: Params,
    version: str,
    evaluation: Evaluation,
    measured: champion.Measured | None = None,
) -> dict:
    name = params.promote.model_name
    champ = client.alias_version(name, client.CHAMPION)
    if champ is not None and str(champ.version) == str(version):
        resumed = recording.resume(paths, name, version, evaluation)
        return resumed if resumed is not None else recording.already_champion(paths, name, version)
    champion_eval, ours, on = None, evaluation, []
    try:  # on the test photos the champion never trained on
        if champ is not None and str(champ.version) != str(version):
            ours, champion_eval, why = champion.comparison(
                paths, params, champ.version, evaluation, measured
            )
            on = [why]
        decision = decide(ours, champion_eval, params.promote, whole=evaluation)
        decision.reasons[1:1] = on
    except SkinTwinError as exc:  # no comparison possible: registered, not promoted
        value = float(evaluation.overall[params.promote.metric])
        decision = Decision(False, [str(exc)], params.promote.metric, value, None, NO_COMPARISON)
    tags = client.get_version(name, version).tags
    held = approval.held(paths, tags, version, champ)
    if held:  # named even when the gate said no: the team sees everything in its way
        decision.promote = False
        decision.reasons.append(
            f"change control: needs a human ({'; '.join(held)}); approve with "
            f'`skintwin promote --approve {version} --reason "..."`'
        )
    record = {
        **decision.as_dict(),
        "version": version,
        "champion_version": champ.version if champ else None,
        "champion_eval": champion_eval.metrics_doc() if champion_eval else None,
        "change_control": held,
    }
    folder, page = recording.card_for(paths, name, version, tags, evaluation, record)  # first
    if decision.promote:  # moved before the decision is recorded: a failed move is re-gated
        reason = "; ".join(decision.reasons)
        was = champ.version if champ else None  # a rollback meanwhile: refused, re-gated
        aliases.move(paths.root, name, client.CHAMPION, version, "promote", reason, record, was)
    shown = recording.keep(paths, name, version, record, decision.promote, folder, page)
    verdict = "PROMOTED to champion" if decision.promote else "not promoted"
    log.info("version %s %s: %s", version, verdict, "; ".join(decision.reasons))
    return {**decision.as_dict(), "version": version, "repeat": False, "model_card": shown}
