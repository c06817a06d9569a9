"""Model versions registered before the layered layout still load and predict.

The version is registered by the code of the last flat-layout commit (taken from git
history), in its own process; the current code then loads it through the loader, the
service's path and a plain `mlflow.pyfunc.load_model`.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
FLAT_LAYOUT_COMMIT = "02c72e9"  # the last commit before skintwin/ became sub-packages
NAME = "legacy-detector"

_REGISTER = """
import sys, mlflow
from skintwin.registry import register_candidate  # the flat layout's module
assert 'old' in sys.modules['skintwin'].__file__
with mlflow.start_run() as run:
    pass
print(register_candidate(sys.argv[1], run.info.run_id, "legacy-detector", {"overall": {}}, {}))
"""


def _old_package(dst: Path) -> Path:
    from tests.conftest import REPO

    proc = subprocess.run(
        ["git", "-C", str(REPO), "archive", FLAT_LAYOUT_COMMIT, "skintwin"],
        capture_output=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"commit {FLAT_LAYOUT_COMMIT} not in this clone's history (shallow clone?)")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dst, filter="data")
    return dst


def test_version_registered_by_the_flat_layout_loads(champion: Path, tmp_path: Path) -> None:
    import mlflow

    from skintwin.model.loaded import LoadedModel
    from skintwin.registry.client import download_version

    old = _old_package(tmp_path / "old")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(os.environ, PYTHONPATH=str(old), MLFLOW_TRACKING_URI=uri)
    weights = champion / "models/train/weights/best.pt"
    proc = subprocess.run(
        [sys.executable, "-c", _REGISTER, str(weights)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "1"

    image = next((champion / "batches/normal/images").iterdir())
    previous = os.environ["MLFLOW_TRACKING_URI"]  # set_tracking_uri overwrites the variable
    mlflow.set_tracking_uri(uri)
    try:
        folder = download_version(NAME, "1", tmp_path / "download")
        assert "skintwin.pyfunc_model" in (folder / "mlflow_model.py").read_text()
        loaded = LoadedModel.from_pyfunc_dir(folder, NAME, "1", "champion", "registry")
        assert isinstance(loaded.predict(str(image))[0]["detections"], list)
        plain = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
        assert plain.predict(image.read_bytes())[0]["width"] == 128
    finally:
        mlflow.set_tracking_uri(previous)
        os.environ["MLFLOW_TRACKING_URI"] = previous
