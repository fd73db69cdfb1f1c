"""tf.data input pipelines: stream uint8 arrays, resize once, cache uint8, augment, batch, prefetch.

The processed arrays are memory-mapped and read row by row, so the dataset is never held
as one float array; the cache holds uint8 at training size, and augmentation runs after
the cache so that every epoch sees new transforms.
"""

import threading
from collections.abc import Callable

import albumentations as A
import cv2
import numpy as np
import tensorflow as tf

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


def unet_augmentation() -> A.Compose:
    """Geometric transforms applied to slice and mask together; intensity to the slice only."""
    return A.Compose(
        [
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


class _SeededAugmenter:
    """Calls an albumentations pipeline with a seed per element, one copy per thread.

    tf.data runs the map on several threads; a shared random state would make the
    augmentations depend on thread timing. A per-element seed makes them depend only on
    the base seed and the element's position in the shuffled epoch.
    """

    def __init__(self, make: Callable[[], A.Compose]):
        self._make = make
        self._local = threading.local()

    def __call__(self, seed: np.int64, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        if not hasattr(self._local, "compose"):
            self._local.compose = self._make()
        self._local.compose.set_random_seed(int(seed) % (2**32))
        return self._local.compose(**arrays)


def _rows_of(array: np.ndarray, rows: np.ndarray, size: int, interpolation: int):
    def generate():
        for row in rows:
            yield cv2.resize(np.asarray(array[row]), (size, size), interpolation=interpolation)

    return generate


def classification_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    image_size: int,
    batch_size: int,
    seed: int,
    augment: bool,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255 (B, S, S, 3), float32 label (B, 1))."""
    pixels = tf.data.Dataset.from_generator(
        _rows_of(images, rows, image_size, cv2.INTER_AREA),
        output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8),
    )
    targets = tf.data.Dataset.from_tensor_slices(labels[rows].astype(np.float32)[:, None])
    dataset = tf.data.Dataset.zip(pixels, targets).apply(tf.data.experimental.assert_cardinality(len(rows))).cache()
    if augment:
        augmenter = _SeededAugmenter(classifier_augmentation)

        def augment_image(image: np.ndarray, element_seed: np.int64) -> np.ndarray:
            return augmenter(element_seed, image=image)["image"]

        def augment_element(element_seed, image, label):
            image = tf.numpy_function(augment_image, [image, element_seed], tf.uint8, stateful=False)
            return tf.ensure_shape(image, (image_size, image_size, 3)), label

        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
        dataset = tf.data.Dataset.zip(tf.data.Dataset.random(seed=seed), dataset)
        dataset = dataset.map(lambda s, pair: augment_element(s, *pair), num_parallel_calls=AUTOTUNE)
    return dataset.map(lambda image, label: (tf.cast(image, tf.float32), label)).batch(batch_size).prefetch(AUTOTUNE)


def segmentation_dataset(
    slices: np.ndarray,
    masks: np.ndarray,
    rows: np.ndarray,
    image_size: int,
    batch_size: int,
    seed: int,
    augment: bool,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255 (B, S, S, 3), float32 mask 0/1 (B, S, S, 1))."""
    pixels = tf.data.Dataset.from_generator(
        _rows_of(slices, rows, image_size, cv2.INTER_AREA),
        output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8),
    )
    targets = tf.data.Dataset.from_generator(
        _rows_of(masks, rows, image_size, cv2.INTER_NEAREST),
        output_signature=tf.TensorSpec((image_size, image_size), tf.uint8),
    )
    dataset = tf.data.Dataset.zip(pixels, targets).apply(tf.data.experimental.assert_cardinality(len(rows))).cache()
    if augment:
        augmenter = _SeededAugmenter(unet_augmentation)

        def augment_pair(image: np.ndarray, mask: np.ndarray, element_seed: np.int64):
            out = augmenter(element_seed, image=image, mask=mask)
            return out["image"], out["mask"]

        def augment_element(element_seed, image, mask):
            image, mask = tf.numpy_function(
                augment_pair,
                [image, mask, element_seed],
                (tf.uint8, tf.uint8),
                stateful=False,
            )
            return tf.ensure_shape(image, (image_size, image_size, 3)), tf.ensure_shape(mask, (image_size, image_size))

        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
        dataset = tf.data.Dataset.zip(tf.data.Dataset.random(seed=seed), dataset)
        dataset = dataset.map(lambda s, pair: augment_element(s, *pair), num_parallel_calls=AUTOTUNE)

    def to_model_input(image, mask):
        return tf.cast(image, tf.float32), tf.cast(mask[..., None] > 127, tf.float32)

    return dataset.map(to_model_input, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE)
