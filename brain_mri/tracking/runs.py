"""MLflow: where runs go, what every run is tagged with, and the run context of a stage.

Each stage logs one run. The stage runs of one `dvc repro` or `dvc exp run` are grouped
under one parent run, found through the DVC process that runs them (stages are separate
processes, so the DVC process is what they share).
"""

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import unquote, urlsplit, urlunsplit

import mlflow
import psutil
import requests
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from brain_mri.common.cluster import is_chief
from brain_mri.common.errors import PipelineError, redacted
from brain_mri.common.repo import git_commit, repo_root

EXPERIMENT = "brain-mri"
# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces, prompts)
TRAINING_VIEW = ("mlflow.experimentKind", "custom_model_development")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store at the real repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def move_credentials_out_of_the_uri() -> None:
    """A user and password in MLFLOW_TRACKING_URI move to MLflow's own MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD (the same basic auth), because MLflow prints the URI in every run link."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or parts.username is None:
        return
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parts.username))
    os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parts.password or ""))
    os.environ["MLFLOW_TRACKING_URI"] = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


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


def process_id(process: psutil.Process) -> str:
    """host:pid:start time: names one process for good, since a pid alone is reused."""
    return f"{socket.gethostname()}:{process.pid}:{process.create_time():.0f}"


def _alive(process_tag: str) -> bool:
    host, pid, _ = process_tag.rsplit(":", 2)
    if host != socket.gethostname():
        return True  # another machine's run: not ours to judge
    try:
        return process_id(psutil.Process(int(pid))) == process_tag
    except psutil.Error:
        return False


def mark_killed_runs(experiment_id: str, stage: str) -> None:
    """Runs of this stage left RUNNING by a killed process become KILLED, not RUNNING forever."""
    running = mlflow.search_runs(
        [experiment_id],
        filter_string=f"tags.stage = '{stage}' and attributes.status = 'RUNNING'",
        output_format="list",
    )
    for run in running:
        if "process" in run.data.tags and not _alive(run.data.tags["process"]):
            mlflow.MlflowClient().set_terminated(run.info.run_id, status="KILLED")


def run_tags(stage: str) -> dict[str, str]:
    tags = {
        "stage": stage,
        "git_commit": git_commit(),
        "process": process_id(psutil.Process()),
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def _basic_auth() -> tuple[str, str] | None:
    """The user and password MLflow itself sends (MLFLOW_TRACKING_USERNAME / _PASSWORD), for the health check."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", "")) if user else None


def check_reachable(uri: str) -> None:
    """Fail at once, naming the URI, when a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        # 5 s to connect finds an unreachable server fast; 30 s to answer spares a busy one
        requests.get(f"{uri.rstrip('/')}/health", auth=_basic_auth(), timeout=(5, 30)).raise_for_status()
    except requests.RequestException as error:
        raise PipelineError(
            f"MLflow tracking server {uri} is unreachable ({type(error).__name__}); "
            "start it or unset MLFLOW_TRACKING_URI to use the local store"
        ) from None


def _use_experiment(uri: str) -> str:
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            # a local store keeps artifacts beside the database at the real root, also for
            # `dvc exp run --temp`, whose working directory is deleted afterwards
            local = uri.startswith("sqlite:")
            location = (repo_root() / "mlartifacts").as_uri() if local else None
            try:
                return mlflow.create_experiment(EXPERIMENT, artifact_location=location, tags=dict([TRAINING_VIEW]))
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                # another stage (a second experiment started at once) created it first
                experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if TRAINING_VIEW[0] not in experiment.tags:  # made before the view was chosen
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, *TRAINING_VIEW)
    except MlflowException as error:
        raise PipelineError(
            f"MLflow tracking store {uri} is not usable ({redacted(str(error)).splitlines()[0][:200]}); "
            "fix MLFLOW_TRACKING_URI or unset it"
        ) from None
    return experiment.experiment_id


def pipeline_execution() -> str | None:
    """An id of the DVC command running this stage (host, pid, start time), or None outside DVC."""
    for process in psutil.Process().parents():
        try:
            command = process.cmdline()
        except psutil.Error:
            continue
        # `dvc repro`, `/path/bin/dvc exp run` or `python /path/bin/dvc ...`
        if any(os.path.basename(part) == "dvc" for part in command[:2]):
            return process_id(process)
    return None


def parent_run_id(experiment_id: str) -> str | None:
    """The parent run of this pipeline execution, created by its first stage."""
    execution = pipeline_execution()
    if execution is None:
        return None
    found = mlflow.search_runs(
        [experiment_id], filter_string=f"tags.pipeline_execution = '{execution}'", output_format="list"
    )
    if found:
        return found[0].info.run_id
    experiment_name = os.environ.get("DVC_EXP_NAME")
    name = f"dvc exp run {experiment_name}" if experiment_name else f"dvc repro {time.strftime('%Y-%m-%d %H:%M')}"
    tags = {"pipeline_execution": execution, "git_commit": git_commit(), "kind": "pipeline"}
    if experiment_name:
        tags["dvc_experiment"] = experiment_name
    client = mlflow.MlflowClient()
    # finished at once: it only groups the stage runs, which point at it
    parent = client.create_run(experiment_id, run_name=name, tags=tags)
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id


@contextmanager
def stage_run(stage: str, params: dict, system_metrics: bool = False) -> Iterator[mlflow.ActiveRun | None]:
    """One MLflow run for a stage, with its params section and the standard tags.

    The run is opened before training starts, so an unreachable store fails the stage at
    once. Only the chief of a multi-worker cluster logs; the other workers get None.
    A tracking server that stops answering during the run (after MLflow's own retries)
    fails the stage with one line; the run it leaves RUNNING is marked KILLED next time.
    """
    if not is_chief():
        yield None
        return
    move_credentials_out_of_the_uri()
    uri = tracking_uri()
    experiment_id = _use_experiment(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    mark_killed_runs(experiment_id, stage)
    tags = run_tags(stage)
    parent = parent_run_id(experiment_id)
    if parent:
        tags[MLFLOW_PARENT_RUN_ID] = parent
    run_name = f"{stage} {os.environ['DVC_EXP_NAME']}" if os.environ.get("DVC_EXP_NAME") else stage
    run = mlflow.start_run(run_name=run_name, tags=tags, log_system_metrics=system_metrics)
    try:
        mlflow.log_params(flatten(params))
        yield run
    except MlflowException as error:
        if _answers(uri):
            mlflow.end_run("FAILED")
            raise
        # pop the run without MLflow's minutes of retries against a server that is gone
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        with suppress(MlflowException):
            mlflow.end_run("FAILED")
        raise PipelineError(
            f"MLflow tracking server {uri} stopped answering during the {stage} run "
            f"({redacted(str(error)).splitlines()[0][:160]}); start it again and rerun: training resumes "
            "from its last finished epoch"
        ) from None
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run()


def _answers(uri: str) -> bool:
    """Whether the tracking store still answers (a local store always does)."""
    try:
        check_reachable(uri)
    except PipelineError:
        return False
    return True
