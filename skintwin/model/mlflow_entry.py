"""Model-from-code entry for MLflow: the file `mlflow.pyfunc.log_model` is given.

MLflow executes this file when the model is logged or loaded; nothing imports it.
"""

from mlflow.models import set_model

from skintwin.model.pyfunc import SkinTwinDetector

set_model(SkinTwinDetector())
