"""The U-Net's losses and metrics, by name."""

import keras
import segmentation_models as sm


def segmentation_loss(name: str) -> keras.losses.Loss:
    """The U-Net loss by name; Jaccard is the original project's."""
    return {
        "jaccard": sm.losses.JaccardLoss(),
        "dice": sm.losses.DiceLoss(),
        "bce_jaccard": sm.losses.bce_jaccard_loss,
    }[name]


def segmentation_metrics(threshold: float = 0.5) -> list:
    return [
        sm.metrics.IOUScore(threshold=threshold, name="iou"),
        sm.metrics.FScore(threshold=threshold, name="dice"),
    ]
