"""How long and how fast to train: steps per epoch, the learning rate, class weights."""

import math

import keras
import numpy as np

from brain_mri.common.params import TrainCommon


def steps_per_epoch(rows: int, batch_size: int) -> int:
    return max(1, math.ceil(rows / batch_size))


def learning_rate(config: TrainCommon, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate scaled linearly with the global batch, constant or cosine-decayed."""
    scaled = config.learning_rate * config.batch_size / config.lr_reference_batch
    if config.lr_schedule == "constant":
        return scaled
    return keras.optimizers.schedules.CosineDecay(scaled, decay_steps=max(1, config.epochs * steps_per_epoch))


def balanced_class_weight(labels: np.ndarray) -> dict[int, float]:
    """Weights inverse to class frequency, so each class counts as much in the loss."""
    counts = np.bincount(labels.astype(int), minlength=2)
    return {label: len(labels) / (2 * count) for label, count in enumerate(counts) if count}
