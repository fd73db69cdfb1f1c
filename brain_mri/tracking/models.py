"""What a training run logs besides its per-epoch curve: summary metrics, the curves' picture, the model."""

from importlib.metadata import version

import keras
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import tensorflow as tf
from matplotlib.figure import Figure
from mlflow.models import infer_signature

from brain_mri.models.saving import for_inference


def log_training(history: pd.DataFrame, curves: Figure, tags: dict[str, str]) -> None:
    """The last and the best (lowest val_loss) epoch's metrics, the training curves and the device tags."""
    best = history.loc[history["val_loss"].idxmin()]
    mlflow.log_metrics({f"final_{name}": float(value) for name, value in history.iloc[-1].drop("epoch").items()})
    mlflow.log_metrics({f"best_{name}": float(value) for name, value in best.items()})
    mlflow.log_figure(curves, "training_curves.png")
    plt.close(curves)
    mlflow.set_tags(tags)


def log_keras_model(model: keras.Model, dataset: tf.data.Dataset, registered_name: str | None) -> None:
    """Log the model in MLflow's Keras flavour, with its input and output signature (from two inputs of dataset).

    With a registered name, the model also becomes a new version in the model registry.
    """
    sample = next(iter(dataset.take(1)))[0][:2].numpy()
    # a plain call, not model.predict: under multi_worker, predict gathers across workers,
    # and only the chief gets here
    signature = infer_signature(sample, keras.ops.convert_to_numpy(model(sample, training=False)))
    # named here, since MLflow cannot infer them for a model built with segmentation-models
    requirements = [f"{name}=={version(name)}" for name in ("keras", "tensorflow-cpu", "segmentation-models")]
    mlflow.keras.log_model(
        for_inference(model), name="model", signature=signature, pip_requirements=requirements, registered_model_name=registered_name
    )
