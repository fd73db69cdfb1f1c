"""crop_split's work: decode, validate, crop and resize each file (in worker processes), and pack
the results into the processed format (`brain_mri.data.processed`)."""

import errno
import hashlib
import os
from multiprocessing.pool import Pool
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from brain_mri.common.errors import PipelineError
from brain_mri.data.images import (
    crop_to_brain,
    decode_image,
    read_mask,
    read_slice,
    resize_square,
)
from brain_mri.data.processed import SLICE_SIZE


def prepare_classification_image(path: str, size: int) -> tuple[np.ndarray, str]:
    """(cropped and resized RGB image, hash of the decoded pixels) of one classification image.

    The pixel hash finds the same image saved twice, under another name or another encoding.
    """
    image = decode_image(Path(path).read_bytes(), name=path)
    pixel_hash = hashlib.sha1(
        np.ascontiguousarray(image).tobytes() + str(image.shape).encode(), usedforsecurity=False
    ).hexdigest()
    return resize_square(crop_to_brain(image), size), pixel_hash


def prepare_slice(image_path: str, mask_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(slice (256, 256, 3) uint8, mask (256, 256) uint8 0/255) of one LGG slice and its mask."""
    image = read_slice(Path(image_path).read_bytes(), image_path)
    mask = read_mask(Path(mask_path).read_bytes(), mask_path)
    if image.shape[:2] != mask.shape:
        raise PipelineError(f"{mask_path}: mask is {mask.shape}, its slice is {image.shape[:2]}")
    if image.shape[:2] != (SLICE_SIZE, SLICE_SIZE):
        image = resize_square(image, SLICE_SIZE)
        mask = resize_square(mask, SLICE_SIZE, cv2.INTER_NEAREST)
    return image, mask


def try_classification_image(job: tuple[str, int]) -> tuple[np.ndarray | None, str]:
    """Worker wrapper: (image, pixel hash) or (None, reason the file was rejected)."""
    path, size = job
    try:
        return prepare_classification_image(path, size)
    except PipelineError as error:
        return None, str(error)


def try_slice(job: tuple[str, str]) -> tuple[np.ndarray | None, np.ndarray | str]:
    """Worker wrapper: (slice, mask) or (None, reason the pair was rejected)."""
    try:
        return prepare_slice(*job)
    except PipelineError as error:
        return None, str(error)


def crop_classification(images: pd.DataFrame, size: int, pool: Pool, out: Path) -> tuple[pd.DataFrame, list[dict]]:
    """Crop every image in parallel into out/images.npy; drop unreadable files and second copies of one image."""
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
    """Stream every valid slice and mask, patient by patient, into out/slices.npy and out/masks.npy."""
    shape = (len(slices), SLICE_SIZE, SLICE_SIZE)
    images = np.lib.format.open_memmap(out / "slices.npy", "w+", np.uint8, (*shape, 3))
    masks = np.lib.format.open_memmap(out / "masks.npy", "w+", np.uint8, shape)
    _reserve(out / "slices.npy")
    _reserve(out / "masks.npy")
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
        _truncate(out / "slices.npy", len(kept))
        _truncate(out / "masks.npy", len(kept))
    manifest = pd.DataFrame(kept).drop(columns="Index")
    manifest.insert(0, "row", range(len(manifest)))
    return manifest, rejected


def _reserve(path: Path) -> None:
    """Give a new (sparse) memory-mapped file its disk space now: on a full disk this fails with
    ENOSPC, a clear error, where writing through the map later would kill the process with SIGBUS."""
    if not hasattr(os, "posix_fallocate"):  # Linux has it; macOS has none
        return
    with path.open("r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, path.stat().st_size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a filesystem that cannot reserve
                raise


def _truncate(path: Path, rows: int) -> None:
    """Keep the first rows of a .npy file, copying in chunks rather than loading it."""
    source = np.load(path, mmap_mode="r")
    target = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), "w+", source.dtype, (rows, *source.shape[1:]))
    _reserve(path.with_suffix(".tmp.npy"))
    for start in range(0, rows, 256):
        stop = min(start + 256, rows)
        target[start:stop] = source[start:stop]
    target.flush()
    del source, target
    path.with_suffix(".tmp.npy").replace(path)
