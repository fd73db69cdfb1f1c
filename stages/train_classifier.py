"""Stage train_classifier: VGG16 tumour / healthy classifier on the cropped images.

Reads data/processed/classification, writes models/classifier.keras and
metrics/train_classifier/history.csv, and logs one MLflow run.
"""

from pathlib import Path

import keras
import pandas as pd

from stages.arrays import NpyRows
from stages.errors import run_stage
from stages.models import build_classifier
from stages.params import load_params
from stages.pipelines import classification_dataset
from stages.training import (
    balanced_class_weight,
    choose_strategy,
    device_report,
    learning_rate,
    split_rows,
    steps_per_epoch,
    train_and_log,
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
    images = NpyRows(DATA / "images.npy")
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
    train_and_log(
        "train_classifier",
        config,
        model,
        train,
        val,
        manifest=DATA / "manifest.csv",
        model_path=MODEL,
        history_path=HISTORY,
        metric="accuracy",
        registered_name="brain-mri-classifier",
        device=device_report(strategy, policy, xla),
    )


if __name__ == "__main__":
    run_stage(main)
