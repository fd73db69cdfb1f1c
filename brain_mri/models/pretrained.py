"""Pretrained weights: where Keras keeps them, and what to say when they cannot be had."""

import os
from pathlib import Path

from brain_mri.common.errors import PipelineError, redacted


def keras_weights_folder() -> Path:
    """Where Keras (and segmentation-models through it) looks for downloaded weights first."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def weights_error(param: str, weights: str, error: Exception) -> PipelineError:
    """One line for weights that could not be downloaded or read: offline, where to put the file."""
    reason = redacted(str(error)).splitlines()[0][:160] if str(error) else type(error).__name__
    return PipelineError(
        f"{param}: cannot load the {weights!r} weights ({reason}); without internet, download the file once "
        f"elsewhere and put it in {keras_weights_folder()} (where Keras looks first), or use null to train "
        "from scratch"
    )
