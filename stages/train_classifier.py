"""Stage train_classifier: VGG16 tumour / healthy classifier on the cropped images.

Reads data/processed/classification, writes models/classifier.keras and
metrics/train_classifier/history.csv, and logs one MLflow run.
"""

import shutil
from pathlib import Path

import keras

from brain_mri.common.errors import run_stage
from brain_mri.common.outputs import write_csv
from brain_mri.common.params import load_params
from brain_mri.data.processed import read_classification, split_rows
from brain_mri.models.classifier import build_classifier
from brain_mri.models.saving import save_model
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
from brain_mri.training.pipelines import classification_dataset
from brain_mri.training.schedule import balanced_class_weight, learning_rate, steps_per_epoch

DATA = Path("data/processed/classification")
MODEL = Path("models/classifier.keras")
HISTORY = Path("metrics/train_classifier/history.csv")


def main() -> None:
    config = load_params().train_classifier
    deterministic = seed_and_determinism(config)  # before TensorFlow starts its thread pools
    strategy = choose_strategy(config.strategy)
    policy, xla = use_precision_and_xla(config)
    data = read_classification(DATA)
    train_rows, val_rows = split_rows(data.manifest, "train"), split_rows(data.manifest, "val")
    size, batch, seed = config.image_size, config.batch_size, config.seed
    distributed = strategy.num_replicas_in_sync > 1
    class_weight = balanced_class_weight(data.labels[train_rows]) if config.class_weight == "balanced" else None
    train = classification_dataset(
        data.images, data.labels, train_rows, size, batch, seed,
        augment=True, drop_remainder=True, class_weight=class_weight,
    )  # fmt: skip
    val = classification_dataset(
        data.images, data.labels, val_rows, size, batch, seed, augment=False, drop_remainder=distributed
    )
    with strategy.scope():
        model = build_classifier(size, config.weights, config.batch_norm, config.dropout)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch(len(train_rows), batch))),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
            jit_compile=xla,
        )

    backup = backup_dir("train_classifier", config, DATA / "manifest.csv")
    with stage_run("train_classifier", config.model_dump(), system_metrics=True) as run:
        history = fit(model, train, val, config, backup, tracked=run is not None)
        if run is not None:  # the chief of a multi-worker cluster, or the only process
            provenance = training_provenance("train_classifier", DATA, data.manifest, config.model_dump())
            save_model(model, MODEL, provenance)
            tag_model_file(MODEL)
            log_provenance(provenance, data.manifest, "classification (train split)")
            write_csv(HISTORY, history)
            log_training(
                history, training_curves(history, "accuracy"), device_report(strategy, policy, xla, deterministic)
            )
            log_keras_model(model, "classifier", val, "brain-mri-classifier" if config.register_model else None)
    shutil.rmtree(backup, ignore_errors=True)


if __name__ == "__main__":
    run_stage(main)
