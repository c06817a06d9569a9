"""The application's Python entry points, kept as Skin-Twin-AI calls them.

TrainingPipeline().run_full_pipeline(data_path="datasets/skin")
ModelRegistry().register_yolo_model(model_path="best.pt", metrics={...}, tags={...})
"""

from __future__ import annotations

from pathlib import Path

from skintwin.project import ProjectPaths


class TrainingPipeline:
    """Runs the Prefect training flow on a dataset folder."""

    def __init__(self, project_dir: str | Path | None = None) -> None:
        self.paths = ProjectPaths.find(project_dir)
        self.root = self.paths.root

    def run_full_pipeline(
        self, data_path: str | Path | None = None, force_train: bool = False
    ) -> dict:
        """Validate, preprocess, train, evaluate, register and gate; returns the flow's result."""
        from skintwin.runtime import configure_offline

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
        self.paths = ProjectPaths.find(project_dir)
        self.root = self.paths.root
        self.model_name = model_name

    def register_yolo_model(
        self, model_path: str | Path, metrics: dict | None = None, tags: dict | None = None
    ) -> dict:
        """Register a `.pt` trained elsewhere, then gate it like any candidate.

        The weights are evaluated on this project's test split first; the `metrics` given
        are recorded (as `reported.*`) but never decide a promotion.

        Returns:
            {"version", "decision": {...}, "evaluation": {"overall", "per_class", "per_group"}}.
        """
        from skintwin.registry.promotion import register_external
        from skintwin.runtime import configure_offline

        configure_offline(self.root)
        out = register_external(self.paths, Path(model_path), metrics, tags, self.model_name)
        e = out["evaluation"]
        evaluation = {"overall": e.overall, "per_class": e.per_class, "per_group": e.per_group}
        return {"version": out["version"], "decision": out["decision"], "evaluation": evaluation}
