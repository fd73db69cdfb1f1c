"""The classify-then-segment cascade, as predict runs it and evaluate measures it.

Each input gets a tumour / no-tumour gate, then keeps the U-Net's mask only where the gate
says tumour. The gate depends on what the input is. An MRI slice as kaggle_3m stores it (a
TIFF of three sequences) is gated by the U-Net's own predicted area: the classifier learned
its tumours from the 253-image set and calls LGG slices healthy (all 366 test slices of the
59-patient split, docs/lab-notebook.md). Any other image (JPEG/PNG, the classification set's
kind) is gated by the classifier, which is what it was trained on; for those the cascade's
tumour call is the classifier's.

Before the gate, the U-Net's masks can be improved two ways (evaluate params, both off by default):
test_time_flip averages each map with the map of the left/right mirrored input, and
largest_component keeps only the largest 3D component of each patient's slices (volumes.py).
"""

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain_mri.common.params import Evaluate
from brain_mri.data.processed import SLICE_SIZE
from brain_mri.inference.inputs import classifier_input, mask_at_input_size, unet_input
from brain_mri.inference.volumes import SlicePosition, keep_largest_components, volume_order

INPUT_KINDS = ("slice", "image")
BATCH_SIZE = 16  # inputs predicted at once: predict's default, and evaluate's batches
# about 100 MB of decoded RGB: with the masks and overlays of the largest input, predict stays under 1 GB
BATCH_PIXELS = 1 << 25
MODEL_BATCH = 32  # Model.predict's default batch: the most inputs a model sees at once, whatever BATCH_SIZE
SLICE_SUFFIXES = (".tif", ".tiff")


def input_kind(path: Path) -> str:
    """'slice' for a TIFF (how kaggle_3m stores its MRI slices), 'image' for any other file."""
    return "slice" if path.suffix.lower() in SLICE_SUFFIXES else "image"


def gate_name(kind: str) -> str:
    return "unet_area" if kind == "slice" else "classifier"


@dataclass(frozen=True)
class Prediction:
    tumour_probability: float  # the classifier's P(tumour)
    gate: str  # unet_area | classifier
    segmented: bool  # the gate said tumour (always, without the cascade)
    unet_mask: np.ndarray  # (H, W) uint8 0/255 at the input's own size, post-processed, before the gate

    @property
    def mask(self) -> np.ndarray:
        """The cascade's mask: the U-Net's where the gate said tumour, else empty."""
        return self.unet_mask if self.segmented else np.zeros_like(self.unet_mask)


def gate_passes(kind: str, probability: float, mask: np.ndarray, config: Evaluate) -> bool:
    if kind == "slice":
        # min_tumour_pixels is given for a 256x256 slice; other sizes scale it by area
        min_pixels = config.min_tumour_pixels * mask.size / SLICE_SIZE**2
        return int(np.count_nonzero(mask)) > min_pixels
    return probability >= config.threshold


@functools.lru_cache(maxsize=2)  # evaluate and predict run one classifier and one U-Net
def forward_pass(model) -> Callable:
    """The model's forward pass as one graph for any batch size (one trace per model).

    predict_on_batch traces Keras' predict function again for new input shapes, and TensorFlow counts
    those traces over all models together: the default run's evaluate warned of retracing every time.
    Called eagerly instead, the U-Net took 1.6 times as long on 423 slices (CPU).
    """
    import tensorflow as tf  # here: predict answers --help and a missing input without loading TensorFlow

    # the saved models were rebuilt from model.inputs (brain_mri.models.saving.for_inference), so they take
    # their one input as a list, and Keras warns when given a bare tensor; a model built here takes a tensor
    listed = isinstance(model.input, list)
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    return tf.function(lambda batch: model([batch] if listed else batch, training=False), input_signature=[spec])


def in_model_batches(model, inputs: np.ndarray) -> np.ndarray:
    """The model's output for inputs, at most MODEL_BATCH at a time (predict's --batch-size may be larger)."""
    forward = forward_pass(model)
    return np.concatenate(
        [forward(inputs[start : start + MODEL_BATCH]).numpy() for start in range(0, len(inputs), MODEL_BATCH)]
    )


def unet_maps(unet, images: Sequence[np.ndarray], flip: bool) -> np.ndarray:
    """P(tumour) per pixel at the U-Net's input size, (N, S, S); with flip, the mean with the map of the
    left/right mirrored input, mirrored back."""
    inputs = np.stack([unet_input(image, unet.input_shape[1]) for image in images])
    maps = in_model_batches(unet, inputs)[..., 0]
    if flip:
        maps = (maps + in_model_batches(unet, inputs[:, :, ::-1])[:, :, ::-1, 0]) / 2
    return maps


def predict_images(
    images: Sequence[np.ndarray],
    kinds: Sequence[str],
    models,
    config: Evaluate,
    cascade: bool = True,
    positions: Sequence[SlicePosition | None] | None = None,
) -> list[Prediction]:
    """Both models on decoded RGB uint8 images of any size; the cascade's answer for each.

    `positions` places slices in their patient's volume (volumes.slice_position); with
    config.largest_component each volume among the images is post-processed whole.
    """
    classifier, unet = models
    probabilities = in_model_batches(
        classifier, np.stack([classifier_input(image, classifier.input_shape[1]) for image in images])
    )[:, 0]
    maps = unet_maps(unet, images, config.test_time_flip)
    masks = [
        mask_at_input_size(probability_map, image.shape[:2], config.mask_threshold)
        for image, probability_map in zip(images, maps, strict=True)
    ]
    if config.largest_component and positions is not None:
        masks = keep_largest_components(masks, positions)
    predictions = []
    for kind, probability, mask in zip(kinds, probabilities, masks, strict=True):
        segmented = not cascade or gate_passes(kind, float(probability), mask, config)
        predictions.append(Prediction(float(probability), gate_name(kind), segmented, mask))
    return predictions


def batch_is_full(
    count: int, pixels: int, batch_size: int, position: SlicePosition | None, next_position: SlicePosition | None
) -> bool:
    """Whether a batch of `count` inputs and `pixels` decoded pixels ends before the next input: at
    batch_size inputs or BATCH_PIXELS pixels, so that memory stays bounded, but never between two slices
    of one volume, which are post-processed together (a volume may make a batch larger)."""
    inside_volume = position is not None and next_position is not None and position[0] == next_position[0]
    return (count >= batch_size or pixels >= BATCH_PIXELS) and not inside_volume


def volume_batches(
    positions: Sequence[SlicePosition | None], load: Callable[[int], np.ndarray | Exception], batch_size: int
) -> Iterator[list[tuple[int, np.ndarray | Exception]]]:
    """The inputs' indices with load(index), in volume_order, loaded as they are met and handed on a batch
    at a time: a batch ends where batch_is_full says, counting the inputs that loaded and their pixels.
    An input that could not be loaded (load gives its error) stays in the batch it was met in, so the
    last batch may hold no image."""
    order = volume_order(positions)
    batch: list[tuple[int, np.ndarray | Exception]] = []
    count = pixels = 0
    for place, index in enumerate(order):
        loaded = load(index)
        batch.append((index, loaded))
        if isinstance(loaded, np.ndarray):
            count, pixels = count + 1, pixels + loaded.shape[0] * loaded.shape[1]
        del loaded  # the batch holds it; held here too, a batch's last image would outlive the batch
        last = place == len(order) - 1
        if last or (count and batch_is_full(count, pixels, batch_size, positions[index], positions[order[place + 1]])):
            yield batch
            batch, count, pixels = [], 0, 0


def predict_in_batches(
    images: Sequence[np.ndarray],
    kind: str,
    models,
    config: Evaluate,
    positions: Sequence[SlicePosition | None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[Prediction]:
    """predict_images over decoded inputs of one kind, batched as predict batches them (volume_batches);
    the answers in the inputs' order."""
    if not (config.largest_component and positions is not None):
        positions = [None] * len(images)
    predictions: list[Prediction | None] = [None] * len(images)
    for batch in volume_batches(positions, images.__getitem__, batch_size):
        indices = [index for index, _ in batch]
        answers = predict_images(
            [image for _, image in batch],
            [kind] * len(batch),
            models,
            config,
            positions=[positions[i] for i in indices],
        )
        for index, answer in zip(indices, answers, strict=True):
            predictions[index] = answer
    return predictions
