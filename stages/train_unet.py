"""Stage train_unet: U-Net tumour segmentation of LGG slices, trained on the train patients.

Reads data/processed/segmentation, writes models/unet.keras and
metrics/train_unet/history.csv, and logs one MLflow run.
"""

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from stages.errors import run_stage
from stages.models import build_unet, segmentation_loss, segmentation_metrics
from stages.params import load_params
from stages.pipelines import segmentation_dataset
from stages.tracking import stage_run
from stages.training import fit, log_keras_model, save_outputs, split_rows

DATA = Path("data/processed/segmentation")
MODEL = Path("models/unet.keras")
HISTORY = Path("metrics/train_unet/history.csv")


def main() -> None:
    config = load_params().train_unet
    keras.utils.set_random_seed(config.seed)
    slices = np.load(DATA / "slices.npy", mmap_mode="r")
    masks = np.load(DATA / "masks.npy", mmap_mode="r")
    manifest = pd.read_csv(DATA / "manifest.csv")

    def dataset(split: str, augment: bool):
        rows = split_rows(manifest, split)
        return segmentation_dataset(
            slices,
            masks,
            rows,
            config.image_size,
            config.batch_size,
            config.seed,
            augment,
        )

    model = build_unet(config.image_size, config.backbone)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=segmentation_loss(config.loss),
        metrics=segmentation_metrics(),
    )
    with stage_run("train_unet", config.model_dump()):
        history = fit(
            model,
            dataset("train", augment=True),
            dataset("val", augment=False),
            config.epochs,
            callbacks=[],
        )
        save_outputs(model, MODEL, history, HISTORY, metric="dice")
        sample = next(iter(dataset("val", augment=False).take(1)))[0][:2].numpy()
        log_keras_model(model, sample)


if __name__ == "__main__":
    run_stage(main)
