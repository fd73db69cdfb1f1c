import numpy as np
import pytest

from brain_mri.models.losses import segmentation_loss, segmentation_metrics


def batch(values):
    return np.array(values, np.float32).reshape(1, 2, 2, 1)


def test_jaccard_loss_is_one_minus_soft_iou():
    truth = batch([1, 1, 0, 0])
    predicted = batch([1, 0.5, 0.5, 0])
    intersection = 1.5  # sum(truth * predicted)
    union = 2 + 2 - intersection  # sum(truth) + sum(predicted) - intersection
    loss = float(segmentation_loss("jaccard")(truth, predicted))
    assert loss == pytest.approx(1 - intersection / union, abs=1e-4)


def test_dice_loss_is_one_minus_soft_dice():
    truth = batch([1, 1, 0, 0])
    predicted = batch([1, 0.5, 0.5, 0])
    loss = float(segmentation_loss("dice")(truth, predicted))
    assert loss == pytest.approx(1 - 2 * 1.5 / 4, abs=1e-4)


def test_metrics_threshold_predictions_before_scoring():
    iou_metric, dice_metric = segmentation_metrics(threshold=0.5)
    truth = batch([1, 1, 0, 0])
    predicted = batch([0.9, 0.4, 0.6, 0.1])  # thresholded: [1, 0, 1, 0]
    assert float(iou_metric(truth, predicted)) == pytest.approx(1 / 3, abs=1e-4)
    assert float(dice_metric(truth, predicted)) == pytest.approx(0.5, abs=1e-4)
