"""MLflow: where runs go, what every run is tagged with, and the run context of a stage."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
import tensorflow as tf

from stages.errors import PipelineError
from stages.repo import git_commit, repo_root

EXPERIMENT = "brain-mri"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store at the real repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def flatten(section: dict, prefix: str = "") -> dict[str, object]:
    """{'a': {'b': 1}} -> {'a.b': 1}: MLflow params are flat."""
    flat: dict[str, object] = {}
    for key, value in section.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def device_tags() -> dict[str, str]:
    """Which devices the run trained on: GPU names and count, or CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return {"device": "CPU", "gpu_count": "0"}
    names = sorted({tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus})
    return {"device": "GPU", "gpu_count": str(len(gpus)), "gpu_name": ", ".join(names)}


def run_tags(stage: str) -> dict[str, str]:
    tags = {
        "stage": stage,
        "git_commit": git_commit(),
        "tensorflow_version": tf.__version__,
        **device_tags(),
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def _use_experiment(uri: str) -> None:
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            # a local store keeps artifacts beside the database at the real root, also for
            # `dvc exp run --temp`, whose working directory is deleted afterwards
            local = uri.startswith("sqlite:")
            location = (repo_root() / "mlartifacts").as_uri() if local else None
            mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    except mlflow.exceptions.MlflowException as error:
        raise PipelineError(
            f"MLflow tracking store {uri} is not usable ({str(error).splitlines()[0][:200]}); "
            "start the server or unset MLFLOW_TRACKING_URI"
        ) from None
    mlflow.set_experiment(EXPERIMENT)


@contextmanager
def stage_run(stage: str, params: dict, system_metrics: bool = False) -> Iterator[mlflow.ActiveRun | None]:
    """One MLflow run for a stage, with its params section and the standard tags.

    The run is opened before training starts, so an unreachable store fails the stage at
    once. Only the chief of a multi-worker cluster logs; the other workers get None.
    """
    if not is_chief():
        yield None
        return
    _use_experiment(tracking_uri())
    run_name = f"{stage} {os.environ['DVC_EXP_NAME']}" if os.environ.get("DVC_EXP_NAME") else stage
    with mlflow.start_run(run_name=run_name, tags=run_tags(stage), log_system_metrics=system_metrics) as run:
        mlflow.log_params(flatten(params))
        yield run


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a worker other than worker 0."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    return task.get("type", "chief") == "chief" or (
        task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in config.get("cluster", {})
    )
