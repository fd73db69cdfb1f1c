"""Predict on your own images: tumour probability, tumour mask and overlay for each input.

    python -m stages.predict scan1.jpg folder/ slice.tif --out predictions/
    python -m stages.predict folder/ --out predictions/ --no-cascade --models models/

Each input is preprocessed as in training. The classifier gives P(tumour); as in the
original work, only inputs classified as tumour are segmented (`--no-cascade` segments every
input). Writes <name>_mask.png (0/255, the input's own size) and <name>_overlay.png per input,
and predictions.csv with one row per input, also for files that could not be read.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from stages.errors import PipelineError, run_stage
from stages.figures import overlay
from stages.images import decode_image
from stages.inference import classifier_input, mask_at_input_size, unet_input
from stages.layouts import IMAGE_SUFFIXES
from stages.models import load_model
from stages.outputs import atomic_file
from stages.params import load_params


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="image files (JPEG/PNG/TIFF) or folders of them")
    parser.add_argument("--out", type=Path, required=True, help="folder for masks, overlays and predictions.csv")
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with classifier.keras, unet.keras")
    parser.add_argument(
        "--no-cascade", action="store_true", help="segment every input, not only those classified as tumour"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    return parser.parse_args(argv)


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given, folders as the image files inside them (recursively), in order."""
    files = []
    for path in inputs:
        if not path.exists():
            raise PipelineError(f"{path} does not exist; pass image files or folders of images")
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
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


def save_png(array: np.ndarray, path: Path) -> None:
    with atomic_file(path) as partial:
        Image.fromarray(array).save(partial, format="PNG")


def predict_batch(
    batch: list[tuple[Path, str, np.ndarray]], models, thresholds, cascade: bool, out: Path
) -> list[dict]:
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
        save_png(mask, out / f"{stem}_mask.png")
        save_png((overlay(image, None, mask) * 255).astype(np.uint8), out / f"{stem}_overlay.png")
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


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    config = load_params().evaluate
    files = expand_inputs(arguments.inputs)
    models = (load_model(str(arguments.models / "classifier.keras")), load_model(str(arguments.models / "unet.keras")))
    arguments.out.mkdir(parents=True, exist_ok=True)
    rows, batch = [], []
    stems = output_stems(files)
    for index, (path, stem) in enumerate(tqdm(list(zip(files, stems, strict=True)), desc="predict", unit="image")):
        try:
            batch.append((path, stem, decode_image(path.read_bytes(), str(path))))
        except (PipelineError, OSError) as error:
            print(f"skipped: {error}", file=sys.stderr)
            rows.append({"input": str(path), "status": f"skipped: {error}"})
        if len(batch) == arguments.batch_size or (index == len(files) - 1 and batch):
            rows.extend(
                predict_batch(
                    batch, models, (config.threshold, config.mask_threshold), not arguments.no_cascade, arguments.out
                )
            )
            batch = []
    order = {str(path): position for position, path in enumerate(files)}
    table = pd.DataFrame(rows).sort_values("input", key=lambda column: column.map(order))
    with atomic_file(arguments.out / "predictions.csv") as partial:
        table.to_csv(partial, index=False)
    done = int((table["status"] == "ok").sum())
    print(f"predict: {done} of {len(files)} images -> {arguments.out / 'predictions.csv'}")


if __name__ == "__main__":
    run_stage(main)
