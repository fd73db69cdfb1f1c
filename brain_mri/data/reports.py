"""The small data report that `dvc metrics show` prints: what each split holds."""

import pandas as pd

from brain_mri.data.processed import SPLITS


def data_report(classification: pd.DataFrame, segmentation: pd.DataFrame, rejected: pd.DataFrame) -> dict:
    """Images per class and split, patients and slices per split, tumour fractions, rejects."""
    report: dict = {
        "classification": {},
        "segmentation": {},
        "rejected_files": len(rejected),
    }
    for split in SPLITS:
        images = classification[classification["split"] == split]
        report["classification"][split] = {
            "images": len(images),
            "tumour": int((images["label"] == 1).sum()),
            "healthy": int((images["label"] == 0).sum()),
        }
        slices = segmentation[segmentation["split"] == split]
        tumour = slices["tumour_pixels"] > 0
        report["segmentation"][split] = {
            "patients": int(slices["patient"].nunique()),
            "patients_with_tumour": int(slices.loc[tumour, "patient"].nunique()),
            "slices": len(slices),
            "tumour_slice_fraction": round(float(tumour.mean()), 4) if len(slices) else 0.0,
        }
    return report
