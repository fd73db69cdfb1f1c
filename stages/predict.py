"""Predict on your own images: tumour probability, tumour mask and overlay for each input.

    python -m stages.predict scan1.jpg folder/ slice.tif --out predictions/
    python -m stages.predict folder/ --out predictions/ --no-cascade --models models/

Each input is preprocessed as in training. The classifier gives P(tumour); as in the
original work, only inputs classified as tumour are segmented (`--no-cascade` segments every
input). Writes <name>_mask.png (0/255, the input's own size) and <name>_overlay.png per input,
and predictions.csv with one row per input, also for files that could not be read, naming the
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
from brain_mri.data.images import decode_image
from brain_mri.inference.predict import expand_inputs, output_stems, predict_batch


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


def synthetic_warning(trained_on: dict[str, str]) -> str:
    models = " and ".join(f"{model}.keras" for model, data in trained_on.items() if data == "synthetic")
    return (
        f"{models} trained on the embedded synthetic data, not on real scans: their answers on real scans mean "
        "nothing; train on real data with a recipe (README: Train on the real data)"
    )


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    config = load_params().evaluate
    files = expand_inputs(arguments.inputs)
    # imported only now: --help and a missing input are answered at once, without loading TensorFlow
    from brain_mri.models.saving import load_model, training_data

    paths = (arguments.models / "classifier.keras", arguments.models / "unet.keras")
    models = tuple(load_model(str(path)) for path in paths)
    trained_on = {path.stem: training_data(path)["trained_on"] for path in paths}
    if "synthetic" in trained_on.values():
        print(f"warning: {synthetic_warning(trained_on)}", file=sys.stderr)
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
    table["model_training_data"] = "; ".join(f"{model}: {data}" for model, data in trained_on.items())
    write_csv(arguments.out / "predictions.csv", table)
    done = int((table["status"] == "ok").sum())
    print(f"predict: {done} of {len(files)} images -> {arguments.out / 'predictions.csv'}")


if __name__ == "__main__":
    run_stage(main)
