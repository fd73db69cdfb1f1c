"""Stage evaluate: test-set scores of both models and of the classify-then-segment cascade.

Writes metrics/evaluate/{classifier,segmentation}.json (dvc metrics), plot data and
pictures beside them (dvc plots), and logs one MLflow run with all of it.
"""

from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from stages.arrays import NpyRows
from stages.errors import run_stage
from stages.evaluation import (
    best_f1_threshold,
    cascade,
    classification_scores,
    gate_by_area,
    gate_misses,
    per_patient_scores,
    per_slice_summary,
    roc_points,
    segmentation_scores,
)
from stages.figures import dice_per_patient, prediction_grid, save_png
from stages.models import load_model
from stages.outputs import atomic_file, write_json
from stages.params import load_params
from stages.pipelines import classification_dataset, segmentation_dataset
from stages.tracking import stage_run
from stages.training import split_rows

PROCESSED = Path("data/processed")
MODELS = Path("models")
OUT = Path("metrics/evaluate")
BATCH = 16


def classifier_probabilities(model, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """P(tumour) of the given rows of an image array, resized to the classifier's input."""
    size = model.input_shape[1]
    unlabelled = np.zeros(len(images), np.float32)
    dataset = classification_dataset(images, unlabelled, rows, size, BATCH, 0, augment=False)
    return model.predict(dataset, verbose=0)[:, 0]


def unet_masks(model, slices, masks, rows, threshold: float) -> np.ndarray:
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


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as partial:
        frame.to_csv(partial, index=False)


def save_figure(figure: plt.Figure, path: Path) -> None:
    mlflow.log_figure(figure, path.name)
    save_png(figure, path)


def score_classifier(classifier, config) -> tuple[dict, pd.DataFrame]:
    """Test scores at the threshold param, the best-F1 threshold on val, and (label, P) per test image."""
    images = NpyRows(PROCESSED / "classification/images.npy")
    manifest = pd.read_csv(PROCESSED / "classification/manifest.csv")
    labels = manifest.sort_values("row")["label"].to_numpy()
    test_rows, val_rows = split_rows(manifest, "test"), split_rows(manifest, "val")
    test_probabilities = classifier_probabilities(classifier, images, test_rows)
    report = classification_scores(labels[test_rows], test_probabilities, config.threshold)
    val_probabilities = classifier_probabilities(classifier, images, val_rows)
    report["best_f1_threshold_on_val"] = best_f1_threshold(labels[val_rows], val_probabilities)
    return report, pd.DataFrame({"label": labels[test_rows], "probability": test_probabilities})


def score_segmentation(unet, classifier, config) -> tuple[dict, pd.DataFrame, list]:
    """Per-patient and per-slice scores of the U-Net alone and through the cascade, and grid rows."""
    slices = NpyRows(PROCESSED / "segmentation/slices.npy")
    masks = NpyRows(PROCESSED / "segmentation/masks.npy")
    manifest = pd.read_csv(PROCESSED / "segmentation/manifest.csv")
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    rows = test["row"].to_numpy()
    truth = masks[rows] > 0
    predicted = unet_masks(unet, slices, masks, rows, config.mask_threshold)
    per_patient = per_patient_scores(test["patient"], predicted, truth)
    report = segmentation_scores(per_patient, per_slice_summary(predicted, truth))

    # the cascade: a tumour / no-tumour gate per slice, then the U-Net's mask where positive
    if config.gate == "unet_area":
        positive = gate_by_area(predicted, config.min_tumour_pixels)
    else:
        positive = classifier_probabilities(classifier, slices, rows) >= config.threshold
    through_cascade = per_patient_scores(test["patient"], cascade(predicted, positive), truth)
    report["cascade"] = {
        "gate": config.gate,
        "dice_mean": float(through_cascade["dice"].mean()),
        "dice_median": float(through_cascade["dice"].median()),
        **gate_misses(truth, positive),
    }
    per_patient["cascade_dice"] = through_cascade["dice"].to_numpy()
    return report, per_patient, grid_rows(test, slices, truth, predicted, per_patient)


def numbers(report: dict, prefix: str) -> dict[str, float]:
    return {f"{prefix}{key}": value for key, value in report.items() if isinstance(value, float | int)}


def main() -> None:
    config = load_params().evaluate
    classifier = load_model(str(MODELS / "classifier.keras"))
    unet = load_model(str(MODELS / "unet.keras"))
    classifier_report, test_images = score_classifier(classifier, config)
    segmentation_report, per_patient, grid = score_segmentation(unet, classifier, config)

    with stage_run("evaluate", config.model_dump()):
        write_json(OUT / "classifier.json", classifier_report)
        write_json(OUT / "segmentation.json", segmentation_report)
        write_csv(roc_points(test_images["label"], test_images["probability"]), OUT / "classifier_roc.csv")
        predicted_labels = (test_images["probability"] >= config.threshold).astype(int)
        confusion = pd.DataFrame({"actual": test_images["label"], "predicted": predicted_labels})
        write_csv(confusion, OUT / "classifier_confusion.csv")
        write_csv(per_patient, OUT / "per_patient_dice.csv")
        cascade_dice = per_patient[["patient", "cascade_dice"]].rename(columns={"cascade_dice": "dice"})
        save_figure(dice_per_patient(per_patient, cascade_dice), OUT / "per_patient_dice.png")
        save_figure(prediction_grid(grid), OUT / "prediction_grid.png")
        mlflow.log_metrics(numbers(classifier_report, "classifier_"))
        mlflow.log_metrics(numbers(segmentation_report, "segmentation_"))
        mlflow.log_metrics(numbers(segmentation_report["cascade"], "cascade_"))
        for name in ("classifier.json", "segmentation.json", "per_patient_dice.csv", "classifier_roc.csv"):
            mlflow.log_artifact(str(OUT / name))
    cascade_report = segmentation_report["cascade"]
    print(
        f"evaluate: classifier accuracy {classifier_report['accuracy']:.3f} (n={classifier_report['test_size']}); "
        f"U-Net mean per-patient Dice {segmentation_report['dice_mean']:.3f} "
        f"({segmentation_report['test_patients']} patients); cascade ({cascade_report['gate']} gate) "
        f"{cascade_report['dice_mean']:.3f}, {cascade_report['tumour_slices_missed']} tumour slices missed"
    )


def grid_rows(
    test: pd.DataFrame,
    slices,
    truth,
    predicted,
    per_patient: pd.DataFrame,
    per_patient_rows: int = 2,
) -> list:
    """The largest-tumour slices of the best and the worst test patient by Dice."""
    ranked = per_patient.sort_values("dice")
    chosen = [("worst", ranked.iloc[0]), ("best", ranked.iloc[-1])] if len(ranked) > 1 else [("only", ranked.iloc[0])]
    rows = []
    for kind, patient in chosen:
        positions = np.flatnonzero(test["patient"].to_numpy() == patient["patient"])
        area = truth[positions].reshape(len(positions), -1).sum(axis=1)
        for position in positions[np.argsort(-area)[:per_patient_rows]]:
            title = f"{kind}: {patient['patient']}\nDice {patient['dice']:.2f}, slice {test['slice'][position]}"
            rows.append(
                (
                    title,
                    np.asarray(slices[test["row"][position]]),
                    truth[position],
                    predicted[position],
                )
            )
    return rows


if __name__ == "__main__":
    run_stage(main)
