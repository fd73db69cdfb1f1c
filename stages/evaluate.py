"""Stage evaluate: test-set scores of both models and of the classify-then-segment cascade as predict runs it.

Writes metrics/evaluate/{classifier,segmentation}.json (dvc metrics), plot data and
pictures beside them (dvc plots), and logs one MLflow run with all of it.
"""

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from brain_mri.common.errors import run_stage
from brain_mri.common.outputs import write_csv, write_json, write_png
from brain_mri.common.params import load_params
from brain_mri.data.processed import read_classification, read_segmentation
from brain_mri.evaluation.figures import dice_per_patient, prediction_grid
from brain_mri.evaluation.predictions import score_classifier, score_segmentation
from brain_mri.evaluation.scores import roc_points
from brain_mri.models.saving import load_model, training_data
from brain_mri.tracking.results import log_to_run, training_run_of
from brain_mri.tracking.runs import stage_run

PROCESSED = Path("data/processed")
MODELS = Path("models")
OUT = Path("metrics/evaluate")


def numbers(report: dict, prefix: str) -> dict[str, float]:
    return {f"{prefix}{key}": value for key, value in report.items() if isinstance(value, float | int)}


def main() -> None:
    config = load_params().evaluate
    classifier = load_model(MODELS / "classifier.keras", "classifier")
    unet = load_model(MODELS / "unet.keras", "unet")
    classifier_report, test_images = score_classifier(
        classifier, unet, read_classification(PROCESSED / "classification"), config
    )
    segmentation_report, per_patient, examples = score_segmentation(
        unet, classifier, read_segmentation(PROCESSED / "segmentation"), config
    )
    predicted_labels = (test_images["probability"] >= config.threshold).astype(int)
    cascade_dice = per_patient[["patient", "cascade_dice"]].rename(columns={"cascade_dice": "dice"})
    figures = {
        "per_patient_dice.png": dice_per_patient(per_patient, cascade_dice),
        "prediction_grid.png": prediction_grid(examples),
    }

    summary = (
        numbers(classifier_report, "classifier/")
        | numbers(segmentation_report, "segmentation/")
        | numbers(segmentation_report["cascade"], "cascade/")
        | numbers(classifier_report["cascade"], "image_cascade/")
    )
    scores_by_model = {
        MODELS / "classifier.keras": numbers(classifier_report, "test/"),
        MODELS / "unet.keras": numbers(segmentation_report, "test/"),
    }

    # what each model was trained on, beside its scores (a model is only as real as its data)
    classifier_report["training_data"] = training_data(MODELS / "classifier.keras")
    segmentation_report["training_data"] = training_data(MODELS / "unet.keras")

    with stage_run("evaluate", config.model_dump()) as run:
        write_json(OUT / "classifier.json", classifier_report)
        write_json(OUT / "segmentation.json", segmentation_report)
        write_csv(OUT / "classifier_roc.csv", roc_points(test_images["label"], test_images["probability"]))
        confusion = pd.DataFrame({"actual": test_images["label"], "predicted": predicted_labels})
        write_csv(OUT / "classifier_confusion.csv", confusion)
        write_csv(OUT / "per_patient_dice.csv", per_patient)
        for name, figure in figures.items():
            mlflow.log_figure(figure, name)
            write_png(OUT / name, figure)
        mlflow.log_metrics(summary)
        # each model's test scores beside the params it was trained with; the summary on the parent
        parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID) if run is not None else None
        for model, scores in scores_by_model.items():
            if run is not None and (training := training_run_of(model, run.info.experiment_id, parent)):
                log_to_run(training, scores)
        if parent:
            log_to_run(parent, summary)
        for name in ("classifier.json", "segmentation.json", "per_patient_dice.csv", "classifier_roc.csv"):
            mlflow.log_artifact(str(OUT / name))
    cascade = segmentation_report["cascade"]
    print(
        f"evaluate: classifier accuracy {classifier_report['accuracy']:.3f} (n={classifier_report['test_size']}); "
        f"U-Net mean per-patient Dice {segmentation_report['dice_mean']:.3f} "
        f"({segmentation_report['test_patients']} patients); through predict's cascade {cascade['dice_mean']:.3f} "
        f"(ungated {cascade['ungated_dice_mean']:.3f}), {cascade['tumour_slices_missed']} tumour slices missed, "
        f"healthy slices with false-positive pixels {cascade['ungated_healthy_slices_with_false_positive']} "
        f"-> {cascade['healthy_slices_with_false_positive']}"
    )


if __name__ == "__main__":
    run_stage(main)
