"""Peak resident memory of U-Net training on the full LGG dataset size (3929 slices) at 256x256.

    .venv/bin/python bench/unet_memory.py [slices]

The 24-patient sample in ../shared/datasets, processed by the real download and crop_split,
is repeated to 3929 slices (the size of the full kaggle_3m set), written by a child process.
Then train_unet's own pipeline and model run: one full pass over the training data (which
fills the uint8 cache, the largest thing the pipeline holds), then training steps with
validation. Prints the peak resident memory of the process (goal: under 3 GB).
"""

import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from common import prepare_real_data

from brain_mri.data.processed import NpyRows
from brain_mri.models.losses import segmentation_loss, segmentation_metrics
from brain_mri.models.unet import build_unet
from brain_mri.training.pipelines import segmentation_dataset

FULL_DATASET = 3929
SIZE, BATCH = 256, 8


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def write_repeated(source_path: Path, rows: int, path: Path) -> None:
    """The source's rows repeated to `rows` rows (run in a child process: the writing is not training)."""
    source = np.load(source_path, mmap_mode="r")
    target = np.lib.format.open_memmap(path, "w+", source.dtype, (rows, *source.shape[1:]))
    for start in range(0, rows, len(source)):
        stop = min(rows, start + len(source))
        target[start:stop] = source[: stop - start]
    target.flush()


def repeated(source_path: Path, rows: int, path: Path) -> NpyRows:
    with ProcessPoolExecutor(1) as child:
        child.submit(write_repeated, source_path, rows, path).result()
    return NpyRows(path)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else FULL_DATASET
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        prepare_real_data(work, {})
        processed = work / "data/processed/segmentation"
        slices = repeated(processed / "slices.npy", rows, work / "slices.npy")
        masks = repeated(processed / "masks.npy", rows, work / "masks.npy")
        split = pd.read_csv(processed / "manifest.csv")["split"].to_numpy()
        split = np.resize(split, rows)
        train_rows, val_rows = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
        print(
            f"after loading: {peak_rss_gb():.2f} GB peak; {rows} slices, {len(train_rows)} train, {len(val_rows)} val"
        )

        train = segmentation_dataset(slices, masks, train_rows, SIZE, BATCH, 0, augment=True, drop_remainder=True)
        val = segmentation_dataset(slices, masks, val_rows, SIZE, BATCH, 0, augment=False)
        start = time.perf_counter()
        for _ in train:  # one full pass fills the cache
            pass
        for _ in val:
            pass
        print(f"cache filled in {time.perf_counter() - start:.0f} s: {peak_rss_gb():.2f} GB peak")

        model = build_unet(SIZE, "resnet18")
        model.compile(keras.optimizers.Adam(1e-3), segmentation_loss("jaccard"), metrics=segmentation_metrics())
        model.fit(train, validation_data=val, epochs=1, steps_per_epoch=20, validation_steps=5, verbose=2)
    print(f"peak resident memory of U-Net training on {rows} slices at {SIZE}x{SIZE}: {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
