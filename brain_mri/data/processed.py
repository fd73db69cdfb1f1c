"""The one processed format that crop_split writes and everything downstream reads.

data/processed/classification/images.npy     (N, S, S, 3) uint8 brain crops, S = crop_split.image_size
data/processed/classification/manifest.csv   row, source, label, split
data/processed/segmentation/slices.npy       (M, 256, 256, 3) uint8, channels as kaggle_3m stores them
data/processed/segmentation/masks.npy        (M, 256, 256) uint8 0/255
data/processed/segmentation/manifest.csv     row, patient, slice, image_path, mask_path, tumour_pixels, split
data/processed/rejected.csv                  every file left out, with the reason
data/processed/<kind>/source.json            where the data came from: download.source and the locations
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# kaggle_3m's slice size and channel order, kept as they are; a sequence a patient lacks is
# stored as a copy of FLAIR
SLICE_SIZE = 256
PRE_CONTRAST, FLAIR, POST_CONTRAST = 0, 1, 2
SPLITS = ("train", "val", "test")
# where a dataset came from, as download names it: {"source": "local", "locations": ["a.zip", ...]}
SOURCE = "source.json"
UNKNOWN_SOURCE = {"source": "unknown", "locations": []}


def read_source(folder: Path) -> dict:
    """Where the data in folder came from (download's or crop_split's source.json)."""
    path = folder / SOURCE
    return json.loads(path.read_text()) if path.is_file() else dict(UNKNOWN_SOURCE)


def split_rows(manifest: pd.DataFrame, split: str) -> np.ndarray:
    """The array rows of one split."""
    return manifest.loc[manifest["split"] == split, "row"].to_numpy()


@dataclass(frozen=True)
class ClassificationData:
    images: "NpyRows"
    labels: np.ndarray  # by row
    manifest: pd.DataFrame


@dataclass(frozen=True)
class SegmentationData:
    slices: "NpyRows"
    masks: "NpyRows"
    manifest: pd.DataFrame


def read_classification(folder: Path) -> ClassificationData:
    manifest = pd.read_csv(folder / "manifest.csv")
    labels = manifest.sort_values("row")["label"].to_numpy()
    return ClassificationData(NpyRows(folder / "images.npy"), labels, manifest)


def read_segmentation(folder: Path) -> SegmentationData:
    return SegmentationData(
        NpyRows(folder / "slices.npy"), NpyRows(folder / "masks.npy"), pd.read_csv(folder / "manifest.csv")
    )


# A memory map would do the same reads, but every page it touches stays in the process's
# resident memory; the pipelines read each row once into their uint8 cache, so plain reads
# keep the process's memory to the cache itself (under 3 GB for the full LGG set at 256x256).


class NpyRows:
    """Read-only row access to a C-ordered .npy file: `rows[i]`, `rows[[i, j]]`, `len`, `shape`."""

    def __init__(self, path: Path):
        mapped = np.load(path, mmap_mode="r")  # only for the header: shape, dtype, where data starts
        if not mapped.flags.c_contiguous:
            raise ValueError(f"{path}: only C-ordered arrays are supported")
        self.path, self.shape, self.dtype, self._offset = Path(path), mapped.shape, mapped.dtype, mapped.offset
        del mapped
        shape, dtype = self.shape, self.dtype
        self.ndim = len(shape)
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self._descriptor = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def _row(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} out of range for {len(self)} rows")
        index %= len(self)
        data = os.pread(self._descriptor, self._row_bytes, self._offset + index * self._row_bytes)
        return np.frombuffer(data, self.dtype).reshape(self.shape[1:])

    def __getitem__(self, index) -> np.ndarray:
        if np.isscalar(index):
            return self._row(int(index))
        rows = [self._row(int(i)) for i in np.asarray(index).ravel()]
        return np.stack(rows) if rows else np.empty((0, *self.shape[1:]), self.dtype)

    def __del__(self):
        if hasattr(self, "_descriptor"):
            os.close(self._descriptor)
