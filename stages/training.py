"""What both training stages share: devices and strategy, learning rate, callbacks, fitting, saving."""

import hashlib
import json
import math
import os
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

from stages.errors import PipelineError  # noqa: E402
from stages.multi_worker import enable_keras_multi_worker  # noqa: E402
from stages.outputs import atomic_file  # noqa: E402
from stages.params import TrainCommon  # noqa: E402
from stages.repo import repo_root  # noqa: E402
from stages.tracking import stage_run  # noqa: E402


def split_rows(manifest: pd.DataFrame, split: str) -> np.ndarray:
    return manifest.loc[manifest["split"] == split, "row"].to_numpy()


def choose_strategy(kind: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy over all GPUs (or over several logical CPUs, when configured),
    else the default strategy; `multi_worker`: MultiWorkerMirroredStrategy from TF_CONFIG,
    with Keras' trainer fixed for it (stages.multi_worker, keras-team/keras#20585).
    """
    if kind == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise PipelineError("strategy multi_worker needs TF_CONFIG describing the cluster; set it or use auto")
        enable_keras_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    if len(cpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in cpus])
    return tf.distribute.get_strategy()


def use_precision_and_xla(config: TrainCommon) -> tuple[str, bool]:
    """Set the Keras dtype policy; return (policy name, whether to JIT-compile with XLA)."""
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed = config.mixed_precision == "on" or (config.mixed_precision == "auto" and on_gpu)
    policy = "mixed_float16" if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    xla = config.xla == "on" or (config.xla == "auto" and on_gpu)
    return policy, xla


def learning_rate(config: TrainCommon, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate scaled linearly with the global batch, constant or cosine-decayed."""
    scaled = config.learning_rate * config.batch_size / config.lr_reference_batch
    if config.lr_schedule == "constant":
        return scaled
    return keras.optimizers.schedules.CosineDecay(scaled, decay_steps=max(1, config.epochs * steps_per_epoch))


def steps_per_epoch(rows: int, batch_size: int) -> int:
    return max(1, math.ceil(rows / batch_size))


def backup_dir(stage: str, config: TrainCommon, data_manifest: Path) -> Path:
    """Where a run's resumable state lives: keyed by its params and data, at the real root.

    A killed run resumes only with the same params and data; `dvc exp run --temp` runs
    share the root, so the key keeps different experiments' states apart.
    """
    key = hashlib.sha256(json.dumps(config.model_dump(), sort_keys=True).encode() + data_manifest.read_bytes())
    return repo_root() / ".checkpoints" / f"{stage}-{key.hexdigest()[:16]}"


def train_and_log(
    stage: str,
    config: TrainCommon,
    model: keras.Model,
    train,
    val,
    *,
    manifest: Path,
    model_path: Path,
    history_path: Path,
    metric: str,
    registered_name: str,
    device: dict[str, str],
) -> None:
    """Fit (resumably) inside the stage's MLflow run; then, on the chief, save and log everything.

    The model is registered under `registered_name` when the params ask for it.
    """
    backup = backup_dir(stage, config, manifest)
    with stage_run(stage, config.model_dump(), system_metrics=True) as run:
        history = fit(model, train, val, config, backup, tracked=run is not None)
        if run is not None:
            mlflow.set_tags(device)
            save_outputs(model, model_path, history, history_path, metric)
            sample = next(iter(val.take(1)))[0][:2].numpy()
            log_keras_model(model, sample, registered_name if config.register_model else None)
    shutil.rmtree(backup, ignore_errors=True)


def balanced_class_weight(labels: np.ndarray) -> dict[int, float]:
    """Weights inverse to class frequency, so each class counts as much in the loss."""
    counts = np.bincount(labels.astype(int), minlength=2)
    return {label: len(labels) / (2 * count) for label, count in enumerate(counts) if count}


class EpochMetricsToMlflow(keras.callbacks.Callback):
    """Each epoch's metrics to the active MLflow run, synchronously; a resumed run's earlier epochs first.

    Not mlflow.keras.MlflowCallback: it logs asynchronously and swallows logging errors, so
    a tracking server that went away would only be noticed when training ends. Here the
    first epoch whose metrics cannot be stored stops the run, right after that epoch's
    state was backed up to resume from. `earlier` (a history with an `epoch` column from
    0) is logged when training begins, so that a resumed run shows the whole curve.
    """

    def __init__(self, earlier: pd.DataFrame | None = None):
        super().__init__()
        self.earlier = earlier

    def on_epoch_begin(self, epoch, logs=None):
        self._log_earlier(before=epoch)

    def on_train_end(self, logs=None):
        self._log_earlier(before=None)  # a run resumed after its last epoch trains none

    def _log_earlier(self, before: int | None) -> None:
        """Once: the earlier run's epochs up to the one training resumes at (which it reruns)."""
        if self.earlier is None:
            return
        earlier = self.earlier.drop_duplicates("epoch", keep="last")
        if before is not None:
            earlier = earlier[earlier["epoch"] < before]
        for _, row in earlier.iterrows():
            self.on_epoch_end(int(row["epoch"]), row.drop("epoch").to_dict())
        self.earlier = None

    def on_epoch_end(self, epoch, logs=None):
        mlflow.log_metrics({name: float(value) for name, value in (logs or {}).items()}, step=epoch)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping whose best epoch, best weights and patience count survive a kill.

    BackupAndRestore saves the model and the optimizer, not this callback: a resumed run would
    restore the best of the epochs after the resume only. Here each new best's weights are
    saved beside the backup, and a resumed run first replays the earlier epochs' val_loss
    from `earlier` (their history, `epoch` from 0), so it ends as an uninterrupted run would.
    It must come after BackupAndRestore: when a kill falls between their saves, the epoch's
    weights are the ones training resumes from.
    """

    def __init__(self, backup: Path, earlier: pd.DataFrame | None, **kwargs):
        super().__init__(**kwargs)
        self.backup = backup
        self.earlier = earlier

    def on_epoch_begin(self, epoch, logs=None):
        self._replay(before=epoch)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.restore_best_weights and self.best_epoch == epoch and self.best_weights is not None:
            self._save_best(epoch)

    def on_train_end(self, logs=None):
        self._replay(before=self.params["epochs"])  # a run resumed after its last epoch trains none
        super().on_train_end(logs)

    def _best_path(self, epoch: int) -> Path:
        return self.backup / f"best-epoch-{epoch}.npz"

    def _save_best(self, epoch: int) -> None:
        with atomic_file(self._best_path(epoch)) as partial:
            np.savez(partial, *self.best_weights)
        for older in self.backup.glob("best-epoch-*.npz"):
            if older != self._best_path(epoch):
                older.unlink(missing_ok=True)

    def _replay(self, before: int) -> None:
        """Once: the earlier run's epochs up to the one training resumes at (which it reruns)."""
        if self.earlier is None:
            return
        earlier = self.earlier.drop_duplicates("epoch", keep="last")
        for _, row in earlier[earlier["epoch"] < before].iterrows():
            super().on_epoch_end(int(row["epoch"]), {self.monitor: row[self.monitor]})
        self.earlier = None
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch < before - 1:
            # the replay took the weights training resumes from, those of the last epoch
            with np.load(self._best_path(self.best_epoch)) as saved:
                self.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]


def fit(
    model: keras.Model,
    train,
    val,
    config: TrainCommon,
    backup: Path,
    tracked: bool = True,
) -> pd.DataFrame:
    """Train with validation every epoch, resumable; per-epoch metrics go to MLflow when tracked.

    Returns the history of all epochs, also those of an earlier run that was killed and
    that this one resumed.
    """
    backup.mkdir(parents=True, exist_ok=True)
    history_csv = backup / "history.csv"
    # a run killed in its first epoch leaves the file empty
    earlier = pd.read_csv(history_csv) if history_csv.is_file() and history_csv.stat().st_size else None
    # the history row is written before the state is backed up: a kill in between reruns
    # that epoch, and its second row replaces the first
    callbacks = [
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        # two checkpoints: a kill while the latest is being written leaves the previous one
        keras.callbacks.BackupAndRestore(str(backup / "state"), double_checkpoint=True),
    ]
    if tracked:
        callbacks.append(EpochMetricsToMlflow(earlier))
    patience = config.early_stopping_patience or config.epochs
    if config.early_stopping_patience or config.restore_best:
        # with a tiny validation split an early, barely trained epoch can have the best val_loss by
        # chance; monitor_from_epoch keeps those out of the running
        callbacks.append(
            ResumableEarlyStopping(
                backup,
                earlier,
                monitor="val_loss",
                patience=patience,
                restore_best_weights=config.restore_best,
                start_from_epoch=config.monitor_from_epoch,
            )
        )
    # the dataset shuffles itself (pipelines.py); shuffle=False only stops Keras warning that it would not
    model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks, shuffle=False, verbose=2)
    history = pd.read_csv(history_csv).drop_duplicates("epoch", keep="last")
    history["epoch"] += 1
    return history.reset_index(drop=True)


def device_report(strategy: tf.distribute.Strategy, policy: str, xla: bool) -> dict[str, str]:
    """What the run trained on, for MLflow tags: replicas, precision, GPU names and memory."""
    report = {"replicas": str(strategy.num_replicas_in_sync), "precision": policy, "xla": str(xla)}
    if tf.config.list_physical_devices("GPU") and shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]
        report["gpu_memory"] = "; ".join(subprocess.run(query, capture_output=True, text=True).stdout.split("\n")[:-1])
    return report


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


def save_outputs(model: keras.Model, model_path: Path, history: pd.DataFrame, history_path: Path, metric: str) -> None:
    """Write the model and its history (temporary name, then rename) and log both to MLflow."""
    with atomic_file(model_path) as partial:
        model.save(partial)
    with atomic_file(history_path) as partial:
        history.to_csv(partial, index=False)
    best = history.loc[history["val_loss"].idxmin()]
    mlflow.log_metrics({f"final_{name}": float(value) for name, value in history.iloc[-1].drop("epoch").items()})
    mlflow.log_metrics({f"best_{name}": float(value) for name, value in best.items()})
    figure = plot_history(history, metric)
    mlflow.log_figure(figure, "training_curves.png")
    plt.close(figure)


def log_keras_model(model: keras.Model, sample: np.ndarray, registered_name: str | None) -> None:
    """Log the model in MLflow's Keras flavour, with its input and output signature.

    With a registered name, the model also becomes a new version in the model registry.
    """
    # a plain call, not model.predict: under multi_worker, predict gathers across workers,
    # and only the chief gets here
    signature = infer_signature(sample, keras.ops.convert_to_numpy(model(sample, training=False)))
    # named here, since MLflow cannot infer them for a model built with segmentation-models
    requirements = [f"{name}=={version(name)}" for name in ("keras", "tensorflow-cpu", "segmentation-models")]
    mlflow.keras.log_model(
        model, name="model", signature=signature, pip_requirements=requirements, registered_model_name=registered_name
    )
