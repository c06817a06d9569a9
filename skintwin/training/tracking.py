"""MLflow set-up shared by the steps, the registry and monitoring: where runs and models go,
and the one way evaluation results are logged."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skintwin.project import ProjectPaths
from skintwin.redact import mask_text, mask_url

TRAINING_EXPERIMENT = "skin-twin-training"
MONITORING_EXPERIMENT = "skin-twin-monitoring"


def configure_tracking(root: Path, create: bool = True) -> str:
    """Use $MLFLOW_TRACKING_URI, else the embedded default `sqlite:///<root>/mlflow.db`.

    With `create=False` (commands that only read) a missing default database is an error
    rather than an empty new one.
    """
    import mlflow

    database = ProjectPaths(Path(root).resolve()).mlflow_db
    chosen = os.environ.get("MLFLOW_TRACKING_URI")
    uri = chosen or f"sqlite:///{database}"
    if not create and uri == f"sqlite:///{database}" and not database.is_file():
        from skintwin.errors import SkinTwinError

        raise SkinTwinError(
            f"{database}: no MLflow registry here yet; train first (skintwin train) "
            "or set MLFLOW_TRACKING_URI"
        )
    mlflow.set_tracking_uri(uri)
    if not chosen:  # MLflow copies the URI into the environment, where the next project of
        # this process, and the stages it starts, would take it for the user's choice
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    if uri.startswith("sqlite:///"):
        _create_tables_once(uri, Path(uri.removeprefix("sqlite:///")))
    return uri


_CREATED: set[str] = set()


def _create_tables_once(uri: str, database: Path) -> None:
    """Let one process at a time create or upgrade a SQLite store's tables.

    MLflow creates them on a process's first use of the store; two processes doing that at
    once (the train step, and the flow measuring the champion beside it) collide with
    "table ... already exists". Once they exist, opening the store only reads.
    """
    if uri in _CREATED:
        return
    import fcntl

    from mlflow.tracking import MlflowClient

    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        lock = open(database.with_name(database.name + "-init.lock"), "a")  # noqa: SIM115
    except OSError:  # a read-only folder: nothing here can create tables, nor need a lock
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        store = MlflowClient(tracking_uri=uri, registry_uri=uri)
        store.search_experiments(max_results=1)
        store.search_registered_models(max_results=1)
    _CREATED.add(uri)


def experiment_id(name: str, root: Path) -> str:
    """The experiment's id, creating it with a project-local artifact root when embedded."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if client.tracking_uri.startswith("sqlite:"):
        location = ProjectPaths(Path(root).resolve()).mlartifacts.as_uri()
    return client.create_experiment(name, artifact_location=location)


def clean_key(key: str) -> str:
    """An MLflow-safe metric name: 'metrics/mAP50(B)' -> 'metrics/mAP50'."""
    return re.sub(r"[^\w\-./ ]", "", key.replace("(B)", ""))


def flatten(prefix: str, value: object) -> dict[str, object]:
    """Nested dicts to dotted keys: {'train': {'epochs': 3}} -> {'train.epochs': 3}."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}


@contextmanager
def unreachable_as_error(uri: str) -> Iterator[None]:
    """Turn a tracking server that stays unreachable (after MLflow's own retries) into a
    SkinTwinError that names it; other MLflow errors pass through."""
    import requests
    from mlflow.exceptions import MlflowException

    from skintwin.errors import SkinTwinError

    try:
        yield
    except requests.exceptions.RequestException as exc:
        raise SkinTwinError(
            f"MLflow tracking server {mask_url(uri)} is unreachable: {mask_text(str(exc))}"
        ) from None
    except MlflowException as exc:
        if not _unreachable(exc):
            raise
        reason = mask_text(str(exc).splitlines()[0][:300])
        raise SkinTwinError(
            f"MLflow tracking server {mask_url(uri)} is unreachable: {reason}"
        ) from None


def _unreachable(exc: Exception) -> bool:
    """Whether an MLflow error says the server did not answer (its retries spent)."""
    return "API request" in str(exc) or "Max retries" in str(exc)


def log_evaluation(run_id: str, metrics: dict[str, float], report_dir: Path | None = None) -> None:
    """Log test metrics (already named, e.g. `test.mAP50`) and the report files to a run.

    The evaluate stage and the registration of an external `.pt` both call this, so every
    version's run carries the same metric names.
    """
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({clean_key(k): float(v) for k, v in metrics.items()})
        if report_dir is None:
            return
        for path in sorted(p for p in Path(report_dir).rglob("*") if p.is_file()):
            folder = path.parent.relative_to(report_dir).as_posix()
            mlflow.log_artifact(
                str(path), artifact_path="evaluation" + ("" if folder == "." else f"/{folder}")
            )


def require_run(run_id: str, uri: str, source: Path) -> None:
    """Fail before any work when the run `source` names is not in the tracking store (a
    fresh clone without `mlflow.db`, another MLFLOW_TRACKING_URI): the stage would write
    its outputs, then fail to log them."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from skintwin.errors import SkinTwinError

    with unreachable_as_error(uri):
        try:
            MlflowClient().get_run(run_id)
        except MlflowException as exc:
            if _unreachable(exc):  # unreachable_as_error names the server
                raise
            raise SkinTwinError(
                f"{source}: run {run_id} is not in the MLflow store at {mask_url(uri)}; "
                "use the store the train stage logged to (MLFLOW_TRACKING_URI), or retrain: "
                "`dvc repro --force train`"
            ) from None
