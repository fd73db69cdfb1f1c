"""What a training run logs besides its per-epoch curve: summary metrics, the curves' picture, the model."""

import re
from collections.abc import Callable, Mapping
from importlib.metadata import packages_distributions, version

import keras
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import tensorflow as tf
from matplotlib.figure import Figure
from mlflow.models import infer_signature

from brain_mri.models.saving import for_inference


def log_training(history: pd.DataFrame, curves: Figure, tags: dict[str, str]) -> None:
    """The last and the best (lowest val_loss) epoch's metrics, the training curves and the device tags.

    The summaries are `training/final_*` and `training/best_*`: MLflow's run page shows them after the
    `epoch/` curves and the `test/` scores that evaluate adds (one section per prefix, alphabetical).
    """
    best = history.loc[history["val_loss"].idxmin()]
    last = history.iloc[-1].drop("epoch")
    mlflow.log_metrics({f"training/final_{name}": float(value) for name, value in last.items()})
    mlflow.log_metrics({f"training/best_{name}": float(value) for name, value in best.items()})
    mlflow.log_figure(curves, "training_curves.png")
    plt.close(curves)
    mlflow.set_tags(tags)


def model_requirements(distributions: Mapping[str, list[str]], version_of: Callable[[str], str] = version) -> list[str]:
    """The pip lines a logged model needs: Keras, segmentation-models and TensorFlow as installed here.

    TensorFlow is named by the distribution that provides the `tensorflow` module (`distributions`
    is `importlib.metadata.packages_distributions()`): tensorflow-cpu from requirements.txt,
    tensorflow from requirements-gpu.txt.
    """
    # as pip names it (the metadata may say tensorflow_cpu)
    tensorflow = re.sub(r"[-_.]+", "-", distributions["tensorflow"][0]).lower()
    return [f"{name}=={version_of(name)}" for name in ("keras", tensorflow, "segmentation-models")]


def log_keras_model(model: keras.Model, name: str, dataset: tf.data.Dataset, registered_name: str | None) -> None:
    """Log the model for inference as `name` in MLflow's Keras flavour, with its input and output
    signature (from two inputs of dataset); MLflow's own loaders load it (`mlflow.pyfunc.load_model`).

    With a registered name, the model also becomes a new version in the model registry.
    """
    sample = next(iter(dataset.take(1)))[0][:2].numpy()
    # a plain call, not model.predict: under multi_worker, predict gathers across workers,
    # and only the chief gets here
    signature = infer_signature(sample, keras.ops.convert_to_numpy(model(sample, training=False)))
    # named here, since MLflow cannot infer them for a model built with segmentation-models
    mlflow.keras.log_model(
        for_inference(model),
        name=name,
        signature=signature,
        pip_requirements=model_requirements(packages_distributions()),
        registered_model_name=registered_name,
    )
