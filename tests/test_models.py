import subprocess
import sys

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf

from brain_mri.common.errors import PipelineError
from brain_mri.models.saving import load_model
from brain_mri.models.unet import build_unet, per_slice_intensity
from brain_mri.tracking.models import log_keras_model
from tests.helpers import ROOT, stage_env


def head_slice() -> np.ndarray:
    """One 32x32 slice: a square 'head' on a dark background, with a brighter 'tumour' in FLAIR."""
    pixels = np.zeros((1, 32, 32, 3), np.float32)
    pixels[0, 4:28, 4:28] = (40, 60, 30)
    pixels[0, 10:14, 10:14, 1] = 120
    return pixels


def test_per_slice_scaling_gives_every_channel_a_head_mean_of_one_and_keeps_the_background():
    scaled = np.asarray(per_slice_intensity(head_slice()))
    head = scaled[0, 4:28, 4:28]
    assert head.reshape(-1, 3).mean(axis=0) == pytest.approx([1, 1, 1], abs=1e-5)
    assert np.all(scaled[0, :4] == 0)


def test_per_slice_scaling_removes_a_scanners_gain_per_channel():
    darker = head_slice() * np.array([0.5, 0.4, 1.5], np.float32)  # another scanner, another gain per sequence
    assert np.asarray(per_slice_intensity(darker)) == pytest.approx(np.asarray(per_slice_intensity(head_slice())))


def test_per_slice_scaling_leaves_an_empty_slice_finite():
    scaled = np.asarray(per_slice_intensity(np.zeros((1, 8, 8, 3), np.float32)))
    assert np.all(scaled == 0)


@pytest.mark.parametrize(("backbone", "input_scaling"), [("resnet18", "per_slice"), ("mobilenetv2", "fixed")])
def test_a_unet_loads_in_safe_mode_and_predicts_the_same(tmp_path, backbone, input_scaling):
    model = build_unet(32, backbone, input_scaling=input_scaling)
    model.save(tmp_path / "unet.keras")
    loaded = load_model(tmp_path / "unet.keras", "unet")
    pixels = head_slice()
    assert loaded.predict(pixels, verbose=0) == pytest.approx(model.predict(pixels, verbose=0), abs=1e-6)
    darker = pixels * np.array([0.5, 0.4, 1.5], np.float32)  # another scanner's gain per sequence
    same = loaded.predict(darker, verbose=0) == pytest.approx(loaded.predict(pixels, verbose=0), abs=1e-5)
    assert same == (input_scaling == "per_slice"), "per_slice scaling is saved with the model"


def test_a_per_slice_unet_logged_to_mlflow_loads_where_this_package_is_not(tmp_path):
    """Its scaling is Keras operations inside the model, not a layer class that only this package defines."""
    model = build_unet(32, "resnet18", input_scaling="per_slice")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("per-slice", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            batch = tf.data.Dataset.from_tensors((head_slice(), np.zeros((1, 32, 32, 1), np.float32)))
            log_keras_model(model, "unet", batch, None)
        (logged,) = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")
    finally:
        mlflow.set_tracking_uri(previous)
    program = [sys.executable, "-m", "tests.programs.mlflow_client", uri, f"models:/{logged.model_id}"]
    result = subprocess.run(program, cwd=ROOT, env=stage_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(f"models:/{logged.model_id} (1, 32, 32, 1)"), result.stdout


def test_a_per_slice_unet_of_an_older_version_is_refused_in_one_line_with_the_fix(tmp_path):
    @keras.saving.register_keras_serializable(package="brain_mri")
    class PerSliceIntensity(keras.layers.Layer):  # the layer class versions before 0a36106 saved
        def call(self, pixels):
            return per_slice_intensity(pixels)

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(PerSliceIntensity()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "unet.keras")
    with pytest.raises(
        PipelineError, match=r"unet.keras was saved with the per_slice .* older version .*; train it again"
    ):
        load_model(tmp_path / "unet.keras", "unet")
