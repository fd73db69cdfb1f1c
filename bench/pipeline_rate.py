"""The U-Net input pipeline's own rate, without a model: could it keep one GPU busy?

    .venv/bin/python bench/pipeline_rate.py

On the 59 real LGG patients (both archives in ../shared/datasets, through the real download and
crop_split), the training pipeline (brain_mri.training.pipelines.segmentation_dataset: cached
uint8 rows, albumentations augmentation, batching, float conversion, prefetch) is drained for
several epochs at 128 and 256 pixels, on every core of this machine, with no model. The first
epoch fills the cache (decodes and resizes each slice once); the rate is that of the epochs
after it. It is set beside what one GPU consumes training a 2D U-Net, which the pipeline must
keep up with: NVIDIA's TF2 U-Net on an A100 (119 images/s at 572x572, mixed precision) and
nnU-Net 2D (about 1,660 images/s at 192x160); the cores one GPU would need are the GPU's
rate over this machine's rate per core.
"""

import os
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import prepare_real_data

from brain_mri.data.processed import NpyRows
from brain_mri.training.pipelines import segmentation_dataset

BATCH = 32
EPOCHS = 4  # the first fills the cache
GPU_RATES = {"NVIDIA TF2 U-Net, A100, 572x572, AMP": 119, "nnU-Net 2D, 192x160": 1660}


def drained_rate(dataset, images_per_epoch: int) -> tuple[float, list[float]]:
    """Images per second of each epoch when the dataset is only read (the first: cache filling)."""
    seconds = []
    for _ in range(EPOCHS):
        start = time.perf_counter()
        for _batch in dataset:
            pass
        seconds.append(time.perf_counter() - start)
    rates = [images_per_epoch / s for s in seconds]
    return sum(rates[1:]) / len(rates[1:]), rates


def main() -> None:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        prepare_real_data(work, {})
        processed = work / "data/processed/segmentation"
        slices, masks = NpyRows(processed / "slices.npy"), NpyRows(processed / "masks.npy")
        manifest = pd.read_csv(processed / "manifest.csv")
        train = manifest.loc[manifest["split"] == "train", "row"].to_numpy()
        images = len(train) // BATCH * BATCH
        print(f"{manifest['patient'].nunique()} patients, {len(train)} training slices, batch {BATCH}, {cores} cores")
        for size in (128, 256):
            dataset = segmentation_dataset(slices, masks, train, size, BATCH, 0, augment=True, drop_remainder=True)
            rate, rates = drained_rate(dataset, images)
            epochs = ", ".join(f"{r:.0f}" for r in rates)
            print(f"\n{size}x{size}: {rate:.0f} images/s after the first epoch ({rate / cores:.0f} a core)")
            print(f"  each epoch, the first filling the cache: {epochs} images/s")
            for gpu, consumed in GPU_RATES.items():
                print(f"  {gpu}: {consumed} images/s -> {consumed / (rate / cores):.1f} cores of this machine per GPU")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak resident memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
