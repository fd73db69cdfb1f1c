"""Running the real pipeline in a throw-away git copy of the project."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Small enough for CI on 2 cores, large enough that both models learn.
TINY_PARAMS = {
    "download": {"synthetic": {"classification_images": 80, "segmentation_patients": 6, "slices_per_patient": 10}},
    "crop_split": {
        "image_size": 64,
        "classification_split": {"train": 0.6, "val": 0.2, "test": 0.2},
        "segmentation_split": {"train": 0.5, "val": 0.25, "test": 0.25},
    },
    "train_classifier": {"epochs": 8, "batch_size": 8, "image_size": 64},
    "train_unet": {"epochs": 6, "batch_size": 8, "image_size": 64},
}


def merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def project_copy(destination: Path, params: dict) -> Path:
    """Copy the project's files (tracked and new, not ignored) into a fresh git repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        source = ROOT / name
        if source.is_file() and not name.startswith(("data/", "models/", "metrics/")):
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    (destination / "params.yaml").write_text(yaml.safe_dump(merge(raw, params), sort_keys=False))
    (destination / "dvc.lock").unlink(missing_ok=True)
    git(destination, "init", "-q")
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "test copy")
    return destination


def git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    return subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def pipeline_env(**extra: str) -> dict[str, str]:
    """The test's own Python first on PATH, so `python -m stages.x` in dvc.yaml finds the packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def dvc(cwd: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=cwd,
        env=env or pipeline_env(),
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]
