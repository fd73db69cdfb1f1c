"""Stage crop_split: crop, resize, validate and split both datasets into the processed format.

Reads data/raw, writes data/processed (its format: brain_mri/data/processed.py), the data
report and a picture of the crop.
"""

import os
from multiprocessing import Pool
from pathlib import Path

import pandas as pd

from brain_mri.common.errors import run_stage
from brain_mri.common.outputs import atomic_dir, write_csv, write_json, write_png
from brain_mri.common.params import load_params
from brain_mri.data.figures import crop_examples_figure
from brain_mri.data.layouts import find_kaggle_3m, list_classification_images, list_segmentation_slices
from brain_mri.data.preprocessing import crop_classification, pack_segmentation
from brain_mri.data.processed import SOURCE, read_source
from brain_mri.data.reports import data_report
from brain_mri.data.splits import patient_wise_split, stratified_split

RAW = Path("data/raw")
PROCESSED = Path("data/processed")
REPORT = Path("metrics/crop_split/data_report.json")
CROP_EXAMPLES = Path("metrics/crop_split/crop_examples.png")


def main() -> None:
    params = load_params()
    config, seed = params.crop_split, params.base.seed
    images = list_classification_images(RAW / "classification")
    slices, rejected_files = list_segmentation_slices(find_kaggle_3m(RAW / "segmentation"))
    workers = config.workers or os.cpu_count() or 1
    with atomic_dir(PROCESSED) as out, Pool(workers) as pool:
        (out / "classification").mkdir(), (out / "segmentation").mkdir()
        classification, rejected_images = crop_classification(images, config.image_size, pool, out / "classification")
        fractions = config.classification_split
        classification["split"] = stratified_split(
            classification["label"],
            (fractions.train, fractions.val, fractions.test),
            seed,
        )
        write_csv(out / "classification" / "manifest.csv", classification)

        segmentation, rejected_slices = pack_segmentation(slices, pool, out / "segmentation")
        fractions = config.segmentation_split
        segmentation["split"] = patient_wise_split(segmentation, (fractions.train, fractions.val, fractions.test), seed)
        write_csv(out / "segmentation" / "manifest.csv", segmentation)
        raw = read_source(RAW)
        for kind in ("classification", "segmentation"):
            write_json(out / kind / SOURCE, {"source": raw["source"], "locations": raw.get(kind, [])})

        rejected = pd.concat(
            [
                rejected_files,
                pd.DataFrame(rejected_images + rejected_slices, columns=["path", "reason"]),
            ]
        )
        write_csv(out / "rejected.csv", rejected)
        write_json(REPORT, data_report(classification, segmentation, rejected))
        write_png(CROP_EXAMPLES, crop_examples_figure(classification))
    print(f"crop_split: {len(classification)} images, {len(segmentation)} slices, {len(rejected)} rejected")


if __name__ == "__main__":
    run_stage(main)
