"""Preparing a user's image for the models and turning predictions back into its own size."""

import cv2
import numpy as np

from brain_mri.data.images import crop_to_brain, resize_square


def classifier_input(image: np.ndarray, size: int) -> np.ndarray:
    """As in training: crop to the head, then resize (pixels 0..255, float32)."""
    return resize_square(crop_to_brain(image), size).astype(np.float32)


def unet_input(image: np.ndarray, size: int) -> np.ndarray:
    """As in training: the whole slice, resized (pixels 0..255, float32)."""
    return resize_square(image, size).astype(np.float32)


def mask_at_input_size(probability: np.ndarray, shape: tuple[int, int], threshold: float) -> np.ndarray:
    """A (S, S) probability map resized to the input's (H, W), thresholded to 0/255 uint8."""
    height, width = shape
    resized = cv2.resize(probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.where(resized >= threshold, 255, 0).astype(np.uint8)
