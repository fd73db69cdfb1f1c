"""Against a real `mlflow server` on 127.0.0.1: runs, the model registry, and a server that is gone."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests
import yaml

from tests.helpers import merge
from tests.test_training import SMALL, run, stage_env

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "artifacts"), "--workers", "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{uri}/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.5)
    yield uri
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("work")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    changes = merge(SMALL, {"train_classifier": {"register_model": True}})
    (work / "params.yaml").write_text(yaml.safe_dump(merge(raw, changes)))
    run(work, "-m", "stages.download")
    run(work, "-m", "stages.crop_split")
    return work


def test_a_training_run_is_logged_to_the_server_and_its_model_registered(server, prepared):
    run(prepared, "-m", "stages.train_classifier", MLFLOW_TRACKING_URI=server)
    assert not (prepared / "mlflow.db").exists(), "nothing went to the local store"
    client = mlflow.MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name("brain-mri")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.params["epochs"] == "2" and "final_loss" in logged.data.metrics
    assert "training_curves.png" in {a.path for a in client.list_artifacts(logged.info.run_id)}
    (version,) = client.search_model_versions("name = 'brain-mri-classifier'")
    assert version.run_id == logged.info.run_id
    mlflow.set_tracking_uri(server)
    model_info = mlflow.models.get_model_info(f"models:/brain-mri-classifier/{version.version}")
    (input_spec,) = model_info.signature.inputs.to_dict()
    assert tuple(input_spec["tensor-spec"]["shape"]) == (-1, 32, 32, 3), "the signature names the input shape"


def test_an_unreachable_server_fails_the_stage_at_once_naming_it(prepared):
    uri = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "stages.train_classifier"],
        cwd=prepared,
        env={**stage_env(prepared), "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and uri in last and "Traceback" not in result.stderr
    assert "Epoch 1/" not in result.stdout, "no training time was spent"
    assert not list(prepared.glob(".checkpoints/*"))
