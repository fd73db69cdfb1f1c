"""Training throughput of each model fed three ways, on the real data, in one run.

    .venv/bin/python bench/input_pipeline.py [classifier|unet|both]

1. the project's tf.data pipeline (memory-mapped uint8 rows, cache, albumentations, prefetch);
2. the same batches as in-memory tensors (the upper bound: no input work at all);
3. a keras.utils.PyDataset that reads and decodes the original files in Python per batch
   (the original notebook's custom batch generator): what a user would otherwise have.

After a warm-up (which also fills the pipeline's cache), the three take turns for ROUNDS
rounds, each feed training for a short stretch of steps per round (the order reversed every
other round), at 128x128. This shared machine's speed jumps between phases, at times within
seconds, so one long epoch per feed compares phases, not feeds. Short stretches taken in turn put the
pipeline and the in-memory feed side by side in each round; their ratio per round is the
figure, summarised by its median. Goal: the pipeline at least 0.95 of the in-memory rate.
"""

import sys
import tempfile
import time
from pathlib import Path

import albumentations as A
import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf
import tifffile
from common import prepare_real_data

from brain_mri.data.images import crop_to_brain, decode_image, resize_square
from brain_mri.data.processed import NpyRows
from brain_mri.models.classifier import build_classifier
from brain_mri.models.losses import segmentation_loss
from brain_mri.models.unet import build_unet
from brain_mri.training.pipelines import (
    classification_dataset,
    classifier_augmentation,
    segmentation_dataset,
    unet_augmentation,
)

SIZE, BATCH = 128, 8
ROUNDS = 8


class FilesPerBatch(keras.utils.PyDataset):
    """Reads, decodes, preprocesses and augments the original files in Python, batch by batch."""

    def __init__(self, load, paths: list, batch_size: int, augmentation: A.Compose):
        super().__init__()
        self.load, self.paths, self.batch_size, self.augmentation = load, paths, batch_size, augmentation

    def __len__(self) -> int:
        return len(self.paths) // self.batch_size

    def __getitem__(self, index: int):
        images, targets = [], []
        for item in self.paths[index * self.batch_size : (index + 1) * self.batch_size]:
            image, target = self.load(item)
            if isinstance(target, np.ndarray):
                out = self.augmentation(image=image, mask=target)
                images.append(out["image"]), targets.append((out["mask"] > 127)[..., None])
            else:
                images.append(self.augmentation(image=image)["image"]), targets.append([target])
        return np.stack(images).astype(np.float32), np.stack(targets).astype(np.float32)


def load_classification(item):
    path, label = item
    return resize_square(crop_to_brain(decode_image(Path(path).read_bytes(), path)), SIZE), label


def load_segmentation(item):
    image_path, mask_path = item
    image = resize_square(tifffile.imread(image_path), SIZE)
    return image, resize_square(tifffile.imread(mask_path), SIZE, cv2.INTER_NEAREST)


def stretch_seconds(model: keras.Model, data, steps: int) -> float:
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start


def compare(name: str, make_model, pipeline: tf.data.Dataset, files: FilesPerBatch, stretch_images: int) -> None:
    batches = [(x.numpy(), y.numpy()) for x, y in pipeline]  # also fills the pipeline's cache
    in_memory = tf.data.Dataset.from_tensor_slices(
        (tf.constant(np.stack([x for x, _ in batches])), tf.constant(np.stack([y for _, y in batches])))
    )
    steps = stretch_images // BATCH
    feeds = {
        "tf.data pipeline": (make_model(), pipeline.repeat()),
        "in-memory tensors": (make_model(), in_memory.repeat()),
        "PyDataset, files per batch": (make_model(), files),
    }
    for model, data in feeds.values():
        stretch_seconds(model, data, steps)  # warm-up: graph, first batches
    seconds = {label: [] for label in feeds}
    for round_number in range(ROUNDS):
        order = list(feeds) if round_number % 2 == 0 else list(reversed(feeds))
        for label in order:
            seconds[label].append(stretch_seconds(*feeds[label], steps))
    rates = {label: stretch_images / np.array(times) for label, times in seconds.items()}
    pipeline_label, in_memory_label = "tf.data pipeline", "in-memory tensors"
    paired = rates[pipeline_label] / rates[in_memory_label]
    fastest = rates[pipeline_label].max() / rates[in_memory_label].max()
    print(f"\n{name}: {ROUNDS} rounds of {stretch_images} training images per feed, batch {BATCH}, {SIZE}x{SIZE}")
    for label, rate in rates.items():
        per_round = ", ".join(f"{r:.1f}" for r in rate)
        print(f"  {label:28s} median {np.median(rate):5.1f}  fastest {rate.max():5.1f} images/s  (rounds: {per_round})")
    print(
        f"  pipeline / in-memory         median of rounds {np.median(paired):.2f}"
        f" (rounds {paired.min():.2f} to {paired.max():.2f}), fastest {fastest:.2f}"
    )


def compiled(model: keras.Model, loss) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    return model


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        prepare_real_data(work, {})
        processed = work / "data/processed"
        if which in ("classifier", "both"):
            images = NpyRows(processed / "classification/images.npy")
            manifest = pd.read_csv(processed / "classification/manifest.csv")
            labels = manifest.sort_values("row")["label"].to_numpy()
            train = manifest[manifest["split"] == "train"]
            pipeline = classification_dataset(images, labels, train["row"].to_numpy(), SIZE, BATCH, 0, True, True)
            files = FilesPerBatch(
                load_classification,
                list(zip(work / train["source"], train["label"], strict=True)),
                BATCH,
                classifier_augmentation(),
            )
            compare(
                "classifier (VGG16-BN)",
                lambda: compiled(build_classifier(SIZE, None, True, 0.3), "binary_crossentropy"),
                pipeline,
                files,
                stretch_images=96,  # 12 steps, about 20 s
            )
        if which in ("unet", "both"):
            slices = NpyRows(processed / "segmentation/slices.npy")
            masks = NpyRows(processed / "segmentation/masks.npy")
            manifest = pd.read_csv(processed / "segmentation/manifest.csv")
            train = manifest[manifest["split"] == "train"]
            pipeline = segmentation_dataset(slices, masks, train["row"].to_numpy(), SIZE, BATCH, 0, True, True)
            pairs = list(zip(work / train["image_path"], work / train["mask_path"], strict=True))
            files = FilesPerBatch(load_segmentation, pairs, BATCH, unet_augmentation())
            compare(
                "U-Net (resnet18)",
                lambda: compiled(build_unet(SIZE, "resnet18"), segmentation_loss("jaccard")),
                pipeline,
                files,
                stretch_images=192,  # 24 steps, about 15 to 30 s
            )


if __name__ == "__main__":
    main()
