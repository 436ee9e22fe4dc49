"""The code of ganforge's MLflow model (MLflow's "models from code"): MLflow runs this file
to build the model when it loads one, instead of unpickling an object."""

from mlflow.models import set_model

from pipelines.inference.pyfunc import GeneratorModel

set_model(GeneratorModel())
