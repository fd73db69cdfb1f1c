"""Keras 3's `Model.fit` under MultiWorkerMirroredStrategy: the two fixes it needs.

keras-team/keras#20585 (open): Keras 3.15 crashes under MultiWorkerMirroredStrategy in two
places of its TensorFlow trainer, both reductions across workers:
- before the first step it builds the model from one batch and reduces the whole
  (images, labels) tuple with one `strategy.reduce` call, which takes a single value
  ("Attempt to convert a value (PerReplica ...) to a Tensor");
- after each step it averages the per-replica logs with `strategy.reduce(..., axis=0)`,
  but the logs are scalars ("Invalid reduction dimension 0 for input with 0 dimensions").
Both are replaced by the same reductions done value by value and without an axis. The
fixes are applied only for `strategy: multi_worker`, and refuse to apply to a Keras whose
trainer no longer has the functions they replace.
"""

import keras
import tensorflow as tf
from keras import tree
from keras.src.backend.tensorflow import trainer as tf_trainer

from brain_mri.common.errors import PipelineError

_REPLACED = ("reduce_per_replica", "_collective_all_reduce_multi_worker")


def _mean_over_replicas(strategy: tf.distribute.Strategy, value):
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.reduce("MEAN", value, axis=None)
    return value


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Keras' own, with the first batch reduced value by value."""
    if self._distribute_strategy is None:
        return
    if iterator is not None:
        for _, _, batches in iterator:
            batch = next(batches)
            data_batch = tree.map_structure(lambda value: _mean_over_replicas(self.distribute_strategy, value), batch)
            break
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def enable_keras_multi_worker() -> None:
    """Patch Keras' TensorFlow trainer so that fit, evaluate and predict run on several workers."""
    trainer = tf_trainer.TensorFlowTrainer
    if not all(hasattr(tf_trainer, name) for name in _REPLACED) or not hasattr(trainer, "_maybe_symbolic_build"):
        raise PipelineError(
            f"strategy multi_worker: the fixes for keras-team/keras#20585 do not apply to Keras {keras.__version__}; "
            "install the pinned Keras from requirements.txt or use strategy auto"
        )
    if getattr(tf_trainer.reduce_per_replica, "fixed_for_multi_worker", False):
        return
    keras_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if tf_trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tree.map_structure(lambda value: _mean_over_replicas(strategy, value), values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.fixed_for_multi_worker = True
    tf_trainer.reduce_per_replica = reduce_per_replica
    trainer._maybe_symbolic_build = _maybe_symbolic_build
