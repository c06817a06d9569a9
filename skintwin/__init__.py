"""Skin-Twin MLOps: data validation, YOLO training, gated promotion and drift monitoring.

Importing this package does nothing but define names; the application's entry points are
loaded on first use.
"""

from __future__ import annotations

__all__ = ["ModelRegistry", "TrainingPipeline"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in __all__:
        from skintwin import app

        return getattr(app, name)
    raise AttributeError(name)
