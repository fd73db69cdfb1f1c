"""Scores from predictions and truths on disk: pure numpy/pandas, usable for any model.

Segmentation is scored per patient, over the patient's whole volume of slices, as
published LGG results are (Buda et al., 2019), never pooled over all test pixels.
"""

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def classification_scores(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """Accuracy, precision, recall, F1, ROC AUC and the confusion counts at a threshold."""
    predicted = (probabilities >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    both_classes = len(np.unique(labels)) == 2
    return {
        "test_size": len(labels),
        "threshold": threshold,
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def best_f1_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The threshold that maximises F1 (to be chosen on validation, never on test)."""
    precision, recall, thresholds = skm.precision_recall_curve(labels, probabilities)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def roc_points(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    fpr, tpr, _ = skm.roc_curve(labels, probabilities)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """2|A∩B| / (|A|+|B|); 1.0 when both are empty (nothing to find, nothing found)."""
    predicted, truth = predicted.astype(bool), truth.astype(bool)
    total = predicted.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(predicted, truth).sum() / total)


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """|A∩B| / |A∪B|; 1.0 when both are empty."""
    predicted, truth = predicted.astype(bool), truth.astype(bool)
    union = np.logical_or(predicted, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, truth).sum() / union)


def per_patient_scores(patients: pd.Series, predicted: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """Dice and IoU of each patient's whole volume; `patients` names the patient of each slice."""
    rows = []
    for patient, index in patients.groupby(patients.to_numpy()).groups.items():
        positions = patients.index.get_indexer(index)
        rows.append(
            {
                "patient": patient,
                "slices": len(positions),
                "tumour_slices": int(truth[positions].reshape(len(positions), -1).any(axis=1).sum()),
                "dice": dice(predicted[positions], truth[positions]),
                "iou": iou(predicted[positions], truth[positions]),
            }
        )
    return pd.DataFrame(rows)


def per_slice_summary(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Slice-level figures, split into slices with tumour and healthy slices."""
    has_tumour = truth.reshape(len(truth), -1).any(axis=1)
    predicted_area = predicted.reshape(len(predicted), -1).sum(axis=1)
    tumour_dice = [dice(p, t) for p, t in zip(predicted[has_tumour], truth[has_tumour], strict=True)]
    found = predicted_area > 0
    return {
        "tumour_slices": int(has_tumour.sum()),
        "healthy_slices": int((~has_tumour).sum()),
        # a slice counts as detected when any pixel is predicted tumour
        "detection_sensitivity": float(found[has_tumour].mean()) if has_tumour.any() else float("nan"),
        "detection_specificity": float((~found[~has_tumour]).mean()) if (~has_tumour).any() else float("nan"),
        "mean_dice_tumour_slices": float(np.mean(tumour_dice)) if tumour_dice else float("nan"),
        "healthy_slices_with_false_positive": int((predicted_area[~has_tumour] > 0).sum()),
        "mean_false_positive_pixels_healthy": float(predicted_area[~has_tumour].mean()) if (~has_tumour).any() else 0.0,
    }


def segmentation_scores(per_patient: pd.DataFrame, per_slice: dict) -> dict:
    return {
        "test_patients": len(per_patient),
        "test_slices": int(per_patient["slices"].sum()),
        "dice_mean": float(per_patient["dice"].mean()),
        "dice_median": float(per_patient["dice"].median()),
        "iou_mean": float(per_patient["iou"].mean()),
        "iou_median": float(per_patient["iou"].median()),
        "per_slice": per_slice,
    }


def gate_misses(truth: np.ndarray, positive: np.ndarray) -> dict:
    """How many tumour slices the gate sent away, and how many healthy slices it let through."""
    has_tumour = truth.reshape(len(truth), -1).any(axis=1)
    return {
        "tumour_slices_missed": int((has_tumour & ~positive).sum()),
        "tumour_slices": int(has_tumour.sum()),
        "healthy_slices_passed": int((~has_tumour & positive).sum()),
    }
