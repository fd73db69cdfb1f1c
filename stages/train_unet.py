"""Stage train_unet: U-Net tumour segmentation of LGG slices, trained on the train patients.

Reads data/processed/segmentation, writes models/unet.keras and
metrics/train_unet/history.csv, and logs one MLflow run.
"""

import shutil
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from stages.errors import run_stage
from stages.models import build_unet, segmentation_loss, segmentation_metrics
from stages.params import load_params
from stages.pipelines import segmentation_dataset
from stages.tracking import stage_run
from stages.training import (
    backup_dir,
    choose_strategy,
    device_report,
    fit,
    learning_rate,
    log_keras_model,
    save_outputs,
    split_rows,
    steps_per_epoch,
    use_precision_and_xla,
)

DATA = Path("data/processed/segmentation")
MODEL = Path("models/unet.keras")
HISTORY = Path("metrics/train_unet/history.csv")


def main() -> None:
    config = load_params().train_unet
    keras.utils.set_random_seed(config.seed)
    strategy = choose_strategy(config.strategy)
    policy, xla = use_precision_and_xla(config)
    slices = np.load(DATA / "slices.npy", mmap_mode="r")
    masks = np.load(DATA / "masks.npy", mmap_mode="r")
    manifest = pd.read_csv(DATA / "manifest.csv")
    train_rows, val_rows = split_rows(manifest, "train"), split_rows(manifest, "val")
    size, batch, seed = config.image_size, config.batch_size, config.seed
    distributed = strategy.num_replicas_in_sync > 1
    train = segmentation_dataset(slices, masks, train_rows, size, batch, seed, augment=True, drop_remainder=True)
    val = segmentation_dataset(slices, masks, val_rows, size, batch, seed, augment=False, drop_remainder=distributed)

    with strategy.scope():
        model = build_unet(size, config.backbone, config.encoder_weights)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch(len(train_rows), batch))),
            loss=segmentation_loss(config.loss),
            metrics=segmentation_metrics(),
            jit_compile=xla,
        )
    backup = backup_dir("train_unet", config, DATA / "manifest.csv")
    with stage_run("train_unet", config.model_dump(), system_metrics=True) as run:
        history = fit(model, train, val, config, backup, tracked=run is not None)
        if run is not None:
            mlflow.set_tags(device_report(strategy, policy, xla))
            save_outputs(model, MODEL, history, HISTORY, metric="dice")
            registered_name = "brain-mri-unet" if config.register_model else None
            log_keras_model(model, next(iter(val.take(1)))[0][:2].numpy(), registered_name)
    shutil.rmtree(backup, ignore_errors=True)


if __name__ == "__main__":
    run_stage(main)
