"""tf.data input pipelines: stream uint8 arrays, resize once, cache uint8, augment, batch, prefetch.

The processed arrays are read row by row (`brain_mri.data.processed.NpyRows`), so the dataset is
never held as one float array; the cache holds uint8 at training size, and augmentation
runs after the cache so that every epoch sees new transforms.
"""

import functools
import threading
from collections.abc import Callable

import albumentations as A
import cv2
import numpy as np
import tensorflow as tf

from brain_mri.data.processed import FLAIR, POST_CONTRAST, PRE_CONTRAST

AUTOTUNE = tf.data.AUTOTUNE


def classifier_augmentation() -> A.Compose:
    """The original notebook's augmentations: rotation, left/right flip, gamma."""
    return A.Compose(
        [
            A.Rotate(limit=15, border_mode=cv2.BORDER_CONSTANT, p=0.7),
            A.HorizontalFlip(p=0.5),
            A.RandomGamma(gamma_limit=(80, 120), p=0.5),
        ]
    )


class MissingSequenceAsFlair(A.ImageOnlyTransform):
    """Puts FLAIR in place of the pre-contrast and/or post-contrast channel of an LGG slice.

    That is how kaggle_3m stores a sequence a patient lacks: 5 of the 24 sample patients
    have one (3 have FLAIR alone), and a model that never met such slices in training can
    miss their tumours entirely.
    """

    MISSING = ((PRE_CONTRAST,), (POST_CONTRAST,), (PRE_CONTRAST, POST_CONTRAST))

    def get_params(self) -> dict:
        return {"missing": self.py_random.choice(self.MISSING)}

    def apply(self, img: np.ndarray, missing: tuple[int, ...], **params) -> np.ndarray:
        out = img.copy()
        out[..., list(missing)] = img[..., [FLAIR]]
        return out


def unet_augmentation(missing_sequence_p: float = 0.0) -> A.Compose:
    """Geometric transforms applied to slice and mask together; intensity to the slice only."""
    return A.Compose(
        [
            MissingSequenceAsFlair(p=missing_sequence_p),
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.9, 1.1),
                translate_percent=(-0.05, 0.05),
                rotate=(-10, 10),
                border_mode=cv2.BORDER_CONSTANT,
                p=0.7,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
            A.RandomGamma(gamma_limit=(85, 115), p=0.5),
        ]
    )


class SeededAugmenter:
    """Calls an albumentations pipeline with a seed per element, one copy per thread.

    tf.data runs the map on several threads; a shared random state would make the
    augmentations depend on thread timing. A per-element seed makes them depend only on
    the base seed and the element's position in the shuffled epoch.
    """

    def __init__(self, make: Callable[[], A.Compose]):
        self._make = make
        self._local = threading.local()

    def __call__(self, seed: np.int64, image: np.ndarray, mask: np.ndarray | None = None) -> tuple:
        if not hasattr(self._local, "compose"):
            self._local.compose = self._make()
        self._local.compose.set_random_seed(int(seed) % (2**32))
        if mask is None:
            return (self._local.compose(image=image)["image"],)
        out = self._local.compose(image=image, mask=mask)
        return out["image"], out["mask"]


def _streamed(array: np.ndarray, rows: np.ndarray, size: int, interpolation: int) -> tf.data.Dataset:
    """Rows of a uint8 array (or NpyRows), resized to size x size, one at a time."""

    def generate():
        for row in rows:
            yield cv2.resize(np.asarray(array[row]), (size, size), interpolation=interpolation)

    shape = (size, size, 3) if array.ndim == 4 else (size, size)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec(shape, tf.uint8))
    return dataset.apply(tf.data.experimental.assert_cardinality(len(rows)))


def _finish(
    dataset: tf.data.Dataset,
    n: int,
    augmenter: SeededAugmenter | None,
    seed: int,
    to_model: Callable,
    batch_size: int,
    drop_remainder: bool,
) -> tf.data.Dataset:
    """When training: cache (uint8), shuffle and augment. Then batch, convert, prefetch.

    Only the training data is cached: it is read every epoch and augmented afresh, while
    validation data is read once an epoch straight from disk, which keeps its copy out of
    memory. Batches are converted to float32 after batching, so that the buffers between
    the steps hold uint8.
    `drop_remainder` drops a last, smaller batch: split across several replicas it can
    leave one of them an empty batch, which some layers (batch norm) cannot take.
    """
    if augmenter is not None:
        dataset = dataset.cache().shuffle(n, seed=seed, reshuffle_each_iteration=True)
        dataset = tf.data.Dataset.zip(tf.data.Dataset.random(seed=seed), dataset)

        def augment(element_seed, pair):
            image, target = pair
            if target.dtype == tf.uint8:  # a mask: transformed together with the image
                image_out, target_out = tf.numpy_function(
                    augmenter, [element_seed, image, target], (tf.uint8, tf.uint8), stateful=False
                )
                return tf.ensure_shape(image_out, image.shape), tf.ensure_shape(target_out, target.shape)
            (image_out,) = tf.numpy_function(augmenter, [element_seed, image], (tf.uint8,), stateful=False)
            return tf.ensure_shape(image_out, image.shape), target

        dataset = dataset.map(augment, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    # the rows come from a Python generator, which cannot be split by file across workers
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    drop_remainder = drop_remainder and n >= batch_size
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(to_model, num_parallel_calls=AUTOTUNE)
    dataset = dataset.prefetch(AUTOTUNE)
    return dataset.with_options(options)


def classification_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    image_size: int,
    batch_size: int,
    seed: int,
    augment: bool,
    drop_remainder: bool = False,
    class_weight: dict[int, float] | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255 (B, S, S, 3), float32 label (B, 1)[, sample weight (B,)]).

    Class weights travel as per-sample weights in the dataset rather than as Keras'
    `class_weight`, which multi-worker training does not take.
    """
    pixels = _streamed(images, rows, image_size, cv2.INTER_AREA)
    targets = tf.data.Dataset.from_tensor_slices(labels[rows].astype(np.float32)[:, None])
    augmenter = SeededAugmenter(classifier_augmentation) if augment else None
    weights = tf.constant([class_weight.get(0, 1.0), class_weight.get(1, 1.0)] if class_weight else [1.0, 1.0])

    def to_model(image, label):
        if class_weight is None:
            return tf.cast(image, tf.float32), label
        return tf.cast(image, tf.float32), label, tf.gather(weights, tf.cast(label[..., 0], tf.int32))

    dataset = tf.data.Dataset.zip(pixels, targets)
    return _finish(dataset, len(rows), augmenter, seed, to_model, batch_size, drop_remainder)


def segmentation_dataset(
    slices: np.ndarray,
    masks: np.ndarray,
    rows: np.ndarray,
    image_size: int,
    batch_size: int,
    seed: int,
    augment: bool,
    drop_remainder: bool = False,
    missing_sequence_p: float = 0.0,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255 (B, S, S, 3), float32 mask 0/1 (B, S, S, 1))."""
    pixels = _streamed(slices, rows, image_size, cv2.INTER_AREA)
    targets = _streamed(masks, rows, image_size, cv2.INTER_NEAREST)
    augmenter = SeededAugmenter(functools.partial(unet_augmentation, missing_sequence_p)) if augment else None

    def to_model(image, mask):
        return tf.cast(image, tf.float32), tf.cast(mask[..., None] > 127, tf.float32)

    dataset = tf.data.Dataset.zip(pixels, targets)
    return _finish(dataset, len(rows), augmenter, seed, to_model, batch_size, drop_remainder)
