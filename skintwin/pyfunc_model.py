"""Old module path of the pyfunc class, kept for model versions registered before the
layered layout: their `python_model` file imports `skintwin.pyfunc_model`."""

from skintwin.model.pyfunc import SkinTwinDetector

__all__ = ["SkinTwinDetector"]
