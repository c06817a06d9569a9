"""Batch inference on Prefect's Dask task runner: a large folder scored with 1 and with 2
local worker processes in the same run, every image checked to be stored exactly once."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.common import Row

SIZES = {"small": {"images": 1000, "chunk": 100}, "default": {"images": 10_000, "chunk": 250}}


def _folder(work: Path, n: int) -> Path:
    """`n` generated photos (unlabelled), the images a clinic would send."""
    from skintwin.ops.scratch import SOURCE
    from skintwin.params import load_params
    from skintwin.steps.generate import run_generate

    gen = load_params(SOURCE / "params.yaml").generate
    out = work / "photos"
    gen = gen.model_copy(update={"n_images": n, "seed": 2024, "image_size": 256})
    run_generate(out, gen, labels=False, workers=os.cpu_count() or 1)
    return out


def _score(project: Path, folder: Path, workers: int, store: str) -> tuple[float, dict]:
    from flows.batch_inference import batch_inference_flow

    os.environ["SKINTWIN_MONITOR_DB"] = store
    start = time.perf_counter()
    summary = batch_inference_flow(
        str(folder), source=f"dask-{workers}", project_dir=str(project), dask_workers=workers
    )
    return time.perf_counter() - start, summary


def _champion(project: Path) -> None:
    """The trained version behind `champion` (the gate may have held it back: this
    benchmark measures scoring, not the decision)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from skintwin.params import load_params

    name = load_params(project / "params.yaml").promote.model_name
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    try:
        client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        newest = max(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        client.set_registered_model_alias(name, "champion", str(newest))


def run(work: Path, size: str, project: Path) -> list[Row]:
    import yaml

    from skintwin.monitoring.store import PredictionStore

    s = SIZES[size]
    _champion(project)
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["monitor"]["chunk_images"] = s["chunk"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    folder = _folder(work, s["images"])
    saved = os.environ.get("SKINTWIN_MONITOR_DB")
    seconds, exact = {}, {}
    try:
        for workers in (1, 2):
            store = f"sqlite:///{work / f'store-{workers}.db'}"
            seconds[workers], summary = _score(project, folder, workers, store)
            frame = PredictionStore(store).window()
            exact[workers] = (
                len(frame) == s["images"] == summary["images"]
                and frame["image_ref"].nunique() == s["images"]
            )
            print(f"dask bench: {workers} worker(s): {s['images']} images in "
                  f"{seconds[workers]:.1f} s, {len(frame)} rows, "
                  f"{frame['image_ref'].nunique()} distinct images")  # fmt: skip
    finally:
        if saved is None:
            os.environ.pop("SKINTWIN_MONITOR_DB", None)
        else:
            os.environ["SKINTWIN_MONITOR_DB"] = saved
    n = s["images"]
    return [
        Row(f"batch on Dask, 1 worker: images/s ({n} images)", n / seconds[1], "/s",
            target="each stored once", ok=exact[1]),
        Row(f"batch on Dask, 2 workers: images/s ({n} images)", n / seconds[2], "/s",
            n / seconds[1], "1 worker", f"{os.cpu_count()} cores", exact[2]),
    ]  # fmt: skip
