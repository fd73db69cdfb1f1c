"""What a run trains on: the distribution strategy, precision and XLA, and the report of it all."""

import shutil
import subprocess

import keras
import tensorflow as tf

from brain_mri.common.cluster import tf_config
from brain_mri.common.errors import PipelineError
from brain_mri.common.params import TrainCommon
from brain_mri.training.multi_worker import enable_keras_multi_worker


def switched_on(setting: str, auto: bool) -> bool:
    """An auto | on | off param (brain_mri.common.params.Switch) resolved, `auto` taking the value given."""
    return setting == "on" or (setting == "auto" and auto)


def seed_and_determinism(config: TrainCommon) -> bool:
    """Seed Python, NumPy and TensorFlow; where `deterministic` asks (auto: on CPU only), make
    training bit-identical from run to run, so that `dvc repro` gives back the same model and metrics.

    On CPU: one inter-op thread. Ops that run side by side on that pool add gradients in whichever
    order they finish (measured on the tiny data: histories differed from the first epoch in the 4th
    decimal, with or without TensorFlow's op determinism); with one thread there, two runs are
    byte-identical, while the intra-op pool, oneDNN and tf.data's threads stay parallel (the cost:
    docs/benchmarks.md). TensorFlow's op determinism is not needed there, and it would run tf.data's
    parallel maps one at a time (their source is a Python generator, a stateful op).
    On GPU (`on`): TensorFlow's op determinism, for cuDNN's algorithm choice and atomics. `auto` leaves
    it off there: a lock made on one machine kind is not reproduced on another anyway.
    Call it first: the thread pools are fixed once TensorFlow starts.
    """
    keras.utils.set_random_seed(config.seed)
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    deterministic = switched_on(config.deterministic, auto=not on_gpu)
    if deterministic and on_gpu:
        tf.config.experimental.enable_op_determinism()
    elif deterministic:
        try:
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already started
            raise PipelineError(
                "deterministic training must be set up before TensorFlow starts; call seed_and_determinism first"
            ) from None
    return deterministic


def choose_strategy(kind: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy over all GPUs (or over several logical CPUs, when configured),
    else the default strategy; `multi_worker`: MultiWorkerMirroredStrategy from TF_CONFIG,
    with Keras' trainer fixed for it (brain_mri.training.multi_worker, keras-team/keras#20585).
    """
    if kind == "multi_worker":
        if not tf_config():
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
    mixed = switched_on(config.mixed_precision, auto=on_gpu)
    policy = "mixed_float16" if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    xla = switched_on(config.xla, auto=on_gpu)
    return policy, xla


def device_report(strategy: tf.distribute.Strategy, policy: str, xla: bool, deterministic: bool) -> dict[str, str]:
    """What the run trained on, for MLflow tags: device, GPU names and memory, replicas, precision, determinism."""
    gpus = tf.config.list_physical_devices("GPU")
    report = {
        "device": "GPU" if gpus else "CPU",
        "gpu_count": str(len(gpus)),
        "replicas": str(strategy.num_replicas_in_sync),
        "precision": policy,
        "xla": str(xla),
        "deterministic": str(deterministic),
        "tensorflow_version": tf.__version__,
    }
    if gpus:
        names = {tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus}
        report["gpu_name"] = ", ".join(sorted(names))
    if gpus and shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]
        report["gpu_memory"] = "; ".join(subprocess.run(query, capture_output=True, text=True).stdout.split("\n")[:-1])
    return report
