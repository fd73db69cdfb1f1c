"""Both models on the processed test split: their predictions, scored, and the cascade of the two."""

import cv2
import keras
import numpy as np
import pandas as pd

from brain_mri.common.params import Evaluate
from brain_mri.data.processed import ClassificationData, SegmentationData, split_rows
from brain_mri.evaluation.scores import (
    best_f1_threshold,
    classification_scores,
    gate_misses,
    per_patient_scores,
    per_slice_summary,
    segmentation_scores,
)
from brain_mri.inference.cascade import predict_in_batches
from brain_mri.inference.volumes import SlicePosition
from brain_mri.training.pipelines import classification_dataset, segmentation_dataset

BATCH = 16


def classifier_probabilities(model: keras.Model, images, rows: np.ndarray) -> np.ndarray:
    """P(tumour) of the given rows of an image array, resized to the classifier's input."""
    size = model.input_shape[1]
    unlabelled = np.zeros(len(images), np.float32)
    dataset = classification_dataset(images, unlabelled, rows, size, BATCH, 0, augment=False)
    return model.predict(dataset, verbose=0)[:, 0]


def unet_masks(model: keras.Model, slices, masks, rows: np.ndarray, threshold: float) -> np.ndarray:
    """Predicted masks (N, 256, 256) bool, upsampled from the model's size to the slices' own."""
    size = model.input_shape[1]
    probabilities = model.predict(
        segmentation_dataset(slices, masks, rows, size, BATCH, 0, augment=False),
        verbose=0,
    )
    native = slices.shape[1]
    return np.stack(
        [cv2.resize(p[..., 0], (native, native), interpolation=cv2.INTER_LINEAR) >= threshold for p in probabilities]
    )


def image_cascade(classifier: keras.Model, unet: keras.Model, data: ClassificationData, rows, config: Evaluate) -> dict:
    """The test images through predict's cascade: how often its tumour call (segmented or not) is right."""
    images = [np.asarray(data.images[row]) for row in rows]
    _, _, segmented, _ = cascade_on_inputs(images, "image", (classifier, unet), config)
    return {"gate": "classifier", "accuracy": float((segmented == data.labels[rows].astype(bool)).mean())}


def score_classifier(
    classifier: keras.Model, unet: keras.Model, data: ClassificationData, config: Evaluate
) -> tuple[dict, pd.DataFrame]:
    """Test scores at the threshold param, the best-F1 threshold on val, and (label, P) per test image."""
    test_rows, val_rows = split_rows(data.manifest, "test"), split_rows(data.manifest, "val")
    test_probabilities = classifier_probabilities(classifier, data.images, test_rows)
    report = classification_scores(data.labels[test_rows], test_probabilities, config.threshold)
    val_probabilities = classifier_probabilities(classifier, data.images, val_rows)
    report["best_f1_threshold_on_val"] = best_f1_threshold(data.labels[val_rows], val_probabilities)
    report["cascade"] = image_cascade(classifier, unet, data, test_rows, config)
    return report, pd.DataFrame({"label": data.labels[test_rows], "probability": test_probabilities})


def score_segmentation(
    unet: keras.Model, classifier: keras.Model, data: SegmentationData, config: Evaluate
) -> tuple[dict, pd.DataFrame, list]:
    """Per-patient and per-slice scores of the U-Net alone and through the cascade, and the grid's rows."""
    test = data.manifest[data.manifest["split"] == "test"].reset_index(drop=True)
    rows = test["row"].to_numpy()
    truth = data.masks[rows] > 0
    predicted = unet_masks(unet, data.slices, data.masks, rows, config.mask_threshold)
    per_patient = per_patient_scores(test["patient"], predicted, truth)
    report = segmentation_scores(per_patient, per_slice_summary(predicted, truth))

    # the cascade exactly as predict runs it on these slices, beside the same path without the gate
    through, ungated, gate_says_tumour, classifier_says_tumour = cascade_on_inputs(
        [np.asarray(data.slices[row]) for row in rows],
        "slice",
        (classifier, unet),
        config,
        positions=list(zip(test["patient"], test["slice"], strict=True)),
    )
    through_cascade = per_patient_scores(test["patient"], through, truth)
    without_gate = per_patient_scores(test["patient"], ungated, truth)
    has_tumour = truth.reshape(len(truth), -1).any(axis=1)
    report["cascade"] = {
        "gate": "unet_area",
        "dice_mean": float(through_cascade["dice"].mean()),
        "dice_median": float(through_cascade["dice"].median()),
        "ungated_dice_mean": float(without_gate["dice"].mean()),
        "ungated_dice_median": float(without_gate["dice"].median()),
        "healthy_slices_with_false_positive": per_slice_summary(through, truth)["healthy_slices_with_false_positive"],
        "ungated_healthy_slices_with_false_positive": per_slice_summary(ungated, truth)[
            "healthy_slices_with_false_positive"
        ],
        **gate_misses(truth, gate_says_tumour),
        # what the classifier gate would do here: the reason slices are gated by area
        "classifier_sensitivity_on_slices": share(classifier_says_tumour[has_tumour]),
        "classifier_specificity_on_slices": share(~classifier_says_tumour[~has_tumour]),
    }
    per_patient["cascade_dice"] = through_cascade["dice"].to_numpy()
    return report, per_patient, example_rows(test, data.slices, truth, predicted, per_patient)


def share(calls: np.ndarray) -> float:
    """The fraction of True, NaN for no calls at all."""
    return float(calls.mean()) if len(calls) else float("nan")


def cascade_on_inputs(
    images: list[np.ndarray], kind: str, models, config: Evaluate, positions: list[SlicePosition] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """predict's cascade on inputs of one kind (each patient's slices one volume): its masks, the
    U-Net's ungated masks, the gate's calls and the classifier's tumour calls (bool arrays)."""
    predictions = predict_in_batches(images, kind, models, config, positions)
    return (
        np.stack([p.mask > 0 for p in predictions]),
        np.stack([p.unet_mask > 0 for p in predictions]),
        np.array([p.segmented for p in predictions]),
        np.array([p.tumour_probability >= config.threshold for p in predictions]),
    )


def example_rows(
    test: pd.DataFrame,
    slices,
    truth: np.ndarray,
    predicted: np.ndarray,
    per_patient: pd.DataFrame,
    per_patient_rows: int = 2,
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(title, slice, truth, prediction) of the largest-tumour slices of the best and the worst test patient."""
    ranked = per_patient.sort_values("dice")
    chosen = [("worst", ranked.iloc[0]), ("best", ranked.iloc[-1])] if len(ranked) > 1 else [("only", ranked.iloc[0])]
    rows = []
    for kind, patient in chosen:
        positions = np.flatnonzero(test["patient"].to_numpy() == patient["patient"])
        area = truth[positions].reshape(len(positions), -1).sum(axis=1)
        for position in positions[np.argsort(-area)[:per_patient_rows]]:
            title = f"{kind}: {patient['patient']}\nDice {patient['dice']:.2f}, slice {test['slice'][position]}"
            rows.append((title, np.asarray(slices[test["row"][position]]), truth[position], predicted[position]))
    return rows
