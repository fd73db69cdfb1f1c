"""Training as it runs for users: on two devices or two workers, the best epoch restored after kills
(a run resumed after a kill: tests/test_mlflow_server.py)."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.helpers import (
    ROOT,
    copy_work,
    free_port,
    run_stage,
    stage_command,
    stage_env,
)

pytestmark = pytest.mark.slow
# the distribution and resume tests are about devices and epochs, not what the models learn
SHORT = {"train_classifier": {"epochs": 2}, "train_unet": {"epochs": 2, "image_size": 32}}


def test_auto_strategy_mirrors_over_two_logical_devices(tiny_processed, tmp_path):
    """The auto strategy is chosen by code both stages share (brain_mri.training.devices.choose_strategy):
    the U-Net proves the choice and a MirroredStrategy run (its datasets split over two replicas);
    the classifier trains on two replicas in the multi-worker test below."""
    stage = "train_unet"
    work = copy_work(tiny_processed, tmp_path / "work", SHORT)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests/programs/two_logical_cpus.py"), str(ROOT / f"stages/{stage}.py")],
        cwd=work,
        env=stage_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    (run_info,) = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    assert run_info.data.tags["replicas"] == "2"
    assert run_info.data.tags["precision"] == "float32", "mixed precision stays off on CPU"
    history = pd.read_csv(work / f"metrics/{stage}/history.csv")
    assert len(history) == 2 and history["loss"].notna().all()


def test_multi_worker_strategy_trains_on_two_workers_from_tf_config(tiny_processed, tmp_path):
    """Two real workers on 127.0.0.1, each in its own copy of the project (as on two machines):
    both finish; the chief (worker 0) alone writes the model and the MLflow run. The classifier's
    run; the U-Net trains on two replicas in the auto-strategy test above."""
    stage = "train_classifier"
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    works, workers = [], []
    for index in range(2):
        work = copy_work(tiny_processed, tmp_path / f"worker{index}", SHORT, {stage: {"strategy": "multi_worker"}})
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        works.append(work)
        workers.append(
            subprocess.Popen(
                stage_command(stage),
                cwd=work,
                env=stage_env(TF_CONFIG=config),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outcomes = [worker.communicate(timeout=900) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-3000:] for _, err in outcomes]
    chief, other = works
    assert (chief / "models/classifier.keras").is_file() and not (other / "models").exists()
    assert not (other / "mlflow.db").exists()
    mlflow.set_tracking_uri(f"sqlite:///{chief / 'mlflow.db'}")
    (run_info,) = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    assert run_info.info.status == "FINISHED" and run_info.data.tags["replicas"] == "2"
    history = pd.read_csv(chief / f"metrics/{stage}/history.csv")
    assert len(history) == 2 and history[["loss", "val_loss"]].notna().all().all()


def test_multi_worker_without_tf_config_is_refused_with_the_fix(tiny_processed, tmp_path):
    work = copy_work(tiny_processed, tmp_path / "work", {"train_classifier": {"strategy": "multi_worker"}})
    result = run_stage(work, "train_classifier")
    assert result.returncode == 1
    assert "needs TF_CONFIG" in result.stderr and "Traceback" not in result.stderr
    assert not (work / "models").exists()


def restored_epoch(backup: Path, monitor_from_epoch: int, kill_at_epochs: tuple[int, ...]) -> int:
    """tests.programs.flipped_labels, killed at the start of each epoch (from 0) in `kill_at_epochs`,
    once, and resumed: the epoch (from 1) whose val_loss the final model has."""
    program = [sys.executable, "-m", "tests.programs.flipped_labels", str(backup), str(monitor_from_epoch)]
    for epoch in kill_at_epochs:
        killed = subprocess.run([*program, str(epoch)], cwd=ROOT, env=stage_env(), capture_output=True, text=True)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    finished = subprocess.run([*program, "-1"], cwd=ROOT, env=stage_env(), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return int(finished.stdout.split("restored epoch")[-1])


def test_restore_best_ignores_the_epochs_before_monitor_from_epoch(tmp_path):
    from tests.programs.flipped_labels import restored_epoch as restored_epoch_in_process

    assert restored_epoch_in_process(tmp_path / "from-0", monitor_from_epoch=0) == 1
    assert restored_epoch_in_process(tmp_path / "from-2", monitor_from_epoch=2) == 3


def test_restore_best_survives_kills(tmp_path):
    """Killed in the first epoch (nothing saved yet) and after two: the best epoch, the first,
    is from before the second kill, and the resumed run still restores it."""
    assert restored_epoch(tmp_path / "backup", monitor_from_epoch=0, kill_at_epochs=(0, 2)) == 1
