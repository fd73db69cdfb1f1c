"""predict's work: which files to read, distinct output names, batches of decoded inputs, and one batch
through both models."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from brain_mri.common.errors import PipelineError
from brain_mri.common.outputs import write_png
from brain_mri.common.params import Evaluate
from brain_mri.data.images import decode_image
from brain_mri.data.layouts import IMAGE_SUFFIXES, SLICE_NAME
from brain_mri.inference.cascade import input_kind, predict_images, volume_batches
from brain_mri.inference.overlay import overlay
from brain_mri.inference.volumes import slice_position

Decoded = tuple[Path, str, np.ndarray]  # (input file, output stem, RGB uint8 image)


def expand_inputs(inputs: list[Path], out: Path) -> list[Path]:
    """Files as given, folders as the image files inside them (recursively), in order. In a folder,
    a kaggle_3m ground-truth mask (`<patient>_<k>_mask.tif`) is not a scan to predict on, and
    nothing under `out` is read: a second run never predicts on the first run's masks."""
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out} is a file; name a folder for the masks, overlays and predictions.csv")
    files = []
    for path in inputs:
        if not path.exists():
            raise PipelineError(f"{path} does not exist; pass image files or folders of images")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            files.extend(
                p
                for p in found
                if not ((match := SLICE_NAME.match(p.name)) and match["mask"])
                and not p.resolve().is_relative_to(out.resolve())
            )
        else:
            files.append(path)
    if not files:
        raise PipelineError(
            "no image files found in the inputs (files under --out are never read); "
            "pass JPEG/PNG/TIFF files or folders of them"
        )
    return files


def output_stems(files: list[Path]) -> list[str]:
    """A distinct output name per input: the file's stem, or for a second input of that stem the stem
    and the first free -2, -3, ... that no input's own stem takes (a.png, a.jpg, a-2.png: a, a-3, a-2)."""
    own = {path.stem for path in files}
    taken: set[str] = set()
    stems = []
    for path in files:
        stem, number = path.stem, 1
        while stem in taken or (number > 1 and stem in own):
            number += 1
            stem = f"{path.stem}-{number}"
        taken.add(stem)
        stems.append(stem)
    return stems


def decoded_batches(
    files: list[Path], stems: list[str], volumes: bool, batch_size: int
) -> Iterator[tuple[list[Decoded], list[dict]]]:
    """The inputs decoded, a batch at a time (cascade.volume_batches), each with the rows of the inputs
    met on the way that could not be read. With `volumes` each kaggle_3m patient's slices come together
    and in one batch, to be post-processed as one volume; else in the order given."""

    def decode(index: int) -> np.ndarray | Exception:
        path = files[index]
        try:
            return decode_image(path.read_bytes(), str(path))
        except (PipelineError, OSError) as error:
            return error

    positions = [slice_position(path) if volumes else None for path in files]
    for batch in volume_batches(positions, decode, batch_size):
        images = [(files[index], stems[index], item) for index, item in batch if isinstance(item, np.ndarray)]
        skipped = [
            {"input": str(files[index]), "status": f"skipped: {item}"}
            for index, item in batch
            if not isinstance(item, np.ndarray)
        ]
        yield images, skipped
        del batch, images  # else this batch is held while the next one decodes: two batches in memory


def predict_batch(batch: list[Decoded], models, config: Evaluate, cascade: bool, kind: str, out: Path) -> list[dict]:
    """The cascade on a batch of (path, output stem, decoded image); writes each mask and overlay.

    `kind` is slice, image, or auto (each input's own, by its file type). One row per input.
    """
    kinds = [input_kind(path) if kind == "auto" else kind for path, _, _ in batch]
    positions = [
        slice_position(path) if this_kind == "slice" else None
        for (path, _, _), this_kind in zip(batch, kinds, strict=True)
    ]
    predictions = predict_images([image for _, _, image in batch], kinds, models, config, cascade, positions)
    rows = []
    for (path, stem, image), this_kind, prediction in zip(batch, kinds, predictions, strict=True):
        write_png(out / f"{stem}_mask.png", prediction.mask)
        write_png(out / f"{stem}_overlay.png", overlay(image, None, prediction.mask))
        rows.append(
            {
                "input": str(path),
                "status": "ok",
                "input_kind": this_kind,
                "tumour_probability": round(prediction.tumour_probability, 4),
                "classified_tumour": prediction.tumour_probability >= config.threshold,
                "gate": prediction.gate if cascade else "none",
                "segmented": prediction.segmented,
                "tumour_pixels": int(np.count_nonzero(prediction.mask)),
                "mask": f"{stem}_mask.png",
                "overlay": f"{stem}_overlay.png",
            }
        )
    return rows
