"""Test scores where a person compares them: on the training run of each model, and on the parent.

A model file is tied to the run that trained it by the file's SHA-256, a tag that training sets
and evaluate looks up within its own pipeline execution; so a param of the training run and its
test score sit on one run.
"""

import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric

from brain_mri.data.sources import sha256_of

MODEL_FILE_TAG = "model_file_sha256"


def tag_model_file(path: Path) -> None:
    """Tag the active (training) run with the SHA-256 of the model file it wrote."""
    mlflow.set_tag(MODEL_FILE_TAG, sha256_of(path))


def training_run_of(path: Path, experiment_id: str, parent: str | None) -> str | None:
    """The run that wrote this model file in the same pipeline execution (the same parent run), or None.

    An experiment that reruns evaluate alone (a changed threshold) reuses the model of an earlier
    execution: its scores belong to its own runs, not to a training run whose params they did not have.
    """
    same_execution = f" AND tags.`mlflow.parentRunId` = '{parent}'" if parent else ""
    found = mlflow.search_runs(
        [experiment_id],
        filter_string=f"tags.{MODEL_FILE_TAG} = '{sha256_of(path)}'{same_execution}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return found[0].info.run_id if found else None


def log_to_run(run_id: str, metrics: dict[str, float]) -> None:
    """Log metrics to another (finished) run of this store, at once."""
    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in metrics.items()])
