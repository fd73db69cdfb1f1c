"""Pictures of the test results a person would rather look at than read."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brain_mri.data.processed import FLAIR  # the channel that shows the tumour
from brain_mri.inference.overlay import overlay


def prediction_grid(
    rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> plt.Figure:
    """One row per (title, slice, true mask, predicted mask): image, truth, prediction, overlay."""
    figure, axes = plt.subplots(len(rows), 4, figsize=(10, 2.6 * len(rows)), squeeze=False)
    for axis_row, (title, image, truth, predicted) in zip(axes, rows, strict=True):
        panels = (image[..., FLAIR], truth, predicted, overlay(image, truth, predicted))
        names = ("FLAIR", "ground truth", "prediction", "overlay")
        for axis, panel, name in zip(axis_row, panels, names, strict=True):
            axis.imshow(panel, cmap="gray")
            axis.set_xticks([]), axis.set_yticks([])
            axis.set_title(name, fontsize=9)
        axis_row[0].set_ylabel(title, fontsize=8)
    figure.tight_layout()
    return figure


def dice_per_patient(per_patient: pd.DataFrame, cascade: pd.DataFrame | None = None) -> plt.Figure:
    """Horizontal bars of each test patient's Dice, U-Net alone and through the cascade."""
    ordered = per_patient.sort_values("dice")
    figure, axis = plt.subplots(figsize=(7, 0.4 * len(ordered) + 1.5))
    positions = np.arange(len(ordered))
    axis.barh(positions - 0.2, ordered["dice"], height=0.4, label="U-Net")
    if cascade is not None:
        axis.barh(
            positions + 0.2,
            cascade.set_index("patient").loc[ordered["patient"], "dice"],
            height=0.4,
            label="cascade",
        )
    axis.set_yticks(positions, ordered["patient"], fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_xlabel("Dice (whole volume)")
    # above the bars, where it can cover none of them
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    figure.tight_layout()
    return figure
