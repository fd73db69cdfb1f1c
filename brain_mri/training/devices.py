"""What a run trains on: the distribution strategy, precision and XLA, and the report of it all."""

import shutil
import subprocess

import keras
import tensorflow as tf

from brain_mri.common.cluster import tf_config
from brain_mri.common.errors import PipelineError
from brain_mri.common.params import TrainCommon
from brain_mri.training.multi_worker import enable_keras_multi_worker


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
    mixed = config.mixed_precision == "on" or (config.mixed_precision == "auto" and on_gpu)
    policy = "mixed_float16" if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    xla = config.xla == "on" or (config.xla == "auto" and on_gpu)
    return policy, xla


def device_report(strategy: tf.distribute.Strategy, policy: str, xla: bool) -> dict[str, str]:
    """What the run trained on, for MLflow tags: device, GPU names and memory, replicas, precision."""
    gpus = tf.config.list_physical_devices("GPU")
    report = {
        "device": "GPU" if gpus else "CPU",
        "gpu_count": str(len(gpus)),
        "replicas": str(strategy.num_replicas_in_sync),
        "precision": policy,
        "xla": str(xla),
        "tensorflow_version": tf.__version__,
    }
    if gpus:
        names = {tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus}
        report["gpu_name"] = ", ".join(sorted(names))
    if gpus and shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]
        report["gpu_memory"] = "; ".join(subprocess.run(query, capture_output=True, text=True).stdout.split("\n")[:-1])
    return report
