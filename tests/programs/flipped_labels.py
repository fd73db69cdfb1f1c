"""Training whose every epoch is worse on validation, killed at the start of a chosen epoch.

    python -m tests.programs.flipped_labels BACKUP MONITOR_FROM_EPOCH KILL_AT_EPOCH

Four epochs of a one-unit model whose validation labels are its training labels flipped, so
val_loss grows every epoch; the process kills itself (SIGKILL) at the start of epoch
KILL_AT_EPOCH (from 0; -1: never). Prints the epoch (from 1) whose val_loss the final model has.
"""

import os
import signal
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from brain_mri.common.params import parse_params
from brain_mri.training.fitting import fit
from tests.helpers import tiny_params


def restored_epoch(backup: Path, monitor_from_epoch: int, kill_at_epoch: int = -1) -> int:
    features = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    labels = (features[:, :1] > 0).astype("float32")
    history_csv = backup / "history.csv"

    def batches():
        # Keras starts one pass per epoch, after the earlier epochs' state is all saved
        logged = max(len(history_csv.read_text().splitlines()) - 1, 0) if history_csv.is_file() else 0
        if logged == kill_at_epoch:
            os.kill(os.getpid(), signal.SIGKILL)
        yield from zip(features.reshape(8, 8, 4), labels.reshape(8, 8, 1), strict=True)

    train = tf.data.Dataset.from_generator(batches, output_signature=(tf.TensorSpec((8, 4)), tf.TensorSpec((8, 1))))
    flipped = tf.data.Dataset.from_tensor_slices((features, 1 - labels)).batch(8)
    keras.utils.set_random_seed(0)
    changes = {"epochs": 4, "restore_best": True, "monitor_from_epoch": monitor_from_epoch}
    config = parse_params(tiny_params({"train_classifier": changes})).train_classifier
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="binary_crossentropy")
    history = fit(model, train, flipped, config, backup, tracked=False)
    assert history["epoch"].tolist() == [1, 2, 3, 4], history
    assert history["val_loss"].is_monotonic_increasing, "the set-up: every epoch is worse on val"
    final = model.evaluate(flipped, verbose=0)
    return int(history.loc[(history["val_loss"] - final).abs().idxmin(), "epoch"])


if __name__ == "__main__":
    print("restored epoch", restored_epoch(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
