"""Saving a trained model atomically, with its provenance inside, and loading it safely."""

import json
import zipfile
from pathlib import Path
from typing import Literal

import keras

from brain_mri.common.errors import PipelineError, redacted
from brain_mri.common.outputs import atomic_file

# an extra member of the .keras file (a zip): Keras loads the model without reading it
PROVENANCE = "provenance.json"


# every member's time in a saved model: a model file depends on the weights alone, not on when it was
# written, so that a rerun that trains the same weights leaves DVC's hash of it (in dvc.lock) unchanged
ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# what each model answers: P(tumour) per image, or per pixel
OUTPUT_RANK = {"classifier": 2, "unet": 4}


def _names_the_removed_scaling_layer(path: Path) -> bool:
    """Whether the model is a per_slice U-Net saved before its scaling became Keras operations (0a36106),
    with a layer class Keras can no longer find. A damaged file is reported by the load that follows."""
    try:
        with zipfile.ZipFile(path) as bundle:
            return b'"class_name": "PerSliceIntensity"' in bundle.read("config.json")
    except Exception:  # noqa: BLE001 - anything unreadable: not this case
        return False


def load_model(path: str | Path, kind: Literal["classifier", "unet"]) -> keras.Model:
    """Load a saved model for inference, in Keras safe mode (no arbitrary code), checking that it
    is the kind of model asked for (a classifier copied over unet.keras is refused, not run)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path} not found; run `dvc repro` to train it, or pass the folder that holds it")
    if not zipfile.is_zipfile(path):
        raise PipelineError(
            f"{path} is not a Keras model file (damaged, or another format); train it again or restore it"
        )
    if _names_the_removed_scaling_layer(path):
        raise PipelineError(
            f"{path} was saved with the per_slice scaling layer of an older version of this project, which no "
            "longer exists; train it again"
        )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged or unsafe file
        reason = redacted(str(error)).splitlines()[0][:160] if str(error) else type(error).__name__
        raise PipelineError(f"{path}: cannot load the model ({reason}); train it again or restore it") from None
    rank = len(model.output_shape)
    if rank != OUTPUT_RANK[kind] or model.output_shape[-1] != 1:
        found = next((name for name, expected in OUTPUT_RANK.items() if expected == rank), "another model")
        raise PipelineError(
            f"{path} holds {'a ' + found if found != 'another model' else found} (output {model.output_shape}), "
            f"not the {kind}; put the {kind} model there"
        )
    return model


def for_inference(model: keras.Model) -> keras.Model:
    """The trained layers alone, without the optimizer, loss and metrics that training compiled in.

    What users load predicts and nothing more: Adam's state would be two thirds of the file (resume
    has its own checkpoints), and a compiled loss from segmentation-models cannot be deserialised.
    """
    return keras.Model(model.inputs, model.outputs, name=model.name)


def _renumbered_shared_objects(config: object, numbers: dict | None = None) -> object:
    """Keras' model config with each `shared_object_id` (an object's memory address, Python's `id`,
    different in every process) replaced by the order of its first appearance: the same links
    between layers, the same text in every run."""
    numbers = {} if numbers is None else numbers
    if isinstance(config, list):
        return [_renumbered_shared_objects(item, numbers) for item in config]
    if not isinstance(config, dict):
        return config
    renumbered = {key: _renumbered_shared_objects(value, numbers) for key, value in config.items()}
    if "shared_object_id" in config:
        renumbered["shared_object_id"] = numbers.setdefault(config["shared_object_id"], len(numbers) + 1)
    return renumbered


def save_model(model: keras.Model, path: Path, provenance: dict) -> None:
    """Write a model for inference with its provenance (what it was trained on) inside, under a
    temporary name, then renamed: a crash never leaves half a file, or a model without provenance.
    The same weights and provenance give the same bytes: the file holds no time of writing and no
    memory address."""
    with atomic_file(path) as partial:
        for_inference(model).save(partial)
        with zipfile.ZipFile(partial) as saved:
            members = {info.filename: saved.read(info) for info in saved.infolist()}
        members["config.json"] = json.dumps(_renumbered_shared_objects(json.loads(members["config.json"]))).encode()
        metadata = json.loads(members["metadata.json"])
        metadata.pop("date_saved", None)  # Keras' clock time, to the second
        members["metadata.json"] = json.dumps(metadata).encode()
        members[PROVENANCE] = json.dumps(provenance, indent=2).encode()
        with zipfile.ZipFile(partial, "w") as bundle:
            for name, data in members.items():
                bundle.writestr(zipfile.ZipInfo(name, ZIP_TIME), data)


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
