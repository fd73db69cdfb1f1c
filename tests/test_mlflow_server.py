"""Against a real `mlflow server` on 127.0.0.1: runs, the model registry, and a server that is gone."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests

from tests.helpers import copy_work, epochs_logged, free_port, run_stage, run_stage_ok, stage_command, stage_env

pytestmark = pytest.mark.slow
TWO_EPOCHS = {"train_classifier": {"epochs": 2}}


def start_server(folder: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:port with its store in folder, once it answers."""
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "artifacts"), "--workers", "1",
        ],
        # without MLflow 3's job runners (seven processes for GenAI jobs, 30 s of CPU each start)
        env=stage_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the server runs its workers as children
    )  # fmt: skip
    # generous: on a busy machine the server can take long to start, and to answer once started
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=10).ok:
                return process
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("mlflow server did not start within 300 s")


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.mark.reliability
def test_an_unreachable_server_fails_the_stage_at_once_naming_it_without_its_password(tiny_processed, tmp_path):
    work = copy_work(tiny_processed, tmp_path / "work", TWO_EPOCHS)
    server = f"127.0.0.1:{free_port()}"
    uri = f"http://alice:S3cretPass@{server}"
    result = run_stage(work, "train_classifier", env=stage_env(MLFLOW_TRACKING_URI=uri))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"http://{server}" in last and "Traceback" not in result.stderr
    assert "S3cretPass" not in result.stderr + result.stdout and "alice" not in result.stderr + result.stdout
    assert "Epoch 1/" not in result.stdout, "no training time was spent"
    assert not list(work.glob(".checkpoints/*"))


def test_training_stopped_by_a_vanishing_server_then_by_sigkill_resumes_logs_every_epoch_and_registers(
    tiny_processed, tmp_path, monkeypatch
):
    """One training run interrupted twice, each time mid-way: the tracking server is killed (the
    stage fails with one line), then, with the server back, the resumed run itself is SIGKILLed
    (no chance to close its MLflow run); the third run finishes. Both interrupted runs end KILLED,
    the finished run holds every epoch, and its model is in the server's registry."""
    epochs = 6  # the server goes after the second epoch, the resumed run after one more: epochs are left
    change = {"train_classifier": {"epochs": epochs, "register_model": True}}
    work = copy_work(tiny_processed, tmp_path / "work", change)
    model = work / "models/classifier.keras"
    model.parent.mkdir()
    earlier_model = b"the model of an earlier run"  # only its bytes matter: a failed run leaves them be
    model.write_bytes(earlier_model)
    port, store = free_port(), tmp_path / "store"
    uri = f"http://127.0.0.1:{port}"
    server = start_server(store, port)
    # one quick retry instead of MLflow's default minutes of them
    env = stage_env(MLFLOW_TRACKING_URI=uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="1")
    training = start_training(work, env)
    wait_for_epochs(work, training, 2)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    _, stderr = training.communicate(timeout=600)

    assert training.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"MLflow tracking server {uri} stopped answering" in errors[0], stderr[-2000:]
    assert "resumes" in errors[0] and "Traceback" not in stderr
    done_before_server_went = epochs_logged(work)
    assert 2 <= done_before_server_went < epochs - 1, f"the server went in the middle of training: {stderr[-3000:]}"
    assert model.read_bytes() == earlier_model, "an earlier model is left as it was"

    server = start_server(store, port)  # the same store comes back
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        resumed = start_training(work, env)
        wait_for_epochs(work, resumed, done_before_server_went + 1)
        resumed.send_signal(signal.SIGKILL)
        stdout, _ = resumed.communicate()
        done_before_kill = epochs_logged(work)
        assert f"Epoch 1/{epochs}" not in stdout, "the rerun resumed instead of starting over"
        assert done_before_server_went < done_before_kill < epochs, "the kill came in the middle of training"
        assert model.read_bytes() == earlier_model, "a killed run leaves no model"
        experiment = client.get_experiment_by_name("brain-mri")
        statuses = sorted(r.info.status for r in client.search_runs([experiment.experiment_id]))
        assert statuses == ["KILLED", "RUNNING"], "the first run is closed; a SIGKILL leaves no chance to close one"

        # a user and password in the URI (this server asks for none): MLflow prints the URI in its run links
        with_password = uri.replace("http://", "http://alice:S3cretPass@")
        finished = run_stage_ok(work, "train_classifier", env=stage_env(MLFLOW_TRACKING_URI=with_password))
        runs = client.search_runs([experiment.experiment_id])
        (done,) = [r for r in runs if r.info.status == "FINISHED"]
        losses = client.get_metric_history(done.info.run_id, "epoch/loss")
        assert "training_curves.png" in {a.path for a in client.list_artifacts(done.info.run_id)}
        (version,) = client.search_model_versions("name = 'brain-mri-classifier'")
        mlflow.set_tracking_uri(uri)
        # get_model_info downloads MLmodel into a tempfile.mkdtemp() folder that MLflow never removes:
        # keep it in this test's own temporary folder rather than leave one in /tmp each run
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        model_info = mlflow.models.get_model_info(f"models:/brain-mri-classifier/{version.version}")
    finally:
        stop(server)
    assert "View run" in finished.stdout and "S3cretPass" not in finished.stdout + finished.stderr
    assert not (work / "mlflow.db").exists(), "nothing went to a local store"
    assert version.run_id == done.info.run_id, "the finished run's model is registered"
    (input_spec,) = model_info.signature.inputs.to_dict()
    assert tuple(input_spec["tensor-spec"]["shape"]) == (-1, 32, 32, 3), "the signature names the input shape"
    assert f"Epoch 1/{epochs}" not in finished.stdout
    first_epoch = next(line for line in finished.stdout.splitlines() if line.startswith("Epoch "))
    assert first_epoch in (f"Epoch {done_before_kill}/{epochs}", f"Epoch {done_before_kill + 1}/{epochs}")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED", "KILLED"], "no run is left RUNNING"
    assert done.data.params["epochs"] == str(epochs) and done.data.params["register_model"] == "True"
    assert all(r.data.params == done.data.params for r in runs), "the earlier runs and their params are kept"
    assert "training/final_loss" in done.data.metrics
    assert sorted(m.step for m in losses) == list(range(epochs)), "the finished run shows every epoch"
    history = pd.read_csv(work / "metrics/train_classifier/history.csv")
    assert history["epoch"].tolist() == list(range(1, epochs + 1)), "the history covers the epochs of all three runs"
    assert model.read_bytes() != earlier_model
    assert not list(work.glob(".checkpoints/train_classifier-*")), "the resumable state is removed when done"


def start_training(work: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        stage_command("train_classifier"), cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_epochs(work: Path, training: subprocess.Popen, epochs: int) -> None:
    """Until train_classifier in `work` has logged `epochs` epochs (or has stopped, or 300 s)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and training.poll() is None and epochs_logged(work) < epochs:
        time.sleep(0.1)
