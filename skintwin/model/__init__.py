"""Model: building and loading YOLO (once), the MLflow pyfunc, and LoadedModel."""
