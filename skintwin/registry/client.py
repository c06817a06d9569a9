"""The MLflow model registry: log and register versions, look up aliases, fetch weights.

Aliases, not stages: `champion` is production, `challenger` the latest candidate. This
module writes versions and tags; aliases move only through `aliases.move`, which records
each move in the registry history. Promotion decides what is written.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from skintwin.errors import SkinTwinError

CHAMPION, CHALLENGER = "champion", "challenger"
TAG_MAX = 100_000  # MLflow 3's limit on a registry tag's value (MLflow 2's was 5,000)
# What the pyfunc imports, pinned to the versions that produced the model.
_REQUIREMENTS = (
    "ultralytics",
    "torch",
    "torchvision",
    "opencv-python-headless",
    "numpy",
    "pandas",
    "pillow",
    "pyyaml",
    "pydantic",
)


def client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def pinned_requirements() -> list[str]:
    """`name==version` for each runtime dependency installed here (unpinned if absent)."""
    out = []
    for dist in _REQUIREMENTS:
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            out.append(dist)
    return out


def find_version(name: str, run_id: str):
    """The version already registered from this training run, if any."""
    from mlflow.exceptions import MlflowException

    try:
        found = client().search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException:  # registered model not created yet
        return None
    return max(found, key=lambda v: int(v.version)) if found else None


def alias_version(name: str, alias: str = CHAMPION):
    """The model version behind `alias`, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def get_model_tag(name: str, key: str) -> str | None:
    """A registered model's tag, or None (also when the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_registered_model(name).tags.get(key)
    except MlflowException:
        return None


def get_version(name: str, version: str):
    """A model version; a clear error when it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version(name, str(version))
    except MlflowException:
        raise SkinTwinError(f"model '{name}' has no version {version}") from None


def log_and_register(
    weights: Path,
    run_id: str,
    name: str,
    tags: dict[str, str],
    extra: dict | None = None,
    conf: float = 0.25,
) -> str:
    """Log `weights` as a pyfunc model in run `run_id`, register it, tag it (aliases are
    moved by `aliases.move`). `conf`: the threshold a caller who names none gets (the
    project's `monitor.conf`, as the service's), e.g. from `mlflow models serve`.
    Returns the new version number (a string, as MLflow gives it)."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    if not Path(weights).is_file():
        raise SkinTwinError(f"{weights}: weights file not found")
    too_long = [k for k, v in tags.items() if k.startswith("lineage.") and len(str(v)) > TAG_MAX]
    if too_long:  # cut, change control could compare nothing: refused before anything is logged
        raise SkinTwinError(
            f"{too_long[0]}: {len(str(tags[too_long[0]]))} characters, over the registry's "
            f"{TAG_MAX} for a tag; shorten params.yaml"
        )
    signature = ModelSignature(
        inputs=None,
        params=ParamSchema(
            [ParamSpec("conf", "double", float(conf)), ParamSpec("imgsz", "long", 0)]
        ),
    )
    package = Path(__file__).resolve().parents[1]
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # MLflow suggests type hints and an input example; our inputs are images of any kind.
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(package / "model" / "mlflow_entry.py"),
            artifacts={"weights": str(weights)} | {k: str(v) for k, v in (extra or {}).items()},
            code_paths=[str(package)],
            signature=signature,
            pip_requirements=pinned_requirements(),
        )
    # the tags come with the version in one write (not a round trip per tag, ~100 of them)
    # lineage whole (change control reads it back); the figures and reasons are for people
    tags = {k: str(v) if k.startswith("lineage.") else str(v)[:4900] for k, v in tags.items()}
    return str(mlflow.register_model(info.model_uri, name, tags=tags).version)


def download_version(name: str, version: str, dst: Path) -> Path:
    """Download a registered version's model folder (MLmodel, artifacts, code) into `dst`."""
    import mlflow

    return Path(
        mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(dst))
    )


def version_weights(name: str, version: str, dst: Path) -> Path:
    """Download a registered version and return its YOLO weights file."""
    found = sorted(download_version(name, version, dst).rglob("*.pt"))
    if not found:
        raise SkinTwinError(f"models:/{name}/{version} holds no .pt weights")
    return found[0]


def record_decision(name: str, version: str, record: dict, promote: bool) -> None:
    """Tags and a JSON artifact with the gate's decision (the caller moves `champion`)."""
    mlflow_client = client()
    mv = mlflow_client.get_model_version(name, version)
    mlflow_client.log_dict(mv.run_id, record, f"promotion/decision-v{version}.json")
    tags = {
        "gate.decision": "promoted" if promote else "rejected",
        "gate.reasons": "; ".join(record["reasons"]),
        # a group's reason may hold "; " itself: the overall ones are kept apart, whole
        "gate.overall_reasons": "; ".join(
            r for r in record["reasons"] if not r.startswith("tone group")
        ),
        "gate.rule": record.get("rule", ""),
    }
    if record.get("champion_version"):
        tags["gate.compared_to"] = str(record["champion_version"])
    if record.get("overall"):
        o = record["overall"]
        tags["gate.delta"] = f"{o['delta']:+.4f} (CI {o['lo']:+.4f} to {o['hi']:+.4f})"
    for group, g in (record.get("groups") or {}).items():
        tags[f"gate.group.{group}"] = f"{g['verdict']}: {g['why']}"
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, value[:4900])


def log_model_card(name: str, version: str, folder: Path) -> None:
    """The card's files as artifacts of the version's run, and a tag that points to them."""
    mlflow_client = client()
    mv = mlflow_client.get_model_version(name, version)
    mlflow_client.log_artifacts(mv.run_id, str(folder), "model_card")
    where = f"runs:/{mv.run_id}/model_card/model_card.html"
    mlflow_client.set_model_version_tag(name, version, "model_card", where)
