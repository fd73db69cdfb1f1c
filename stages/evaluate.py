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

from stages.errors import run_stage
from stages.evaluation import (
    best_f1_threshold,
    classification_scores,
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


def classifier_probabilities(model, images, labels, rows) -> np.ndarray:
    size = model.input_shape[1]
    return model.predict(
        classification_dataset(images, labels, rows, size, BATCH, 0, augment=False),
        verbose=0,
    )[:, 0]


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


def main() -> None:
    params = load_params()
    config = params.evaluate
    classifier, unet = (
        load_model(str(MODELS / "classifier.keras")),
        load_model(str(MODELS / "unet.keras")),
    )

    images = np.load(PROCESSED / "classification/images.npy", mmap_mode="r")
    images_manifest = pd.read_csv(PROCESSED / "classification/manifest.csv")
    labels = images_manifest.sort_values("row")["label"].to_numpy()
    test_rows, val_rows = (
        split_rows(images_manifest, "test"),
        split_rows(images_manifest, "val"),
    )
    test_probabilities = classifier_probabilities(classifier, images, labels, test_rows)
    val_probabilities = classifier_probabilities(classifier, images, labels, val_rows)
    classifier_report = classification_scores(labels[test_rows], test_probabilities, config.threshold)
    classifier_report["best_f1_threshold_on_val"] = best_f1_threshold(labels[val_rows], val_probabilities)

    slices = np.load(PROCESSED / "segmentation/slices.npy", mmap_mode="r")
    masks = np.load(PROCESSED / "segmentation/masks.npy", mmap_mode="r")
    slices_manifest = pd.read_csv(PROCESSED / "segmentation/manifest.csv")
    test = slices_manifest[slices_manifest["split"] == "test"].reset_index(drop=True)
    truth = masks[test["row"].to_numpy()] > 0
    predicted = unet_masks(unet, slices, masks, test["row"].to_numpy(), config.mask_threshold)
    per_patient = per_patient_scores(test["patient"], predicted, truth)
    segmentation_report = segmentation_scores(per_patient, per_slice_summary(predicted, truth))

    with stage_run("evaluate", config.model_dump()):
        write_json(OUT / "classifier.json", classifier_report)
        write_json(OUT / "segmentation.json", segmentation_report)
        write_csv(
            roc_points(labels[test_rows], test_probabilities),
            OUT / "classifier_roc.csv",
        )
        predicted_labels = (test_probabilities >= config.threshold).astype(int)
        write_csv(
            pd.DataFrame({"actual": labels[test_rows], "predicted": predicted_labels}),
            OUT / "classifier_confusion.csv",
        )
        write_csv(per_patient, OUT / "per_patient_dice.csv")
        save_figure(dice_per_patient(per_patient), OUT / "per_patient_dice.png")
        save_figure(
            prediction_grid(grid_rows(test, slices, truth, predicted, per_patient)),
            OUT / "prediction_grid.png",
        )
        mlflow.log_metrics({f"classifier_{k}": v for k, v in classifier_report.items() if isinstance(v, float | int)})
        mlflow.log_metrics(
            {f"segmentation_{k}": v for k, v in segmentation_report.items() if isinstance(v, float | int)}
        )
        for name in (
            "classifier.json",
            "segmentation.json",
            "per_patient_dice.csv",
            "classifier_roc.csv",
        ):
            mlflow.log_artifact(str(OUT / name))
    print(
        f"evaluate: classifier accuracy {classifier_report['accuracy']:.3f} (n={len(test_rows)}), "
        f"U-Net mean per-patient Dice {segmentation_report['dice_mean']:.3f} ({len(per_patient)} patients)"
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
