"""Stage crop_split: crop, resize, validate and split both datasets into a few array files.

data/processed/classification/images.npy  (N, S, S, 3) uint8 brain crops, S = crop_split.image_size
data/processed/classification/manifest.csv row, label, split, source path
data/processed/segmentation/slices.npy    (M, 256, 256, 3) uint8, patient by patient
data/processed/segmentation/masks.npy     (M, 256, 256) uint8 0/255
data/processed/segmentation/manifest.csv  row, patient, slice, tumour_pixels, split, source paths
data/processed/rejected.csv               every file left out, with the reason
"""

import os
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.errors import PipelineError, run_stage
from stages.figures import crop_examples, save_png
from stages.images import crop_to_brain, decode_image
from stages.layouts import (
    find_kaggle_3m,
    list_classification_images,
    list_segmentation_slices,
)
from stages.outputs import atomic_dir, write_json
from stages.params import load_params
from stages.preprocessing import SLICE_SIZE, try_classification_image, try_slice
from stages.reports import data_report
from stages.splits import patient_wise_split, stratified_split

RAW = Path("data/raw")
PROCESSED = Path("data/processed")
REPORT = Path("metrics/crop_split/data_report.json")
CROP_EXAMPLES = Path("metrics/crop_split/crop_examples.png")


def crop_classification(images: pd.DataFrame, size: int, pool: Pool, out: Path) -> tuple[pd.DataFrame, list[dict]]:
    """Crop every image in parallel; drop unreadable files and second copies of one image."""
    rejected, kept, arrays, first_of_hash = [], [], [], {}
    jobs = [(path, size) for path in images["path"]]
    results = pool.imap(try_classification_image, jobs, chunksize=4)
    for row, (image, detail) in tqdm(
        zip(images.itertuples(), results, strict=True), total=len(jobs), desc="crop images"
    ):
        if image is None:
            rejected.append({"path": row.path, "reason": detail})
        elif detail in first_of_hash:
            rejected.append({"path": row.path, "reason": f"duplicate of {first_of_hash[detail]}"})
        else:
            first_of_hash[detail] = row.path
            kept.append({"source": row.path, "label": row.label})
            arrays.append(image)
    manifest = pd.DataFrame(kept, columns=["source", "label"])
    if manifest["label"].nunique() < 2:
        raise PipelineError(
            "classification data has only one class left after cropping; it needs both yes/ and no/ images"
        )
    np.save(out / "images.npy", np.stack(arrays))
    manifest.insert(0, "row", range(len(manifest)))
    return manifest, rejected


def pack_segmentation(slices: pd.DataFrame, pool: Pool, out: Path) -> tuple[pd.DataFrame, list[dict]]:
    """Stream every valid slice and mask, patient by patient, into two memory-mapped arrays."""
    shape = (len(slices), SLICE_SIZE, SLICE_SIZE)
    images = np.lib.format.open_memmap(out / "slices.npy", "w+", np.uint8, (*shape, 3))
    masks = np.lib.format.open_memmap(out / "masks.npy", "w+", np.uint8, shape)
    rejected, kept = [], []
    jobs = list(zip(slices["image_path"], slices["mask_path"], strict=True))
    results = pool.imap(try_slice, jobs, chunksize=8)
    for row, (image, mask) in tqdm(zip(slices.itertuples(), results, strict=True), total=len(jobs), desc="pack slices"):
        if image is None:
            rejected.append({"path": row.image_path, "reason": mask})
            continue
        images[len(kept)], masks[len(kept)] = image, mask
        kept.append({**row._asdict(), "tumour_pixels": int(np.count_nonzero(mask))})
    images.flush(), masks.flush()
    del images, masks
    if len(kept) < len(slices):
        (
            _truncate(out / "slices.npy", len(kept)),
            _truncate(out / "masks.npy", len(kept)),
        )
    manifest = pd.DataFrame(kept).drop(columns="Index")
    manifest.insert(0, "row", range(len(manifest)))
    return manifest, rejected


def _truncate(path: Path, rows: int) -> None:
    """Keep the first rows of a .npy file, copying in chunks rather than loading it."""
    source = np.load(path, mmap_mode="r")
    target = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), "w+", source.dtype, (rows, *source.shape[1:]))
    for start in range(0, rows, 256):
        stop = min(start + 256, rows)
        target[start:stop] = source[start:stop]
    target.flush()
    del source, target
    path.with_suffix(".tmp.npy").replace(path)


def crop_examples_figure(manifest: pd.DataFrame, per_class: int = 4):
    """Originals above their crops, for the first images of each class."""
    chosen = manifest.groupby("label").head(per_class).sort_values("label", ascending=False)
    pairs = []
    for source in chosen["source"]:
        image = decode_image(Path(source).read_bytes(), source)
        pairs.append((Path(source).name, image, crop_to_brain(image)))
    return crop_examples(pairs)


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
        classification.to_csv(out / "classification" / "manifest.csv", index=False)

        segmentation, rejected_slices = pack_segmentation(slices, pool, out / "segmentation")
        fractions = config.segmentation_split
        segmentation["split"] = patient_wise_split(segmentation, (fractions.train, fractions.val, fractions.test), seed)
        segmentation.to_csv(out / "segmentation" / "manifest.csv", index=False)

        rejected = pd.concat(
            [
                rejected_files,
                pd.DataFrame(rejected_images + rejected_slices, columns=["path", "reason"]),
            ]
        )
        rejected.to_csv(out / "rejected.csv", index=False)
        write_json(REPORT, data_report(classification, segmentation, rejected))
        save_png(crop_examples_figure(classification), CROP_EXAMPLES)
    print(f"crop_split: {len(classification)} images, {len(segmentation)} slices, {len(rejected)} rejected")


if __name__ == "__main__":
    run_stage(main)
