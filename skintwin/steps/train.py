"""train: fit a YOLO detector on the preprocessed dataset, tracked as one MLflow run.

The model is built from an Ultralytics YAML (no download) or loaded from a local `.pt`.
Ultralytics writes its run folder inside a temporary sibling of the output, which replaces
the output only when training completes: weights, `results.csv`, plots, and `run.json`
(the MLflow run id the evaluate stage and the registry continue from).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir, atomic_write_json
from skintwin.model.yolo import build_model
from skintwin.params import TrainParams
from skintwin.training.tracking import TRAINING_EXPERIMENT, clean_key, experiment_id, flatten

log = logging.getLogger(__name__)


def _log_epoch(trainer) -> None:
    import mlflow

    metrics = {**trainer.label_loss_items(trainer.tloss, prefix="train"), **trainer.metrics}
    metrics.update(trainer.lr)  # keys are already "lr/pg0", ...
    mlflow.log_metrics({clean_key(k): float(v) for k, v in metrics.items()}, step=trainer.epoch)


def run_train(data_yaml: Path, params: TrainParams, out: Path, extra_artifacts=()) -> dict:
    """Train and leave weights and run records in `out`.

    Returns:
        {"run_id", "weights", "best_fitness", "epochs", "loader_workers", "torch_threads"}.
    """
    import mlflow
    import torch

    model = build_model(params.model)
    model.add_callback("on_fit_epoch_end", _log_epoch)
    seen: dict[str, int] = {}  # PyTorch's threads as training ran them (none here after DDP)
    model.add_callback(
        "on_train_epoch_start", lambda _: seen.setdefault("threads", torch.get_num_threads())
    )
    args = {k: v for k, v in params.model_dump().items() if k not in ("model", "augment")}
    args.update(params.augment.model_dump())
    root = Path.cwd()
    with (
        atomic_dir(out, owner="train", inputs=[data_yaml.parent]) as tmp,
        mlflow.start_run(
            experiment_id=experiment_id(TRAINING_EXPERIMENT, root),
            run_name=f"train-{params.model.rsplit('/', 1)[-1]}",
            tags={
                "skintwin.stage": "train",
                "prefect.flow_run_id": os.environ.get("SKINTWIN_FLOW_RUN_ID", ""),
            },
        ) as run,
    ):
        mlflow.log_params({f"train.{k}": v for k, v in flatten("", params.model_dump()).items()})
        for path in extra_artifacts:
            if Path(path).is_file():
                mlflow.log_artifact(str(path), artifact_path="data")
        from skintwin.model.trainer import Trainer  # every core of a CPU put to work

        model.train(
            trainer=Trainer,
            data=str(data_yaml.resolve()),
            project=str(tmp.resolve()),
            name="yolo",
            exist_ok=True,
            verbose=True,
            **args,
        )
        _keep_outputs(tmp / "yolo", tmp)
        fitness = float(model.trainer.best_fitness or 0.0)
        loader = getattr(model.trainer, "train_loader", None)  # none here after DDP
        loaders = None if loader is None else int(loader.num_workers)
        mlflow.log_params(
            {"train.loader_workers": loaders, "train.torch_threads": seen.get("threads")}
        )
        record = {
            "run_id": run.info.run_id,
            "weights": "weights/best.pt",
            "best_fitness": fitness,
            "epochs": params.epochs,
            "loader_workers": loaders,
            "torch_threads": seen.get("threads"),
        }
        atomic_write_json(tmp / "run.json", record)
    log.info("trained %s: MLflow run %s", params.model, record["run_id"])
    return record


def _keep_outputs(run_dir: Path, out: Path) -> None:
    """Move Ultralytics' run folder's files into `out` (best.pt the only weights) and log
    its plots and results.csv to the active MLflow run."""
    import mlflow

    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise SkinTwinError(f"training produced no weights in {run_dir}")
    for name in ("last.pt",):  # only best.pt is the candidate; keep the output lean
        (run_dir / "weights" / name).unlink(missing_ok=True)
    for item in run_dir.iterdir():
        shutil.move(str(item), out / item.name)
    run_dir.rmdir()
    for plot in sorted(out.glob("*.png")) + sorted(out.glob("*.jpg")):
        mlflow.log_artifact(str(plot), artifact_path="training_plots")
    if (out / "results.csv").exists():
        mlflow.log_artifact(str(out / "results.csv"), artifact_path="training_plots")


def main(argv: list[str] | None = None) -> int:
    from skintwin.params import load_params
    from skintwin.runtime import run_main
    from skintwin.training.tracking import configure_tracking

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="preprocessed dataset folder")
    parser.add_argument("--out", required=True, help="model output folder")
    parser.add_argument("--data-report", help="validation report, logged with the run")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        data_yaml = Path(args.data) / "data.yaml"
        if not data_yaml.is_file():
            raise SkinTwinError(f"{data_yaml}: not found; run the preprocess stage first")
        configure_tracking(Path.cwd())
        # not dvc.lock: while this stage runs it still holds the previous model's entry
        # (the registered version's lineage takes the hashes from it after evaluate)
        extras = [p for p in (args.data_report, args.params) if p]
        run_train(data_yaml, params.train, Path(args.out), extras)

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
