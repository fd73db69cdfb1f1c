"""What both training stages share: seeding, fitting with logs, saving, and the history."""

from importlib.metadata import version
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

from stages.outputs import atomic_file  # noqa: E402


def split_rows(manifest: pd.DataFrame, split: str) -> np.ndarray:
    return manifest.loc[manifest["split"] == split, "row"].to_numpy()


def fit(model: keras.Model, train, val, epochs: int, callbacks: list) -> pd.DataFrame:
    """Train with validation every epoch; per-epoch metrics go to MLflow; returns the history."""
    history = model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        callbacks=[mlflow.keras.MlflowCallback(log_every_epoch=True), *callbacks],
        verbose=2,
    )
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame


def plot_history(history: pd.DataFrame, metric: str) -> plt.Figure:
    """Loss and one metric, train against validation, by epoch."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, ("loss", metric), strict=True):
        axis.plot(history["epoch"], history[name], label="train")
        axis.plot(history["epoch"], history[f"val_{name}"], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    figure.tight_layout()
    return figure


def save_outputs(
    model: keras.Model,
    model_path: Path,
    history: pd.DataFrame,
    history_path: Path,
    metric: str,
) -> None:
    """Write the model and its history (temporary name, then rename) and log both to MLflow."""
    with atomic_file(model_path) as partial:
        model.save(partial)
    with atomic_file(history_path) as partial:
        history.to_csv(partial, index=False)
    final = history.iloc[-1].drop("epoch")
    mlflow.log_metrics({f"final_{name}": float(value) for name, value in final.items()})
    figure = plot_history(history, metric)
    mlflow.log_figure(figure, "training_curves.png")
    plt.close(figure)


def log_keras_model(model: keras.Model, sample: np.ndarray) -> None:
    """Log the model in MLflow's Keras flavour, with its input and output signature."""
    signature = infer_signature(sample, model.predict(sample, verbose=0))
    # named here, since MLflow cannot infer them for a model built with segmentation-models
    requirements = [f"{name}=={version(name)}" for name in ("keras", "tensorflow-cpu", "segmentation-models")]
    mlflow.keras.log_model(model, name="model", signature=signature, pip_requirements=requirements)
