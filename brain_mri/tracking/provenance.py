"""What a model was trained on: the data's source and DVC hash, its size, the params, the code's commit.

Built by the training stages, saved inside the model file (brain_mri.models.saving) and logged
with the MLflow run; predict and evaluate read it back from the model file.
"""

import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from brain_mri.common.repo import code_commit
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


def trained_on(source: dict) -> str:
    """The training data in a few words: `synthetic`, or the source and the locations' names."""
    if source["source"] in ("synthetic", "unknown"):
        return source["source"]
    return f"{source['source']}: " + ", ".join(Path(location).name for location in source["locations"])


def training_provenance(data: Path, manifest: pd.DataFrame, params: dict) -> dict:
    """The provenance of a model trained on the processed data in `data` (its manifest) with `params`."""
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
        "code_commit": code_commit(),
    }


def log_provenance(provenance: dict, manifest: pd.DataFrame, name: str) -> None:
    """The training data as the MLflow run's dataset input (its train rows, the DVC hash as digest)
    and as tags (the commit is a tag of every stage run already)."""
    train = manifest[manifest["split"] == "train"]
    source = ", ".join(provenance["data_locations"]) or provenance["data_source"]
    dataset = mlflow.data.from_pandas(train, source=source, name=name, digest=provenance["data_dvc_md5"][:8])
    mlflow.log_input(dataset, context="training")
    mlflow.set_tags({"training_data": provenance["trained_on"], "training_data_dvc_md5": provenance["data_dvc_md5"]})
