"""Predict on your own images: tumour probability, tumour mask and overlay for each input.

    python -m stages.predict scan1.jpg folder/ slice.tif --out predictions/
    python -m stages.predict folder/ --out predictions/ --no-cascade --models models/

Each input is preprocessed as in training. The classifier gives P(tumour), the U-Net a mask;
as in the original work, the mask is kept only where a gate says tumour (`--no-cascade` keeps
every mask). The gate is the U-Net's predicted area for MRI slices stored as kaggle_3m stores
them (TIFF), the classifier for other images (`--kind` overrides the choice by file type; the
same cascade evaluate measures). With evaluate.largest_component the slices of each kaggle_3m
patient folder (<patient>/<patient>_<k>.tif) are predicted together, as one volume. Writes
<name>_mask.png (0/255, the input's own size) and <name>_overlay.png per input, and
predictions.csv with one row per input, also for files that could not be read, naming the
data the models were trained on (a warning says so when it is the embedded synthetic data).
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from brain_mri.common.errors import PipelineError, run_stage
from brain_mri.common.outputs import write_csv
from brain_mri.common.params import load_params
from brain_mri.inference.cascade import BATCH_SIZE, INPUT_KINDS
from brain_mri.inference.predict import decoded_batches, expand_inputs, output_stems, predict_batch


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="image files (JPEG/PNG/TIFF) or folders of them")
    parser.add_argument("--out", type=Path, required=True, help="folder for masks, overlays and predictions.csv")
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with classifier.keras, unet.keras")
    parser.add_argument(
        "--no-cascade", action="store_true", help="keep every input's mask, not only those the gate calls tumour"
    )
    parser.add_argument(
        "--kind",
        choices=("auto", *INPUT_KINDS),
        default="auto",
        help="what the inputs are: slice (an MRI slice as kaggle_3m stores it), image, or auto (TIFF is a slice)",
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    return parser.parse_args(argv)


def synthetic_warning(trained_on: dict[str, str]) -> str:
    models = " and ".join(f"{model}.keras" for model, data in trained_on.items() if data == "synthetic")
    return (
        f"{models} trained on the embedded synthetic data, not on real scans: their answers on real scans mean "
        "nothing; train on real data with a recipe (README: Train on the real data)"
    )


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    config = load_params().evaluate
    files = expand_inputs(arguments.inputs, arguments.out)
    # imported only now: --help and a missing input are answered at once, without loading TensorFlow
    from brain_mri.models.saving import load_model, training_data

    paths = (arguments.models / "classifier.keras", arguments.models / "unet.keras")
    models = tuple(load_model(path, path.stem) for path in paths)
    trained_on = {path.stem: training_data(path)["trained_on"] for path in paths}
    if "synthetic" in trained_on.values():
        print(f"warning: {synthetic_warning(trained_on)}", file=sys.stderr)
    try:
        arguments.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"--out {arguments.out}: cannot make the folder ({error.strerror}); name one you can write"
        raise PipelineError(message) from None
    rows, cascade = [], not arguments.no_cascade
    # with largest_component each kaggle_3m patient's slices are predicted together, as one volume
    batches = decoded_batches(files, output_stems(files), config.largest_component, arguments.batch_size)
    with tqdm(total=len(files), desc="predict", unit="image") as progress:
        for batch, skipped in batches:
            for row in skipped:
                print(row["status"], file=sys.stderr)
            rows.extend(skipped)
            if batch:
                rows.extend(predict_batch(batch, models, config, cascade, arguments.kind, arguments.out))
            progress.update(len(batch) + len(skipped))
            del batch  # else it is held while the next batch decodes: two batches in memory
    places = {str(path): place for place, path in enumerate(files)}
    table = pd.DataFrame(rows).sort_values("input", key=lambda column: column.map(places))
    table["model_training_data"] = "; ".join(f"{model}: {data}" for model, data in trained_on.items())
    write_csv(arguments.out / "predictions.csv", table)
    done = int((table["status"] == "ok").sum())
    print(f"predict: {done} of {len(files)} images -> {arguments.out / 'predictions.csv'}")


if __name__ == "__main__":
    run_stage(main)
