"""The MLflow model registry side: register candidates, run the gate, move aliases, lineage.

Aliases, not stages: `champion` is production, `challenger` the latest candidate. Every
registered version carries its lineage (git commit, DVC hashes, params, MLflow run id,
Prefect flow-run id) and test metrics as tags; the gate's decision is recorded as tags and
as a JSON artifact on the candidate's run. Only a passed gate moves `champion`.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import warnings
from pathlib import Path

import yaml

from skintwin.errors import SkinTwinError
from skintwin.gate import Decision, decide
from skintwin.params import EvaluateParams, PromoteParams
from skintwin.tracking import flatten

CHAMPION, CHALLENGER = "champion", "challenger"
_PIP = ["ultralytics", "torch", "torchvision", "opencv-python-headless", "pandas<3", "pyyaml"]


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def collect_lineage(root: Path, run_id: str, flow_run_id: str | None = None) -> dict:
    """Where a candidate came from: code, data and model hashes, params, runs."""
    lock_path = root / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text()) if lock_path.exists() else {}
    stages = (lock or {}).get("stages", {})

    def out_md5(stage: str) -> str:
        outs = stages.get(stage, {}).get("outs", [])
        return outs[0].get("md5", "") if outs else ""

    params_path = root / "params.yaml"
    params = yaml.safe_load(params_path.read_text()) if params_path.exists() else {}
    return {
        "git_commit": _git(root, "rev-parse", "HEAD") or "none",
        "git_dirty": str(bool(_git(root, "status", "--porcelain", "--untracked-files=no"))),
        "dvc_data_md5": out_md5("preprocess"),
        "dvc_model_md5": out_md5("train"),
        "mlflow_run_id": run_id,
        "prefect_flow_run_id": flow_run_id or "",
        "params": json.dumps(params, sort_keys=True),
    }


def find_version(name: str, run_id: str):
    """The version already registered from this training run, if any."""
    try:
        found = _client().search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except Exception:  # registered model not created yet
        return None
    return max(found, key=lambda v: int(v.version)) if found else None


def alias_version(name: str, alias: str = CHAMPION):
    """The model version behind `alias`, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register_candidate(
    weights: Path, run_id: str, name: str, evaluation: dict, lineage: dict
) -> str:
    """Log `weights` as a pyfunc model in run `run_id`, register it, alias it `challenger`.

    Returns:
        The new version number (as a string, as MLflow gives it).
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    import skintwin

    if not Path(weights).is_file():
        raise SkinTwinError(f"{weights}: weights file not found")
    signature = ModelSignature(
        inputs=None,
        params=ParamSchema([ParamSpec("conf", "double", 0.25), ParamSpec("imgsz", "long", 0)]),
    )
    package = Path(skintwin.__file__).parent
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # MLflow suggests type hints and an input example; our inputs are images of any kind.
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(package / "mlflow_model.py"),
            artifacts={"weights": str(weights)},
            code_paths=[str(package)],
            registered_model_name=name,
            signature=signature,
            pip_requirements=_PIP,
        )
    version = str(info.registered_model_version)
    client = _client()
    tags = {f"lineage.{k}": str(v) for k, v in lineage.items()}
    tags.update(
        {f"metric.{k}": str(v) for k, v in flatten("test", evaluation.get("overall", {})).items()}
    )
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value[:4900])
    client.set_registered_model_alias(name, CHALLENGER, version)
    return version


def version_weights(name: str, version: str, dst: Path) -> Path:
    """Download a registered version's YOLO weights into `dst`."""
    import mlflow

    local = Path(
        mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(dst))
    )
    found = sorted(local.rglob("*.pt"))
    if not found:
        raise SkinTwinError(f"models:/{name}/{version} holds no .pt weights")
    return found[0]


def promote(
    name: str,
    version: str,
    candidate_eval: dict,
    dataset: Path,
    eval_params: EvaluateParams,
    gate: PromoteParams,
    device: str = "cpu",
) -> Decision:
    """Evaluate the champion now on the same test split, apply the gate, record the decision.

    `champion` moves to `version` only when the gate passes; otherwise it is untouched.
    """
    from skintwin.evaluation import evaluate_weights

    client = _client()
    champ = alias_version(name, CHAMPION)
    champion_eval = None
    if champ is not None and str(champ.version) != str(version):
        with tempfile.TemporaryDirectory() as tmp:
            weights = version_weights(name, champ.version, Path(tmp))
            champion_eval = evaluate_weights(weights, dataset, eval_params, device)
    decision = decide(candidate_eval, champion_eval, gate)
    record = {
        **decision.as_dict(),
        "version": version,
        "champion_version": champ.version if champ else None,
        "champion_eval": {k: champion_eval[k] for k in ("overall", "per_group")}
        if champion_eval
        else None,
    }
    mv = client.get_model_version(name, version)
    client.log_dict(mv.run_id, record, f"promotion/decision-v{version}.json")
    client.set_model_version_tag(
        name, version, "gate.decision", "promoted" if decision.promote else "rejected"
    )
    client.set_model_version_tag(name, version, "gate.reasons", "; ".join(decision.reasons))
    if champ is not None:
        client.set_model_version_tag(name, version, "gate.compared_to", str(champ.version))
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)
    return decision


def lineage_card(name: str, alias: str | None = CHAMPION, version: str | None = None) -> str:
    """A readable card: version, aliases, decision, metrics and where it came from."""
    client = _client()
    mv = client.get_model_version(name, version) if version else alias_version(name, alias)
    if mv is None:
        raise SkinTwinError(f"model '{name}' has no version with alias '{alias}'")
    tags = mv.tags
    params = json.loads(tags.get("lineage.params", "{}") or "{}")
    lines = [
        f"{name} v{mv.version}  aliases: {', '.join(mv.aliases) or '-'}",
        f"  decision   : {tags.get('gate.decision', '-')} — {tags.get('gate.reasons', '')}",
        "  metrics    : "
        + ", ".join(
            f"{k[len('metric.test.') :]}={v}"
            for k, v in sorted(tags.items())
            if k.startswith("metric.test.")
        ),
        f"  git commit : {tags.get('lineage.git_commit')}"
        f" (dirty: {tags.get('lineage.git_dirty')})",
        f"  data (DVC) : md5 {tags.get('lineage.dvc_data_md5')}",
        f"  model (DVC): md5 {tags.get('lineage.dvc_model_md5')}",
        f"  MLflow run : {tags.get('lineage.mlflow_run_id')}",
        f"  Prefect run: {tags.get('lineage.prefect_flow_run_id') or '-'}",
        f"  train      : {json.dumps(params.get('train', {}), sort_keys=True)}",
        f"  data.path  : {params.get('data', {}).get('path', '-')}",
    ]
    return "\n".join(lines)
