"""crop_split's segmentation packing on the real 24-patient LGG sample, against a plain read.

Prints slices per second and peak memory of packing (parallel workers: read, validate, write
into the memory-mapped arrays), next to the rate of simply reading the same slice and mask
files with tifffile in one process, and their ratio (goal: at least 0.8).

    .venv/bin/python bench/crop_split_speed.py [path/to/lgg-mri-segmentation-sample.zip] [workers]
"""

import os
import resource
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import tifffile

from brain_mri.data.layouts import find_kaggle_3m, list_segmentation_slices
from brain_mri.data.preprocessing import pack_segmentation
from brain_mri.data.sources import safe_extract

ROOT = Path(__file__).resolve().parents[1]

ARCHIVE = ROOT.parent / "shared/datasets/lgg-mri-segmentation-sample.zip"


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def main() -> None:
    archive = Path(sys.argv[1]) if len(sys.argv) > 1 else ARCHIVE
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count()
    with tempfile.TemporaryDirectory() as folder:
        safe_extract(archive, Path(folder), max_files=10_000, max_bytes=2 * 10**9)
        slices, _ = list_segmentation_slices(find_kaggle_3m(Path(folder)))
        files = [*slices["image_path"], *slices["mask_path"]]
        for path in files:  # warm the page cache, so both rates read from memory alike
            Path(path).read_bytes()

        start = time.perf_counter()
        for image_path, mask_path in zip(slices["image_path"], slices["mask_path"], strict=True):
            tifffile.imread(image_path), tifffile.imread(mask_path)
        read_rate = len(slices) / (time.perf_counter() - start)

        out = Path(folder) / "packed"
        out.mkdir()
        start = time.perf_counter()
        with Pool(workers) as pool:
            manifest, rejected = pack_segmentation(slices, pool, out)
        pack_rate = len(manifest) / (time.perf_counter() - start)
    print(f"slices: {len(slices)} ({slices['patient'].nunique()} patients), workers: {workers}")
    print(f"plain tifffile read (1 process): {read_rate:8.0f} slices/s")
    print(f"crop_split packing:              {pack_rate:8.0f} slices/s")
    print(f"ratio packing / plain read:      {pack_rate / read_rate:8.2f}")
    print(f"peak memory (this process + workers' peaks): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
