"""The application's Python entry points, kept as Skin-Twin-AI calls them.

TrainingPipeline().run_full_pipeline(data_path="datasets/skin")
ModelRegistry().register_yolo_model(model_path="best.pt", metrics={...}, tags={...})
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.project import resolve_root

log = logging.getLogger(__name__)


class TrainingPipeline:
    """Runs the Prefect training flow on a dataset folder."""

    def __init__(self, project_dir: str | Path | None = None) -> None:
        self.root = resolve_root(project_dir)

    def run_full_pipeline(
        self, data_path: str | Path | None = None, force_train: bool = False
    ) -> dict:
        """Validate, preprocess, train, evaluate, register and gate; returns the flow's result."""
        from skintwin.env import configure_offline

        configure_offline(self.root)
        from flows.training import training_flow

        return training_flow(
            data_path=str(data_path) if data_path else None,
            project_dir=str(self.root),
            force_train=force_train,
        )


class ModelRegistry:
    """Registry operations for models trained outside the pipeline."""

    def __init__(
        self, project_dir: str | Path | None = None, model_name: str | None = None
    ) -> None:
        from skintwin.params import load_params

        self.root = resolve_root(project_dir)
        self.params = load_params(self.root / "params.yaml")
        self.model_name = model_name or self.params.promote.model_name

    def register_yolo_model(
        self, model_path: str | Path, metrics: dict | None = None, tags: dict | None = None
    ) -> dict:
        """Register a `.pt` trained elsewhere, then gate it like any candidate.

        The weights are evaluated on this project's test split before the gate; the
        `metrics` given are recorded (as `reported.*`) but never decide a promotion.

        Returns:
            {"version", "decision": {...}, "evaluation": {...}}.
        """
        import mlflow

        from skintwin import registry
        from skintwin.env import configure_offline
        from skintwin.evaluation import evaluate_weights
        from skintwin.tracking import TRAINING_EXPERIMENT, configure_tracking, experiment_id

        configure_offline(self.root)
        weights = Path(model_path)
        if not weights.is_file():
            raise SkinTwinError(f"{weights}: model file not found")
        dataset = self.root / "data/processed"
        if not (dataset / "reference_features.parquet").is_file():
            raise SkinTwinError(f"{dataset}: no test split; run `dvc repro preprocess` first")
        configure_tracking(self.root)
        evaluation = evaluate_weights(
            weights, dataset, self.params.evaluate, self.params.train.device
        )
        with mlflow.start_run(
            experiment_id=experiment_id(TRAINING_EXPERIMENT, self.root),
            run_name=f"external-{weights.stem}",
            tags={"skintwin.source": "external", **(tags or {})},
        ) as run:
            mlflow.log_metrics(
                {
                    f"reported.{k}": float(v)
                    for k, v in (metrics or {}).items()
                    if isinstance(v, int | float)
                }
            )
            mlflow.log_metrics(
                {f"test.{k}".replace("-", "_"): float(v) for k, v in evaluation["overall"].items()}
            )
            mlflow.log_dict(evaluation | {"confusion": None}, "evaluation/metrics.json")
        lineage = registry.collect_lineage(self.root, run.info.run_id)
        lineage["source_weights"] = weights.name
        version = registry.register_candidate(
            weights, run.info.run_id, self.model_name, evaluation, lineage
        )
        decision = registry.promote(
            self.model_name,
            version,
            evaluation,
            dataset,
            self.params.evaluate,
            self.params.promote,
            self.params.train.device,
        )
        log.info(
            "external model registered as version %s: %s", version, json.dumps(decision.reasons)
        )
        return {
            "version": version,
            "decision": decision.as_dict(),
            "evaluation": {k: evaluation[k] for k in ("overall", "per_group", "per_class")},
        }
