"""Stage train_unet: U-Net tumour segmentation of LGG slices, trained on the train patients.

Reads data/processed/segmentation, writes models/unet.keras and
metrics/train_unet/history.csv, and logs one MLflow run.
"""

import shutil
from pathlib import Path

import keras

from brain_mri.common.errors import run_stage
from brain_mri.common.outputs import write_csv
from brain_mri.common.params import load_params
from brain_mri.data.processed import read_segmentation, split_rows
from brain_mri.models.losses import segmentation_loss, segmentation_metrics
from brain_mri.models.saving import save_model
from brain_mri.models.unet import build_unet
from brain_mri.tracking.models import log_keras_model, log_training
from brain_mri.tracking.provenance import log_provenance, training_provenance
from brain_mri.tracking.results import tag_model_file
from brain_mri.tracking.runs import stage_run
from brain_mri.training.devices import (
    choose_strategy,
    device_report,
    seed_and_determinism,
    use_precision_and_xla,
)
from brain_mri.training.figures import training_curves
from brain_mri.training.fitting import backup_dir, fit
from brain_mri.training.pipelines import segmentation_dataset
from brain_mri.training.schedule import learning_rate, steps_per_epoch

DATA = Path("data/processed/segmentation")
MODEL = Path("models/unet.keras")
HISTORY = Path("metrics/train_unet/history.csv")


def main() -> None:
    config = load_params().train_unet
    deterministic = seed_and_determinism(config)  # before TensorFlow starts its thread pools
    strategy = choose_strategy(config.strategy)
    policy, xla = use_precision_and_xla(config)
    data = read_segmentation(DATA)
    train_rows, val_rows = split_rows(data.manifest, "train"), split_rows(data.manifest, "val")
    size, batch, seed = config.image_size, config.batch_size, config.seed
    distributed = strategy.num_replicas_in_sync > 1
    train = segmentation_dataset(
        data.slices, data.masks, train_rows, size, batch, seed,
        augment=True, drop_remainder=True, missing_sequence_p=config.missing_sequence_p,
    )  # fmt: skip
    val = segmentation_dataset(
        data.slices, data.masks, val_rows, size, batch, seed, augment=False, drop_remainder=distributed
    )
    with strategy.scope():
        model = build_unet(size, config.backbone, config.encoder_weights, config.input_scaling)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch(len(train_rows), batch))),
            loss=segmentation_loss(config.loss),
            metrics=segmentation_metrics(),
            jit_compile=xla,
        )

    backup = backup_dir("train_unet", config, DATA / "manifest.csv")
    with stage_run("train_unet", config.model_dump(), system_metrics=True) as run:
        history = fit(model, train, val, config, backup, tracked=run is not None)
        if run is not None:  # the chief of a multi-worker cluster, or the only process
            provenance = training_provenance("train_unet", DATA, data.manifest, config.model_dump())
            save_model(model, MODEL, provenance)
            tag_model_file(MODEL)
            log_provenance(provenance, data.manifest, "segmentation (train split)")
            write_csv(HISTORY, history)
            log_training(history, training_curves(history, "dice"), device_report(strategy, policy, xla, deterministic))
            log_keras_model(model, "unet", val, "brain-mri-unet" if config.register_model else None)
    shutil.rmtree(backup, ignore_errors=True)


if __name__ == "__main__":
    run_stage(main)
