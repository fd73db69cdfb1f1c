"""Fitting a model resumably: a killed run resumes from its last epoch, with its best epoch and curve.

The resumable state of a run lives in `backup_dir`, keyed by its params and data; the
history of every epoch is kept there too, so that a resumed run replays the earlier epochs
to the callbacks that need them (the MLflow curve, early stopping and the best weights).
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from brain_mri.common.outputs import atomic_file
from brain_mri.common.params import TrainCommon
from brain_mri.common.repo import repo_root

# the per-epoch curves' names in MLflow: `epoch/loss`, `epoch/val_dice`, ... (why the prefix: on_epoch_end)
CURVE = "epoch/"


def backup_dir(stage: str, config: TrainCommon, data_manifest: Path) -> Path:
    """Where a run's resumable state lives: keyed by its params and data, at the real root.

    A killed run resumes only with the same params and data; `dvc exp run --temp` runs
    share the root, so the key keeps different experiments' states apart.
    """
    key = hashlib.sha256(json.dumps(config.model_dump(), sort_keys=True).encode() + data_manifest.read_bytes())
    return repo_root() / ".checkpoints" / f"{stage}-{key.hexdigest()[:16]}"


def replay_epochs(earlier: pd.DataFrame, before: int, on_epoch_end: Callable[[int, dict], None]) -> None:
    """Feed an earlier run's epochs (history rows, `epoch` from 0) before `before` to a callback.

    The last row of an epoch wins: a kill between writing the history and backing up the
    state reruns that epoch, and its second row replaces the first.
    """
    earlier = earlier.drop_duplicates("epoch", keep="last")
    for _, row in earlier[earlier["epoch"] < before].iterrows():
        on_epoch_end(int(row["epoch"]), row.drop("epoch").to_dict())


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
        self._log_earlier(before=self.params["epochs"])  # a run resumed after its last epoch trains none

    def _log_earlier(self, before: int) -> None:
        """Once: the earlier run's epochs up to the one training resumes at (which it reruns)."""
        if self.earlier is not None:
            replay_epochs(self.earlier, before, self.on_epoch_end)
            self.earlier = None

    def on_epoch_end(self, epoch, logs=None):
        # MLflow's run page draws one section per name prefix, in alphabetical order: `epoch/` (the
        # curves) comes before `test/` (the headline) and `training/` (the single-value summaries)
        mlflow.log_metrics({f"{CURVE}{name}": float(value) for name, value in (logs or {}).items()}, step=epoch)


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
        replay_epochs(self.earlier, before, super().on_epoch_end)
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
