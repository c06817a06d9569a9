"""Training: evaluation on the test split, detection metrics, MLflow tracking set-up."""
