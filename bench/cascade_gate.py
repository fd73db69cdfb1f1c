"""The cascade's slice gate (evaluate.min_tumour_pixels): a grid on the validation patients, the param on test.

    .venv/bin/python bench/cascade_gate.py              # this project, as `dvc repro` leaves it
    .venv/bin/python bench/cascade_gate.py FOLDER       # any folder laid out so: params.yaml, data/processed, models/

Runs the validation and test slices through the cascade exactly as predict runs it (brain_mri.inference.cascade),
once, and gates the U-Net's masks at each pixel count of a grid. For the validation patients it prints, per count,
the mean per-patient Dice through the cascade and ungated, the healthy slices with false-positive pixels and the
tumour slices the gate sends away: choose the count there, and set it as evaluate.min_tumour_pixels (the real-cpu
recipe's 100 was chosen so: docs/lab-notebook.md). The test patients are then scored once, at the folder's
params.yaml count. Prints the figures with the split sizes.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from brain_mri.common.params import load_params
from brain_mri.data.processed import read_segmentation
from brain_mri.evaluation.scores import per_patient_scores, per_slice_summary
from brain_mri.inference.cascade import gate_passes, predict_in_batches
from brain_mri.models.saving import load_model

GRID = (0, 25, 50, 100, 150, 200, 300, 400, 600)


def cascade_predictions(folder: Path, split: str, config) -> tuple[pd.DataFrame, list, np.ndarray]:
    """The split's manifest rows, predict's Prediction for each slice, and the true masks."""
    data = read_segmentation(folder / "data/processed/segmentation")
    rows = data.manifest[data.manifest["split"] == split].reset_index(drop=True)
    models = (
        load_model(folder / "models/classifier.keras", "classifier"),
        load_model(folder / "models/unet.keras", "unet"),
    )
    slices = [np.asarray(data.slices[row]) for row in rows["row"]]
    positions = list(zip(rows["patient"], rows["slice"], strict=True))  # each patient one volume, as in evaluate
    predictions = predict_in_batches(slices, "slice", models, config, positions)
    return rows, predictions, data.masks[rows["row"].to_numpy()] > 0


def scores_at(rows: pd.DataFrame, predictions: list, truth: np.ndarray, config) -> dict:
    """The cascade at config.min_tumour_pixels, next to the ungated U-Net."""
    ungated = np.stack([p.unet_mask > 0 for p in predictions])
    gate = np.array([gate_passes("slice", p.tumour_probability, p.unet_mask, config) for p in predictions])
    gated = ungated & gate[:, None, None]
    has_tumour = truth.reshape(len(truth), -1).any(axis=1)
    return {
        "min_tumour_pixels": config.min_tumour_pixels,
        "dice_mean": round(float(per_patient_scores(rows["patient"], gated, truth)["dice"].mean()), 4),
        "ungated_dice_mean": round(float(per_patient_scores(rows["patient"], ungated, truth)["dice"].mean()), 4),
        "healthy_slices_with_false_positive": per_slice_summary(gated, truth)["healthy_slices_with_false_positive"],
        "ungated_healthy_slices_with_false_positive": per_slice_summary(ungated, truth)[
            "healthy_slices_with_false_positive"
        ],
        "tumour_slices_missed": int((has_tumour & ~gate).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path(__file__).resolve().parents[1])
    folder = parser.parse_args().folder
    config = load_params(folder / "params.yaml").evaluate
    rows, predictions, truth = cascade_predictions(folder, "val", config)
    print(f"validation: {rows['patient'].nunique()} patients, {len(rows)} slices")
    for pixels in GRID:
        print(json.dumps(scores_at(rows, predictions, truth, config.model_copy(update={"min_tumour_pixels": pixels}))))
    rows, predictions, truth = cascade_predictions(folder, "test", config)
    print(f"test: {rows['patient'].nunique()} patients, {len(rows)} slices, at params.yaml's count")
    print(json.dumps(scores_at(rows, predictions, truth, config), indent=2))


if __name__ == "__main__":
    main()
