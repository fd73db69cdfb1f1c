"""Per-file preprocessing for crop_split: decode, validate, crop, resize. One file in, arrays out."""

import hashlib
from pathlib import Path

import cv2
import numpy as np

from stages.errors import PipelineError
from stages.images import (
    crop_to_brain,
    decode_image,
    read_mask,
    read_slice,
    resize_square,
)

SLICE_SIZE = 256


def prepare_classification_image(path: str, size: int) -> tuple[np.ndarray, str]:
    """(cropped and resized RGB image, hash of the decoded pixels) of one classification image.

    The pixel hash finds the same image saved twice, under another name or another encoding.
    """
    image = decode_image(Path(path).read_bytes(), name=path)
    pixel_hash = hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()
    return resize_square(crop_to_brain(image), size), pixel_hash


def prepare_slice(image_path: str, mask_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(slice (256, 256, 3) uint8, mask (256, 256) uint8 0/255) of one LGG slice and its mask."""
    image = read_slice(Path(image_path).read_bytes(), image_path)
    mask = read_mask(Path(mask_path).read_bytes(), mask_path)
    if image.shape[:2] != mask.shape:
        raise PipelineError(f"{mask_path}: mask is {mask.shape}, its slice is {image.shape[:2]}")
    if image.shape[:2] != (SLICE_SIZE, SLICE_SIZE):
        image = resize_square(image, SLICE_SIZE)
        mask = resize_square(mask, SLICE_SIZE, cv2.INTER_NEAREST)
    return image, mask


def try_classification_image(job: tuple[str, int]) -> tuple[np.ndarray | None, str]:
    """Worker wrapper: (image, pixel hash) or (None, reason the file was rejected)."""
    path, size = job
    try:
        return prepare_classification_image(path, size)
    except PipelineError as error:
        return None, str(error)


def try_slice(job: tuple[str, str]) -> tuple[np.ndarray | None, np.ndarray | str]:
    """Worker wrapper: (slice, mask) or (None, reason the pair was rejected)."""
    try:
        return prepare_slice(*job)
    except PipelineError as error:
        return None, str(error)
