import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from brain_mri.evaluation.figures import dice_per_patient
from brain_mri.evaluation.scores import (
    best_f1_threshold,
    classification_scores,
    dice,
    iou,
    per_patient_scores,
    per_slice_summary,
)
from brain_mri.training.figures import training_curves


def test_dice_and_iou_match_hand_computed_values():
    predicted = np.zeros((4, 4), bool)
    truth = np.zeros((4, 4), bool)
    predicted[0, :3] = True  # 3 pixels
    truth[0, 1:] = True  # 3 pixels, 2 shared
    assert dice(predicted, truth) == pytest.approx(2 * 2 / 6)
    assert iou(predicted, truth) == pytest.approx(2 / 4)


def test_empty_prediction_of_an_empty_mask_is_perfect_and_of_a_tumour_is_zero():
    empty = np.zeros((3, 3), bool)
    tumour = empty.copy()
    tumour[1, 1] = True
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(empty, tumour) == 0.0


def test_dice_is_computed_over_each_patients_whole_volume():
    truth = np.zeros((3, 2, 2), bool)
    predicted = np.zeros((3, 2, 2), bool)
    truth[0, 0, 0] = truth[1, 0, 0] = True  # patient A: two tumour pixels
    predicted[0, 0, 0] = True  # one found
    truth[2] = predicted[2] = True  # patient B: perfect
    patients = pd.Series(["A", "A", "B"])
    scores = per_patient_scores(patients, predicted, truth).set_index("patient")
    assert scores.loc["A", "dice"] == pytest.approx(2 * 1 / 3)  # not the mean of slice Dice (0.5)
    assert scores.loc["B", "dice"] == 1.0
    assert scores.loc["A", "tumour_slices"] == 2


def test_false_positives_on_healthy_slices_are_counted():
    truth = np.zeros((2, 2, 2), bool)
    predicted = np.zeros((2, 2, 2), bool)
    predicted[1, 0, :] = True
    summary = per_slice_summary(predicted, truth)
    assert summary["healthy_slices"] == 2
    assert summary["healthy_slices_with_false_positive"] == 1
    assert summary["mean_false_positive_pixels_healthy"] == 1.0


def test_classification_scores_match_hand_computed_values():
    labels = np.array([1, 1, 1, 0, 0])
    probabilities = np.array([0.9, 0.8, 0.3, 0.6, 0.1])
    scores = classification_scores(labels, probabilities, threshold=0.5)
    assert scores["confusion"] == {"tp": 2, "fn": 1, "fp": 1, "tn": 1}
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["roc_auc"] == pytest.approx(5 / 6)
    assert scores["test_size"] == 5


def test_best_f1_threshold_separates_separable_scores():
    labels = np.array([0, 0, 1, 1])
    threshold = best_f1_threshold(labels, np.array([0.1, 0.2, 0.7, 0.9]))
    assert 0.2 < threshold <= 0.7


def test_the_per_patient_dice_legend_covers_no_bar():
    per_patient = pd.DataFrame({"patient": [f"P{i}" for i in range(6)], "dice": np.linspace(0.1, 0.99, 6)})
    cascade = per_patient.assign(dice=np.linspace(0.99, 0.2, 6))
    figure = dice_per_patient(per_patient, cascade)
    figure.canvas.draw()
    axis = figure.axes[0]
    legend = axis.get_legend().get_window_extent()
    bars = [patch.get_window_extent() for patch in axis.patches]
    assert len(bars) == 12 and not any(legend.overlaps(bar) for bar in bars)
    plt.close(figure)


def test_one_wild_epoch_does_not_flatten_the_loss_curve():
    history = pd.DataFrame(
        {"epoch": [1, 2, 3, 4], "loss": [0.7, 0.5, 0.4, 0.3], "val_loss": [0.7, 52.0, 0.5, 0.4]}
        | {"accuracy": [0.5, 0.6, 0.7, 0.8], "val_accuracy": [0.5, 0.5, 0.6, 0.7]}
    )
    figure = training_curves(history, "accuracy")
    loss_axis = figure.axes[0]
    assert loss_axis.get_yscale() == "log"
    low, high = loss_axis.get_ylim()
    # on a log axis 0.3 and 0.5 stay a visible part of the height; on a linear one they are 0.4% of it
    assert (np.log(0.5) - np.log(0.3)) / (np.log(high) - np.log(low)) > 0.05
    plt.close(figure)


def test_slice_detection_sensitivity_and_specificity_count_slices_with_any_predicted_pixel():
    truth = np.zeros((5, 2, 2), bool)
    truth[:2, 0, 0] = True  # two tumour slices, three healthy
    predicted = np.zeros((5, 2, 2), bool)
    predicted[0, 1, 1] = True  # found, though in the wrong pixel
    predicted[4, 0, 0] = True  # a false positive
    summary = per_slice_summary(predicted, truth)
    assert summary["detection_sensitivity"] == 0.5
    assert summary["detection_specificity"] == pytest.approx(2 / 3)
