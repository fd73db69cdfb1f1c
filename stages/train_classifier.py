"""Stage train_classifier: VGG16 tumour / healthy classifier on the cropped images.

Reads data/processed/classification, writes models/classifier.keras and
metrics/train_classifier/history.csv, and logs one MLflow run.
"""

import shutil
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from stages.errors import run_stage
from stages.models import build_classifier
from stages.params import load_params
from stages.pipelines import classification_dataset
from stages.tracking import stage_run
from stages.training import (
    backup_dir,
    balanced_class_weight,
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

DATA = Path("data/processed/classification")
MODEL = Path("models/classifier.keras")
HISTORY = Path("metrics/train_classifier/history.csv")


def main() -> None:
    config = load_params().train_classifier
    keras.utils.set_random_seed(config.seed)
    strategy = choose_strategy(config.strategy)
    policy, xla = use_precision_and_xla(config)
    images = np.load(DATA / "images.npy", mmap_mode="r")
    manifest = pd.read_csv(DATA / "manifest.csv")
    labels = manifest.sort_values("row")["label"].to_numpy()
    train_rows, val_rows = split_rows(manifest, "train"), split_rows(manifest, "val")
    size, batch, seed = config.image_size, config.batch_size, config.seed
    distributed = strategy.num_replicas_in_sync > 1
    class_weight = balanced_class_weight(labels[train_rows]) if config.class_weight == "balanced" else None
    train = classification_dataset(
        images, labels, train_rows, size, batch, seed, augment=True, drop_remainder=True, class_weight=class_weight
    )
    val = classification_dataset(images, labels, val_rows, size, batch, seed, augment=False, drop_remainder=distributed)

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
        if run is not None:
            mlflow.set_tags(device_report(strategy, policy, xla))
            save_outputs(model, MODEL, history, HISTORY, metric="accuracy")
            registered_name = "brain-mri-classifier" if config.register_model else None
            log_keras_model(model, next(iter(val.take(1)))[0][:2].numpy(), registered_name)
    shutil.rmtree(backup, ignore_errors=True)


if __name__ == "__main__":
    run_stage(main)
