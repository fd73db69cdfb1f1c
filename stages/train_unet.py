"""Stage train_unet: U-Net tumour segmentation of LGG slices, trained on the train patients.

Reads data/processed/segmentation, writes models/unet.keras and
metrics/train_unet/history.csv, and logs one MLflow run.
"""

from pathlib import Path

import keras
import pandas as pd

from stages.arrays import NpyRows
from stages.errors import run_stage
from stages.models import build_unet, segmentation_loss, segmentation_metrics
from stages.params import load_params
from stages.pipelines import segmentation_dataset
from stages.training import (
    choose_strategy,
    device_report,
    learning_rate,
    split_rows,
    steps_per_epoch,
    train_and_log,
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
    slices = NpyRows(DATA / "slices.npy")
    masks = NpyRows(DATA / "masks.npy")
    manifest = pd.read_csv(DATA / "manifest.csv")
    train_rows, val_rows = split_rows(manifest, "train"), split_rows(manifest, "val")
    size, batch, seed = config.image_size, config.batch_size, config.seed
    distributed = strategy.num_replicas_in_sync > 1
    train = segmentation_dataset(
        slices,
        masks,
        train_rows,
        size,
        batch,
        seed,
        augment=True,
        drop_remainder=True,
        missing_sequence_p=config.missing_sequence_p,
    )
    val = segmentation_dataset(slices, masks, val_rows, size, batch, seed, augment=False, drop_remainder=distributed)

    with strategy.scope():
        model = build_unet(size, config.backbone, config.encoder_weights, config.input_scaling)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch(len(train_rows), batch))),
            loss=segmentation_loss(config.loss),
            metrics=segmentation_metrics(),
            jit_compile=xla,
        )
    train_and_log(
        "train_unet",
        config,
        model,
        train,
        val,
        manifest=DATA / "manifest.csv",
        model_path=MODEL,
        history_path=HISTORY,
        metric="dice",
        registered_name="brain-mri-unet",
        device=device_report(strategy, policy, xla),
    )


if __name__ == "__main__":
    run_stage(main)
