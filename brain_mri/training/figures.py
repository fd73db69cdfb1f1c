"""Training curves, as a picture."""

import matplotlib.pyplot as plt
import pandas as pd


def training_curves(history: pd.DataFrame, metric: str) -> plt.Figure:
    """Loss and one metric, train against validation, by epoch."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, ("loss", metric), strict=True):
        axis.plot(history["epoch"], history[name], label="train")
        axis.plot(history["epoch"], history[f"val_{name}"], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    # one wild epoch (a val_loss of 52 against 0.5) would flatten a linear axis
    axes[0].set_yscale("log")
    axes[0].set_title("loss (log scale)")
    figure.tight_layout()
    return figure
