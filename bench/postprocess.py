"""Post-processing the U-Net's masks: chosen on the validation patients, the choice scored once on test.

    .venv/bin/python bench/postprocess.py FOLDER                             # the grid on the validation patients
    .venv/bin/python bench/postprocess.py FOLDER --test largest_3d 0.3 flip  # one choice, on the test patients

FOLDER is laid out as `dvc repro` leaves a project (params.yaml, data/processed, models/unet.keras), for example
`bench/quality.py unet --keep FOLDER`. Every slice goes through the U-Net as predict feeds it (the whole slice,
resized to the model's input), optionally also flipped left/right (the mean of both probability maps), and the
maps are brought back to 256x256. Each patient's masks are then one volume in slice order, post-processed by one of:

- none: the thresholded map as it is;
- slice_gate: predict's cascade gate on LGG slices, a slice's mask kept only above evaluate.min_tumour_pixels;
- largest_3d: only the largest 3D connected component of the patient's volume (LGG patients have one tumour;
  evaluate.largest_component does this in evaluate and predict);
- min_3d_N: 3D components of fewer than N voxels removed.

Prints, per choice, the mean and median per-patient Dice and the healthy slices with false-positive pixels, with
the split sizes. Choose on the validation patients; look at the test patients once.
"""

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage

from brain_mri.common.params import Evaluate, load_params
from brain_mri.data.processed import SLICE_SIZE, read_segmentation
from brain_mri.evaluation.scores import per_patient_scores, per_slice_summary
from brain_mri.inference.cascade import gate_passes, unet_maps
from brain_mri.inference.volumes import FULL_3D, largest_component, volume_groups
from brain_mri.models.saving import load_model

THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
MIN_VOXELS = (100, 300, 1000, 3000)
CHOICES = ("none", "slice_gate", "largest_3d", *(f"min_3d_{n}" for n in MIN_VOXELS))


def probability_maps(unet, slices: list[np.ndarray], flip: bool) -> np.ndarray:
    """P(tumour) per pixel at the slices' own size, (N, H, W); with flip, the mean with the left/right mirror."""
    maps = unet_maps(unet, slices, flip)
    return np.stack([cv2.resize(m, (SLICE_SIZE, SLICE_SIZE), interpolation=cv2.INTER_LINEAR) for m in maps])


def without_small_components(volume: np.ndarray, min_voxels: int) -> np.ndarray:
    labels, count = ndimage.label(volume, structure=FULL_3D)
    if count == 0:
        return volume
    sizes = np.bincount(labels.ravel())
    return (sizes >= min_voxels)[labels] & volume


def post_processed(masks: np.ndarray, rows: pd.DataFrame, choice: str, config: Evaluate) -> np.ndarray:
    """The masks after `choice`, each patient's slices taken as one volume in slice order."""
    if choice == "none":
        return masks
    if choice == "slice_gate":
        return masks & np.array([gate_passes("slice", 0.0, mask, config) for mask in masks])[:, None, None]
    out = np.zeros_like(masks)
    for order in volume_groups(list(zip(rows["patient"], rows["slice"], strict=True))):
        volume = masks[order]
        out[order] = (
            largest_component(volume)
            if choice == "largest_3d"
            else without_small_components(volume, int(choice.removeprefix("min_3d_")))
        )
    return out


def scores(rows: pd.DataFrame, predicted: np.ndarray, truth: np.ndarray) -> tuple[dict, pd.DataFrame]:
    per_patient = per_patient_scores(rows["patient"], predicted, truth)
    summary = per_slice_summary(predicted, truth)
    return {
        "dice_mean": round(float(per_patient["dice"].mean()), 4),
        "dice_median": round(float(per_patient["dice"].median()), 4),
        "iou_mean": round(float(per_patient["iou"].mean()), 4),
        "healthy_slices_with_false_positive": summary["healthy_slices_with_false_positive"],
        "detection_sensitivity": round(summary["detection_sensitivity"], 3),
        "detection_specificity": round(summary["detection_specificity"], 3),
    }, per_patient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--test", nargs=3, metavar=("CHOICE", "THRESHOLD", "FLIP"), help="e.g. largest_3d 0.3 flip")
    args = parser.parse_args()
    if args.test and (args.test[0] not in CHOICES or args.test[2] not in ("flip", "noflip")):
        parser.error(f"--test takes a choice of {', '.join(CHOICES)}, a threshold, and flip or noflip")
    config = load_params(args.folder / "params.yaml").evaluate
    data = read_segmentation(args.folder / "data/processed/segmentation")
    unet = load_model(args.folder / "models/unet.keras", "unet")
    split = "test" if args.test else "val"
    rows = data.manifest[data.manifest["split"] == split].reset_index(drop=True)
    slices = [np.asarray(data.slices[row]) for row in rows["row"]]
    truth = data.masks[rows["row"].to_numpy()] > 0
    tumour_slices = int(truth.any(axis=(1, 2)).sum())
    print(f"{split}: {rows['patient'].nunique()} patients, {len(rows)} slices, {tumour_slices} with tumour")

    if args.test:
        choice, threshold, flip = args.test[0], float(args.test[1]), args.test[2] == "flip"
        maps = probability_maps(unet, slices, flip)
        figures, per_patient = scores(rows, post_processed(maps >= threshold, rows, choice, config), truth)
        print(per_patient.to_string(index=False))
        print(json.dumps({"choice": choice, "threshold": threshold, "flip": flip, **figures}))
        return

    for flip in (False, True):
        maps = probability_maps(unet, slices, flip)
        for threshold in THRESHOLDS:
            for choice in CHOICES:
                predicted = post_processed(maps >= threshold, rows, choice, config)
                figures, _ = scores(rows, predicted, truth)
                print(json.dumps({"choice": choice, "threshold": threshold, "flip": flip, **figures}), flush=True)


if __name__ == "__main__":
    main()
