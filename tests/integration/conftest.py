"""Integration fixtures: one temporary Prefect API and one tiny champion for the session."""

from __future__ import annotations

import os

import pytest

from tests.conftest import dvc, make_project


@pytest.fixture(scope="session")
def prefect_api():
    """Real Prefect flow runs against a throwaway database (not the user's)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def champion(tmp_path_factory, base_params, prefect_api):
    """A tiny project whose 1-epoch model is the champion; batches ready to score."""
    import copy

    import mlflow

    from skintwin.params import parse_params
    from skintwin.project import ProjectPaths
    from skintwin.registry import promotion
    from skintwin.steps.generate import run_generate

    params = copy.deepcopy(base_params)
    params["generate"].update(n_images=60, image_size=128, seed=3)
    params["validate"]["min_images_per_class"] = 3
    params["preprocess"]["min_test_per_group"] = 0
    params["train"].update(epochs=1, imgsz=64, batch=8, workers=0, plots=False)
    params["evaluate"].update(imgsz=64, bootstrap=200)
    params["promote"].update(floor=0.0, min_group_images=3, bootstrap=200)
    params["monitor"]["imgsz"] = 64
    root = make_project(tmp_path_factory.mktemp("champion") / "project", params)
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    dvc("repro", cwd=root)
    paths = ProjectPaths(root)
    assert promotion.gate(paths, promotion.register(paths))["promote"]
    gen = parse_params(params).generate
    for name, shift, seed in (("normal", "none", 101), ("lighting", "lighting", 102)):
        run_generate(
            root / "batches" / name,
            gen.model_copy(update={"n_images": 40, "seed": seed}),
            shift=shift,
            labels=False,
            workers=1,
        )
    yield root
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old
