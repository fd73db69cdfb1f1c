"""What the tests share: the real archives, the one tiny-params set, the one way to run a stage in
a subprocess, and copies of the project for the real `dvc` pipeline."""

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from brain_mri.common.params import merge_params

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
CLASSIFICATION_ARCHIVE = SHARED / "brain-mri-images-for-brain-tumor-detection.zip"
SEGMENTATION_ARCHIVE = SHARED / "lgg-mri-segmentation-sample.zip"
MORE_PATIENTS_ARCHIVE = SHARED / "lgg-mri-segmentation-more.zip"  # 35 patients, none of them in the sample

needs_real_data = pytest.mark.skipif(
    not all(a.is_file() for a in (CLASSIFICATION_ARCHIVE, SEGMENTATION_ARCHIVE, MORE_PATIENTS_ARCHIVE)),
    reason=f"the real archives are not in {SHARED} (../shared/datasets beside the project root)",
)

# The one shrunken params set: small enough for CI on 2 cores, large enough that both models
# learn the embedded data. A test changes only the key it is about (epochs, strategy, ...).
TINY = {
    "download": {"synthetic": {"classification_images": 80, "segmentation_patients": 6, "slices_per_patient": 10}},
    "crop_split": {
        "image_size": 32,
        "classification_split": {"train": 0.6, "val": 0.2, "test": 0.2},
        "segmentation_split": {"train": 0.5, "val": 0.25, "test": 0.25},
    },
    "train_classifier": {"epochs": 8, "batch_size": 8, "image_size": 32, "lr_reference_batch": 8},
    "train_unet": {"epochs": 6, "batch_size": 8, "image_size": 64},
}


# Set, fake, in the environment of the reproduced project's `dvc repro`: no output may hold them.
FAKE_SECRETS = {
    "KAGGLE_USERNAME": "fake-kaggle-user-7f3a",
    "KAGGLE_KEY": "fake-kaggle-key-9b2c71",
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-44d0e1",
    "MLFLOW_TRACKING_TOKEN": "fake-mlflow-token-a81f",
}


def tiny_params(*changes: dict) -> dict:
    """The project's params.yaml with TINY and then each of `changes` laid over it."""
    params = merge_params(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    for change in changes:
        params = merge_params(params, change)
    return params


def write_params(folder: Path, *changes: dict) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump(tiny_params(*changes), sort_keys=False))


def stage_env(**extra: str) -> dict[str, str]:
    """This environment without DVC's, MLflow's, TF_CONFIG or Kaggle's settings, and with this
    test's Python first on PATH, so that `dvc`, `mlflow` and dvc.yaml's `python` are this one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_", "TF_CONFIG", "KAGGLE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def default_threads(env: dict[str, str]) -> dict[str, str]:
    """env without the test workers' intra-op thread count (tests/conftest.py): TensorFlow sizes its
    pools as users get them, for the runs that prove training deterministic."""
    return {key: value for key, value in env.items() if key != "TF_NUM_INTRAOP_THREADS"}


def stage_command(name: str, *args: str) -> list[str]:
    """A stage script (or predict) run by its path, from any folder: it imports only the installed library."""
    return [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args]


def run_stage(work: Path, name: str, *args: str, env: dict | None = None, **options) -> subprocess.CompletedProcess:
    """Run a stage (or predict) as users do, in `work`; the result holds its exit code and output."""
    return subprocess.run(
        stage_command(name, *args), cwd=work, env=env or stage_env(), capture_output=True, text=True, **options
    )


def run_stage_ok(work: Path, name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = run_stage(work, name, *args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def copy_work(source: Path, destination: Path, *changes: dict) -> Path:
    """A copy of a prepared folder (or project copy) to change freely, with `changes` laid over its params.

    Files over 1 MB that stages only ever replace (models, arrays, the DVC cache) are hard links:
    a copy costs no disk, and the stages' atomic writes never change the original. Everything
    else, params.yaml among them, is copied. The MLflow store is left out: it names its artifact
    folder by absolute path, so a copy would write its runs' artifacts into the original's folder;
    a copy's stages start a store of their own.
    """

    def link_or_copy(src: str, dst: str) -> None:
        big = os.path.getsize(src) > 1 << 20 and not src.endswith((".yaml", ".lock", ".csv", ".json"))
        os.link(src, dst) if big else shutil.copy2(src, dst)

    no_store = shutil.ignore_patterns("mlflow.db", "mlartifacts")
    shutil.copytree(source, destination, symlinks=True, copy_function=link_or_copy, ignore=no_store)
    if changes:
        params = yaml.safe_load((destination / "params.yaml").read_text())
        for change in changes:
            params = merge_params(params, change)
        (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return destination


def committed_copy(reproduced: Path, destination: Path) -> Path:
    """A copy of a reproduced project copy with its outputs committed: a baseline for experiments and diffs."""
    repo = copy_work(reproduced, destination)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "reproduced")
    return repo


def project_copy(destination: Path, *changes: dict) -> Path:
    """The project's files (tracked and new, not ignored) in a fresh git repository, with tiny params."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        source = ROOT / name
        if source.is_file() and not name.startswith(("data/", "models/", "metrics/")):
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    write_params(destination, *changes)
    (destination / "dvc.lock").unlink(missing_ok=True)
    git(destination, "init", "-q")
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "test copy")
    return destination


def git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    return subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def dvc(cwd: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=cwd,
        env=env or stage_env(),
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def epochs_logged(work: Path) -> int:
    """Epochs in the resumable history of a running train_classifier (0 before the first)."""
    for history in work.glob(".checkpoints/train_classifier-*/history.csv"):
        lines = history.read_text().strip().splitlines()
        return max(0, len(lines) - 1)
    return 0


def built_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """root/name, built by the first worker that asks for it; the others wait for it and reuse it.

    Files, not a fixture's value, because an xdist worker tears session fixtures down whenever it
    runs out of queued tests for a moment; the folder and its .complete marker outlive that.
    """
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".complete").touch()
    return folder
