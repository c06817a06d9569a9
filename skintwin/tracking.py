"""MLflow set-up shared by the steps and the registry: where runs and models go."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TRAINING_EXPERIMENT = "skin-twin-training"


def configure_tracking(root: Path) -> str:
    """Use $MLFLOW_TRACKING_URI, else the embedded default `sqlite:///<root>/mlflow.db`."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    return uri


def experiment_id(name: str, root: Path) -> str:
    """The experiment's id, creating it with a project-local artifact root when embedded."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if client.tracking_uri.startswith("sqlite:"):
        location = (root / "mlartifacts").resolve().as_uri()
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
        raise SkinTwinError(f"MLflow tracking server {uri} is unreachable: {exc}") from None
    except MlflowException as exc:
        if "API request" not in str(exc) and "Max retries" not in str(exc):
            raise
        raise SkinTwinError(
            f"MLflow tracking server {uri} is unreachable: {str(exc).splitlines()[0][:300]}"
        ) from None
