"""Saving a trained model atomically, with its provenance inside, and loading it safely."""

import json
import zipfile
from pathlib import Path

import keras

from brain_mri.common.errors import PipelineError
from brain_mri.common.outputs import atomic_file

# the custom layer must be registered before a U-Net that uses it is loaded
from brain_mri.models.unet import PerSliceIntensity  # noqa: F401

# an extra member of the .keras file (a zip): Keras loads the model without reading it
PROVENANCE = "provenance.json"


def load_model(path: str) -> keras.Model:
    """Load a saved model for inference, in Keras safe mode (no arbitrary code)."""
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError) as error:
        raise PipelineError(f"{path}: cannot load the model ({error}); run `dvc repro` to train it") from None


def for_inference(model: keras.Model) -> keras.Model:
    """The trained layers alone, without the optimizer, loss and metrics that training compiled in.

    What users load predicts and nothing more: Adam's state would be two thirds of the file (resume
    has its own checkpoints), and a compiled loss from segmentation-models cannot be deserialised.
    """
    return keras.Model(model.inputs, model.outputs, name=model.name)


def save_model(model: keras.Model, path: Path, provenance: dict) -> None:
    """Write a model for inference with its provenance (what it was trained on) inside, under a
    temporary name, then renamed: a crash never leaves half a file, or a model without provenance."""
    with atomic_file(path) as partial:
        for_inference(model).save(partial)
        with zipfile.ZipFile(partial, "a") as bundle:
            bundle.writestr(PROVENANCE, json.dumps(provenance, indent=2))


def read_provenance(path: Path) -> dict:
    """The provenance saved in a model file; {} for a model saved without one."""
    try:
        with zipfile.ZipFile(path) as bundle:
            return json.loads(bundle.read(PROVENANCE)) if PROVENANCE in bundle.namelist() else {}
    except (OSError, zipfile.BadZipFile):
        return {}


def training_data(path: Path) -> dict[str, str]:
    """What the model in path was trained on, in brief: `trained_on` and the data's DVC hash ("unknown"
    for a model saved without provenance)."""
    provenance = read_provenance(path)
    return {key: provenance.get(key, "unknown") for key in ("trained_on", "data_dvc_md5")}
