"""Training as it runs for users: on two devices or two workers, resumed after a kill, best epoch restored."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import merge

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "download": {"synthetic": {"classification_images": 40, "segmentation_patients": 4, "slices_per_patient": 8}},
    "crop_split": {"image_size": 32, "classification_split": {"train": 0.6, "val": 0.2, "test": 0.2}},
    "train_classifier": {"epochs": 2, "batch_size": 8, "image_size": 32, "lr_reference_batch": 8},
    "train_unet": {"epochs": 2, "batch_size": 4, "image_size": 32, "lr_reference_batch": 4},
}


def stage_env(work: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_", "TF_CONFIG"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def run(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args], cwd=work, env=stage_env(work, **env), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A folder with params.yaml and the processed synthetic data, as crop_split leaves it."""
    work = tmp_path_factory.mktemp("training")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump(merge(raw, SMALL)))
    run(work, "-m", "stages.download")
    run(work, "-m", "stages.crop_split")
    return work


def copy_of(prepared: Path, destination: Path, **changes) -> Path:
    shutil.copytree(prepared, destination)
    if changes:
        params = yaml.safe_load((destination / "params.yaml").read_text())
        (destination / "params.yaml").write_text(yaml.safe_dump(merge(params, changes)))
    return destination


TWO_LOGICAL_CPUS = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import runpy
runpy.run_module(sys.argv[1], run_name="__main__")
"""


@pytest.mark.parametrize("stage", ["train_classifier", "train_unet"])
def test_auto_strategy_mirrors_over_two_logical_devices(prepared, tmp_path, stage):
    work = copy_of(prepared, tmp_path / "work")
    run(work, "-c", TWO_LOGICAL_CPUS, f"stages.{stage}")
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    (run_info,) = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    assert run_info.data.tags["replicas"] == "2"
    assert run_info.data.tags["precision"] == "float32", "mixed precision stays off on CPU"
    history = pd.read_csv(work / f"metrics/{stage}/history.csv")
    assert len(history) == 2 and history["loss"].notna().all()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("stage", ["train_classifier", "train_unet"])
def test_multi_worker_strategy_trains_on_two_workers_from_tf_config(prepared, tmp_path, stage):
    """Two real workers on 127.0.0.1, each in its own copy of the project (as on two machines):
    both finish; the chief (worker 0) alone writes the model and the MLflow run."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    works, workers = [], []
    for index in range(2):
        work = copy_of(prepared, tmp_path / f"worker{index}", **{stage: {"strategy": "multi_worker"}})
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        works.append(work)
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", f"stages.{stage}"],
                cwd=work,
                env=stage_env(work, TF_CONFIG=config),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outcomes = [worker.communicate(timeout=900) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-3000:] for _, err in outcomes]
    chief, other = works
    model = "classifier" if stage == "train_classifier" else "unet"
    assert (chief / f"models/{model}.keras").is_file() and not (other / "models").exists()
    assert not (other / "mlflow.db").exists()
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{chief / 'mlflow.db'}")
    (run_info,) = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    assert run_info.info.status == "FINISHED" and run_info.data.tags["replicas"] == "2"
    history = pd.read_csv(chief / f"metrics/{stage}/history.csv")
    assert len(history) == 2 and history[["loss", "val_loss"]].notna().all().all()


def test_multi_worker_without_tf_config_is_refused_with_the_fix(prepared, tmp_path):
    work = copy_of(prepared, tmp_path / "work", train_classifier={"strategy": "multi_worker"})
    result = subprocess.run(
        [sys.executable, "-m", "stages.train_classifier"], cwd=work, env=stage_env(work), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "needs TF_CONFIG" in result.stderr and "Traceback" not in result.stderr
    assert not (work / "models").exists()


def epochs_logged(work: Path) -> int:
    """Epochs in the resumable history of a running train_classifier (0 before the first)."""
    for history in work.glob(".checkpoints/train_classifier-*/history.csv"):
        lines = history.read_text().strip().splitlines()
        return max(0, len(lines) - 1)
    return 0


def test_a_killed_training_run_resumes_from_its_last_epoch(prepared, tmp_path):
    work = copy_of(prepared, tmp_path / "work", train_classifier={"epochs": 6})
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.train_classifier"],
        cwd=work,
        env=stage_env(work),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and epochs_logged(work) < 2:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before_kill = epochs_logged(work)
    assert 2 <= done_before_kill < 6, "the kill came in the middle of training"
    assert not (work / "models/classifier.keras").exists(), "a killed run leaves no model"

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    (killed,) = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    assert killed.info.status == "RUNNING", "a SIGKILL leaves no chance to close the run"

    resumed = run(work, "-m", "stages.train_classifier")
    assert mlflow.get_run(killed.info.run_id).info.status == "KILLED", "the next run marks it KILLED"
    (finished,) = mlflow.search_runs(
        experiment_names=["brain-mri"], filter_string="attributes.status = 'FINISHED'", output_format="list"
    )
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(finished.info.run_id, "loss")]
    assert sorted(steps) == list(range(6)), "the resumed run shows the epochs of both runs"
    assert "Epoch 1/6" not in resumed.stdout
    assert f"Epoch {done_before_kill + 1}/6" in resumed.stdout or f"Epoch {done_before_kill}/6" in resumed.stdout
    history = pd.read_csv(work / "metrics/train_classifier/history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5, 6], "the history covers the epochs of both runs"
    assert (work / "models/classifier.keras").is_file()
    assert not list(work.glob(".checkpoints/train_classifier-*")), "the resumable state is removed when done"


FLIPPED_LABELS = """
import os, signal, sys
from pathlib import Path
import keras, numpy as np, tensorflow as tf, yaml
from stages.params import parse_params
from stages.training import fit
from tests.helpers import merge

backup, monitor_from_epoch, kill_at_epoch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
features = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
labels = (features[:, :1] > 0).astype("float32")
history = backup / "history.csv"

def batches():
    # Keras starts one pass per epoch, after the earlier epochs' state is all saved
    epochs_logged = max(len(history.read_text().splitlines()) - 1, 0) if history.is_file() else 0
    if epochs_logged == kill_at_epoch:
        os.kill(os.getpid(), signal.SIGKILL)
    yield from zip(features.reshape(8, 8, 4), labels.reshape(8, 8, 1))

train = tf.data.Dataset.from_generator(batches, output_signature=(tf.TensorSpec((8, 4)), tf.TensorSpec((8, 1))))
flipped = tf.data.Dataset.from_tensor_slices((features, 1 - labels)).batch(8)
keras.utils.set_random_seed(0)
raw = yaml.safe_load(Path("params.yaml").read_text())
changes = {"epochs": 4, "restore_best": True, "monitor_from_epoch": monitor_from_epoch}
config = parse_params(merge(raw, {"train_classifier": changes})).train_classifier
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(0.1), loss="binary_crossentropy")
history = fit(model, train, flipped, config, backup, tracked=False)
assert history["epoch"].tolist() == [1, 2, 3, 4], history
assert history["val_loss"].is_monotonic_increasing, "the set-up: every epoch is worse on val"
final = model.evaluate(flipped, verbose=0)
print("restored epoch", int(history.loc[(history["val_loss"] - final).abs().idxmin(), "epoch"]))
"""


def restored_epoch(backup: Path, monitor_from_epoch: int, kill_at_epochs: tuple[int, ...] = ()) -> int:
    """Trains 4 epochs with validation labels that are the training labels flipped, so val_loss
    grows every epoch; the process is killed at the start of each epoch (from 0) in
    `kill_at_epochs`, once, and resumed. The epoch (from 1) whose val_loss the final model has."""
    for epoch in kill_at_epochs:
        killed = subprocess.run(
            [sys.executable, "-c", FLIPPED_LABELS, str(backup), str(monitor_from_epoch), str(epoch)],
            cwd=ROOT,
            env=stage_env(ROOT),
            capture_output=True,
            text=True,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    finished = run(ROOT, "-c", FLIPPED_LABELS, str(backup), str(monitor_from_epoch), "-1")
    return int(finished.stdout.split("restored epoch")[-1])


def test_restore_best_ignores_the_epochs_before_monitor_from_epoch(tmp_path):
    assert restored_epoch(tmp_path / "from-0", monitor_from_epoch=0) == 1
    assert restored_epoch(tmp_path / "from-2", monitor_from_epoch=2) == 3


def test_restore_best_survives_kills(tmp_path):
    """Killed in the first epoch (nothing saved yet) and after two: the best epoch, the first,
    is from before the second kill, and the resumed run still restores it."""
    assert restored_epoch(tmp_path / "backup", monitor_from_epoch=0, kill_at_epochs=(0, 2)) == 1
