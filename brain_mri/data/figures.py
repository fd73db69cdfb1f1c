"""The crop, shown: original images above their brain crops."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brain_mri.data.images import crop_to_brain, decode_image


def crop_examples(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> plt.Figure:
    """Original images above their brain crops."""
    figure, axes = plt.subplots(2, len(pairs), figsize=(2.2 * len(pairs), 4.6), squeeze=False)
    for column, (name, before, after) in enumerate(pairs):
        for row, picture in enumerate((before, after)):
            axes[row, column].imshow(picture)
            axes[row, column].set_xticks([]), axes[row, column].set_yticks([])
        axes[0, column].set_title(name, fontsize=7)
    axes[0, 0].set_ylabel("original"), axes[1, 0].set_ylabel("cropped")
    figure.tight_layout()
    return figure


def crop_examples_figure(manifest: pd.DataFrame, per_class: int = 4) -> plt.Figure:
    """Originals above their crops, for the first images of each class of a classification manifest."""
    chosen = manifest.groupby("label").head(per_class).sort_values("label", ascending=False)
    pairs = []
    for source in chosen["source"]:
        image = decode_image(Path(source).read_bytes(), source)
        pairs.append((Path(source).name, image, crop_to_brain(image)))
    return crop_examples(pairs)
