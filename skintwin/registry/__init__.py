"""Registry: the MLflow model registry, lineage, the promotion gate and promotion itself."""
