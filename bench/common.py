"""What the benchmarks share: the real archives, run through the real download and crop_split."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from brain_mri.common.params import merge_params as merge

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"

# the real archives: the 253-image set, and both LGG archives as one dataset of 59 patients
REAL_DATA = {
    "download": {
        "source": "local",
        "classification": str(SHARED / "brain-mri-images-for-brain-tumor-detection.zip"),
        "segmentation": [
            str(SHARED / "lgg-mri-segmentation-sample.zip"),
            str(SHARED / "lgg-mri-segmentation-more.zip"),
        ],
    },
}


def run_stage(work: Path, name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_TRACKING_URI")}
    subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py")], cwd=work, env=env, check=True)


def prepare_real_data(work: Path, changes: dict) -> None:
    """params.yaml (the project's, with REAL_DATA and `changes` on top, e.g. a recipe), then download and crop_split."""
    params = merge(merge(yaml.safe_load((ROOT / "params.yaml").read_text()), REAL_DATA), changes)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    run_stage(work, "download")
    run_stage(work, "crop_split")
