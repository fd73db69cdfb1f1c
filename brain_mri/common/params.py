"""Typed, validated params: params.yaml is read here and nowhere else.

Each stage calls `load_params()` first, so a wrong key, type or value stops the stage
before any expensive work, with one line that names the key and the fix.
"""

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from brain_mri.common.errors import PipelineError, shown_location

SEGMENTATION_BACKBONES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg16",
    "mobilenetv2",
    "efficientnetb0",
)


# auto | on | off. YAML 1.1 (PyYAML, and DVC's `-S key=off`) reads a bare on/off as true/false: taken as meant
Switch = Annotated[
    Literal["auto", "on", "off"],
    BeforeValidator(lambda value: ("on" if value else "off") if isinstance(value, bool) else value),
]


class DuplicateKey(yaml.constructor.ConstructorError):
    pass


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading 5e-05 as a float (YAML 1.1 wants 5.0e-05): DVC writes small
    floats so, after `dvc exp run -S train_unet.learning_rate=5e-5`. A key given twice in one mapping
    is refused: PyYAML would quietly keep the last value, and which one was meant is the user's to say."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            # the keys written in this mapping; merged ones (<<: *anchor) may be overridden, as YAML means
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKey(None, None, f"{key!r} appears twice in one section; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)

UNION_BRANCHES = {"str", "list[str]", "list[nullable[str]]"}


class Section(BaseModel):
    # strict: a string "10" for an int is a mistake in the file, not something to coerce
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# NumPy's and TensorFlow's seeds are unsigned 32-bit numbers
MAX_SEED = 2**32 - 1


class Base(Section):
    seed: int = Field(ge=0, le=MAX_SEED)


class SyntheticSize(Section):
    classification_images: int = Field(ge=8)
    segmentation_patients: int = Field(ge=3)
    slices_per_patient: int = Field(ge=6)


class Checksums(Section):
    # one checksum (or null) per location: a list beside a list of locations
    classification: str | list[str | None] | None
    segmentation: str | list[str | None] | None


class ExtractLimits(Section):
    max_files: int = Field(ge=1)
    max_bytes: int = Field(ge=1)


class Download(Section):
    source: Literal["synthetic", "local", "url", "kaggle"]
    # one location or several, whose images (patients) together make the dataset
    classification: str | list[str] = Field(min_length=1)
    segmentation: str | list[str] = Field(min_length=1)
    sha256: Checksums
    limits: ExtractLimits
    synthetic: SyntheticSize

    @model_validator(mode="after")
    def _one_checksum_per_location(self) -> "Download":
        for dataset in ("classification", "segmentation"):
            locations, checksums = getattr(self, dataset), getattr(self.sha256, dataset)
            count = len(locations) if isinstance(locations, list) else 1
            given = len(checksums) if isinstance(checksums, list) else 1
            if isinstance(locations, list) and len(set(locations)) < len(locations):
                twice = next(location for location in locations if locations.count(location) > 1)
                raise ValueError(f"{twice} is listed twice in {dataset}; list each location once")
            if checksums is not None and given != count:
                raise ValueError(
                    f"sha256.{dataset} has {given} checksum(s) for {count} {dataset} location(s): give a list with "
                    "one entry (null where there is none) for each location"
                )
        return self

    @model_validator(mode="after")
    def _plain_http_only_with_a_checksum(self) -> "Download":
        if self.source != "url":
            return self
        for dataset in ("classification", "segmentation"):
            for location, checksum in self.locations(dataset):
                if location.lower().startswith("http://") and not checksum:
                    raise ValueError(
                        f"{shown_location(location)} is plain http:// without a checksum, so anyone on the way "
                        f"could change the data; use https:// or set download.sha256.{dataset}"
                    )
        return self

    def locations(self, dataset: Literal["classification", "segmentation"]) -> list[tuple[str, str | None]]:
        """(location, its SHA-256 or None) for each source of the dataset, in the order given."""
        locations, checksums = getattr(self, dataset), getattr(self.sha256, dataset)
        locations = [locations] if isinstance(locations, str) else locations
        if not isinstance(checksums, list):  # None for each, or the one checksum of the one location
            checksums = [checksums] * len(locations)
        return list(zip(locations, checksums, strict=True))


class SplitFractions(Section):
    train: float = Field(gt=0, lt=1)
    val: float = Field(gt=0, lt=1)
    test: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitFractions":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, not {total:g}")
        return self


class CropSplit(Section):
    image_size: int = Field(ge=32, le=1024)
    classification_split: SplitFractions
    segmentation_split: SplitFractions
    workers: int = Field(ge=0)


def _check_image_size(size: int) -> int:
    # five 2x poolings in VGG16 and in every U-Net encoder
    if size % 32:
        raise ValueError(f"image_size must be a multiple of 32 (the models pool 5 times), not {size}")
    return size


class TrainCommon(Section):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)  # global: split across the replicas of the strategy
    image_size: int = Field(ge=32, le=1024)
    learning_rate: float = Field(gt=0, lt=1)  # for a global batch of lr_reference_batch
    lr_reference_batch: int = Field(ge=1)
    lr_schedule: Literal["constant", "cosine"]
    early_stopping_patience: int = Field(ge=0)  # epochs without a better val_loss; 0: never stop early
    restore_best: bool  # end with the weights of the best val_loss epoch
    monitor_from_epoch: int = Field(ge=0)  # epochs before val_loss counts for early stopping and restore_best
    seed: int = Field(ge=0, le=MAX_SEED)
    strategy: Literal["auto", "multi_worker"]
    mixed_precision: Switch  # auto: mixed_float16 on GPU, float32 on CPU
    xla: Switch  # auto: on GPU only
    deterministic: Switch  # auto: on CPU only (bit-identical reruns)
    register_model: bool  # register the trained model in the MLflow model registry

    @model_validator(mode="after")
    def _image_size_fits_models(self) -> "TrainCommon":
        _check_image_size(self.image_size)
        return self

    @model_validator(mode="after")
    def _monitoring_starts_before_the_end(self) -> "TrainCommon":
        if self.monitor_from_epoch >= self.epochs:
            raise ValueError(
                f"monitor_from_epoch ({self.monitor_from_epoch}) must be below epochs ({self.epochs}),"
                " or no epoch is ever watched"
            )
        return self


class TrainClassifier(TrainCommon):
    weights: str | None
    batch_norm: bool
    dropout: float = Field(ge=0, lt=1)
    class_weight: Literal["balanced", "none"]

    @model_validator(mode="after")
    def _pretrained_weights_need_plain_layout(self) -> "TrainClassifier":
        if self.weights is not None and self.batch_norm:
            raise ValueError(
                "pretrained VGG16 weights exist only for the plain layout; set batch_norm: false or weights: null"
            )
        return self


class TrainUnet(TrainCommon):
    backbone: Literal[SEGMENTATION_BACKBONES]  # type: ignore[valid-type]
    encoder_weights: Literal["imagenet"] | None
    loss: Literal["jaccard", "bce_jaccard", "dice"]
    missing_sequence_p: float = Field(ge=0, le=1)
    input_scaling: Literal["fixed", "per_slice"]


class Evaluate(Section):
    threshold: float = Field(gt=0, lt=1)
    mask_threshold: float = Field(gt=0, lt=1)
    min_tumour_pixels: int = Field(ge=0)
    # defaults: params files and experiments from before these keys existed keep what they measured
    test_time_flip: bool = False
    largest_component: bool = False


class Params(Section):
    base: Base
    download: Download
    crop_split: CropSplit
    train_classifier: TrainClassifier
    train_unet: TrainUnet
    evaluate: Evaluate


def _one_line(error: ValidationError, path: Path) -> str:
    first = error.errors()[0]
    if first["loc"] and first["loc"][-1] in UNION_BRANCHES:  # of a union's failures, the one that goes deepest
        first = max(
            (e for e in error.errors() if e["loc"][: len(first["loc"]) - 1] == first["loc"][:-1]),
            key=lambda e: len(e["loc"]),
        )
    # a union's branch shows in the location as its type ("str", "list[str]"): not a key
    keys = [str(part) for part in first["loc"] if not (isinstance(part, str) and part in UNION_BRANCHES)]
    key = ".".join(keys) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key; remove it or fix its spelling"
    elif first["type"] == "missing":
        message = "missing; add it"
    elif "input" in first and not isinstance(first["input"], dict):
        message = f"{message} (got {first['input']!r})"
    more = f" (and {len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
    return f"{path}: {key}: {message}; fix it in {path.name}{more}"


def merge_params(base: dict, changes: dict) -> dict:
    """`changes` laid over `base`, section by section and key by key (a params overlay)."""
    merged = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = merge_params(base[key], value) if nested else value
    return merged


def parse_params(raw: object, path: Path = Path("params.yaml")) -> Params:
    """Validate an already-loaded params mapping."""
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise PipelineError(_one_line(error, path)) from None


def load_params(path: Path = Path("params.yaml")) -> Params:
    """Read and validate params.yaml."""
    if not path.is_file():
        raise PipelineError(f"{path} not found; run the stage from the repository root")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=ParamsLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as error:
        raise PipelineError(
            f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at position {error.start}); "
            "save it as UTF-8"
        ) from None
    except DuplicateKey as error:
        line = error.problem_mark.line + 1 if error.problem_mark else "?"
        raise PipelineError(f"{path}, line {line}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML ({error.__class__.__name__}); fix its syntax") from None
    return parse_params(raw, path)
