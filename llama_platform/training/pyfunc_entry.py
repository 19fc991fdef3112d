"""MLflow "models from code" entry: the file MLflow copies into the logged model and runs to load it."""

from mlflow.models import set_model

from llama_platform.training.mlflow_model import TriagePyfunc

set_model(TriagePyfunc())
