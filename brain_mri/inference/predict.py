"""predict's work: which files to read, distinct output names, and one batch through both models."""

from pathlib import Path

import numpy as np

from brain_mri.common.errors import PipelineError
from brain_mri.common.outputs import write_png
from brain_mri.data.layouts import IMAGE_SUFFIXES, SLICE_NAME
from brain_mri.evaluation.figures import overlay
from brain_mri.inference.inputs import classifier_input, mask_at_input_size, unet_input


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given, folders as the image files inside them (recursively), in order; in a folder,
    a kaggle_3m ground-truth mask (`<patient>_<k>_mask.tif`) is not a scan to predict on."""
    files = []
    for path in inputs:
        if not path.exists():
            raise PipelineError(f"{path} does not exist; pass image files or folders of images")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            files.extend(p for p in found if not ((match := SLICE_NAME.match(p.name)) and match["mask"]))
        else:
            files.append(path)
    if not files:
        raise PipelineError("no image files found in the inputs; pass JPEG/PNG/TIFF files or folders of them")
    return files


def output_stems(files: list[Path]) -> list[str]:
    """A distinct output name per input, also for two inputs called the same in two folders."""
    seen: dict[str, int] = {}
    stems = []
    for path in files:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        stems.append(path.stem if count == 0 else f"{path.stem}-{count + 1}")
    return stems


def predict_batch(
    batch: list[tuple[Path, str, np.ndarray]], models, thresholds, cascade: bool, out: Path
) -> list[dict]:
    """Classify and segment a batch of (path, output stem, decoded image); write each mask and overlay.

    With `cascade`, only inputs classified as tumour keep their mask. One row per input.
    """
    classifier, unet = models
    threshold, mask_threshold = thresholds
    images = [image for _, _, image in batch]
    probabilities = classifier.predict(
        np.stack([classifier_input(i, classifier.input_shape[1]) for i in images]), verbose=0
    )[:, 0]
    maps = unet.predict(np.stack([unet_input(i, unet.input_shape[1]) for i in images]), verbose=0)[..., 0]
    rows = []
    for (path, stem, image), probability, probability_map in zip(batch, probabilities, maps, strict=True):
        segmented = not cascade or probability >= threshold
        mask = mask_at_input_size(probability_map, image.shape[:2], mask_threshold)
        if not segmented:
            mask[:] = 0
        write_png(out / f"{stem}_mask.png", mask)
        write_png(out / f"{stem}_overlay.png", (overlay(image, None, mask) * 255).astype(np.uint8))
        rows.append(
            {
                "input": str(path),
                "status": "ok",
                "tumour_probability": round(float(probability), 4),
                "classified_tumour": bool(probability >= threshold),
                "segmented": segmented,
                "tumour_pixels": int(np.count_nonzero(mask)),
                "mask": f"{stem}_mask.png",
                "overlay": f"{stem}_overlay.png",
            }
        )
    return rows
