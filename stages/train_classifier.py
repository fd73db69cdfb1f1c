"""Stage train_classifier: VGG16 tumour / healthy classifier on the cropped images.

Reads data/processed/classification, writes models/classifier.keras and
metrics/train_classifier/history.csv, and logs one MLflow run.
"""

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from stages.errors import run_stage
from stages.models import build_classifier
from stages.params import load_params
from stages.pipelines import classification_dataset
from stages.tracking import stage_run
from stages.training import fit, log_keras_model, save_outputs, split_rows

DATA = Path("data/processed/classification")
MODEL = Path("models/classifier.keras")
HISTORY = Path("metrics/train_classifier/history.csv")


def main() -> None:
    config = load_params().train_classifier
    keras.utils.set_random_seed(config.seed)
    images = np.load(DATA / "images.npy", mmap_mode="r")
    manifest = pd.read_csv(DATA / "manifest.csv")
    labels = manifest.sort_values("row")["label"].to_numpy()

    def dataset(split: str, augment: bool):
        rows = split_rows(manifest, split)
        return classification_dataset(
            images,
            labels,
            rows,
            config.image_size,
            config.batch_size,
            config.seed,
            augment,
        )

    model = build_classifier(config.image_size, config.weights, config.batch_norm, config.dropout)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    with stage_run("train_classifier", config.model_dump()):
        history = fit(
            model,
            dataset("train", augment=True),
            dataset("val", augment=False),
            config.epochs,
            callbacks=[],
        )
        save_outputs(model, MODEL, history, HISTORY, metric="accuracy")
        sample = np.asarray(images[split_rows(manifest, "val")[:2]], dtype=np.float32)
        log_keras_model(model, keras.ops.image.resize(sample, (config.image_size,) * 2).numpy())


if __name__ == "__main__":
    run_stage(main)
