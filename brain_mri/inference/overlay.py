"""The picture predict writes beside each mask, and the test results' grid shows: a scan with its masks drawn in."""

import numpy as np

from brain_mri.data.processed import FLAIR  # the channel that shows the tumour


def overlay(image: np.ndarray, truth: np.ndarray | None, predicted: np.ndarray) -> np.ndarray:
    """Image in grey (FLAIR for LGG slices), ground truth in green, prediction in red (yellow where both).

    Returns uint8 RGB, computed in 8 bits: a 6300x6300 scan costs 3 bytes a pixel, not the 12
    of float32 (predict writes one per input). Grey scans have three equal channels, so
    channel 1 is right for them too.
    """
    grey = image[..., FLAIR] if image.ndim == 3 else image
    dimmed = (grey.astype(np.uint16) * 178 // 255).astype(np.uint8)  # 70% of the grey: 178 at most
    picture = np.repeat(dimmed[..., None], 3, axis=2)
    if truth is not None:
        picture[..., 1] += np.uint8(77) * truth.astype(bool)  # plus 30%: 255 at most
    picture[..., 0] += np.uint8(77) * predicted.astype(bool)
    return picture
