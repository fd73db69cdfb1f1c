"""What a model was trained on: the data's source and DVC hash, its size, the params, a hash of the code.

Built by the training stages, saved inside the model file (brain_mri.models.saving) and logged
with the MLflow run; predict and evaluate read it back from the model file.
"""

import hashlib
import tempfile
import warnings
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from brain_mri.data.processed import read_source


def dvc_md5(folder: Path) -> str:
    """The folder's hash as DVC computes it for a dependency (`<md5>.dir`, as in dvc.lock)."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    filesystem = LocalFileSystem()
    with tempfile.TemporaryDirectory() as scratch:  # DVC's object store for the folder's listing; not kept
        _, _, tree = build(HashFileDB(filesystem, scratch), str(folder), filesystem, "md5")
    return tree.hash_info.value


# the project this code runs from: dvc.yaml beside the package (a checkout, or an editable install)
PROJECT = Path(__file__).resolve().parents[2]


def code_sha256(stage: str) -> str:
    """A SHA-256 of the code `stage` runs: the files of its `stages/` and `brain_mri/` deps in dvc.yaml
    (Python's caches left out), "unknown" without a dvc.yaml beside the package.

    Not the git commit, which a model file must not hold: committing dvc.lock (or any later change
    that DVC rightly does not retrain for) moves it, and a rerun's model would then differ from
    the one dvc.lock hashes. The MLflow run tags the commit.
    """
    dvc_yaml = PROJECT / "dvc.yaml"
    if not dvc_yaml.is_file():
        return "unknown"
    deps = yaml.safe_load(dvc_yaml.read_text())["stages"][stage]["deps"]
    digest = hashlib.sha256()
    for dep in (d for d in deps if d.startswith(("stages/", "brain_mri/"))):
        path = PROJECT / dep
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for file in (f for f in files if "__pycache__" not in f.parts):
            digest.update(f"{file.relative_to(PROJECT).as_posix()}\0".encode() + file.read_bytes())
    return digest.hexdigest()


def trained_on(source: dict) -> str:
    """The training data in a few words: `synthetic`, or the source and the locations' names."""
    if source["source"] in ("synthetic", "unknown"):
        return source["source"]
    return f"{source['source']}: " + ", ".join(Path(location).name for location in source["locations"])


def training_provenance(stage: str, data: Path, manifest: pd.DataFrame, params: dict) -> dict:
    """The provenance of a model that `stage` trained on the processed data in `data` (its manifest) with `params`."""
    source = read_source(data)
    train = manifest[manifest["split"] == "train"]
    size = (
        {"train_patients": int(train["patient"].nunique()), "train_slices": len(train)}
        if "patient" in manifest
        else {"train_images": len(train)}
    )
    return {
        "trained_on": trained_on(source),
        "data_source": source["source"],
        "data_locations": source["locations"],
        "data_dvc_md5": dvc_md5(data),
        **size,
        "params": params,
        "code_sha256": code_sha256(stage),
    }


def log_provenance(provenance: dict, manifest: pd.DataFrame, name: str) -> None:
    """The training data as the MLflow run's dataset input (its train rows, the DVC hash as digest)
    and as tags, with the code's hash (the git commit is a tag of every stage run already)."""
    train = manifest[manifest["split"] == "train"]
    source = ", ".join(provenance["data_locations"]) or provenance["data_source"]
    with warnings.catch_warnings():
        # Two warnings every training stage printed, neither about our data: MLflow registers its local-file
        # source class twice, so any path "can be interpreted in multiple ways" (both the same class); and
        # its hint that integer columns cannot hold missing values is for model signatures, while these are
        # the manifest's row numbers and labels, never missing.
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer column")
        dataset = mlflow.data.from_pandas(train, source=source, name=name, digest=provenance["data_dvc_md5"][:8])
        mlflow.log_input(dataset, context="training")
    mlflow.set_tags(
        {
            "training_data": provenance["trained_on"],
            "training_data_dvc_md5": provenance["data_dvc_md5"],
            "code_sha256": provenance["code_sha256"],
        }
    )
