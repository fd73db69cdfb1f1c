import numpy as np
import pytest

from brain_mri.models.saving import load_model
from brain_mri.models.unet import PerSliceIntensity, build_unet


def head_slice() -> np.ndarray:
    """One 32x32 slice: a square 'head' on a dark background, with a brighter 'tumour' in FLAIR."""
    pixels = np.zeros((1, 32, 32, 3), np.float32)
    pixels[0, 4:28, 4:28] = (40, 60, 30)
    pixels[0, 10:14, 10:14, 1] = 120
    return pixels


def test_per_slice_scaling_gives_every_channel_a_head_mean_of_one_and_keeps_the_background():
    scaled = np.asarray(PerSliceIntensity()(head_slice()))
    head = scaled[0, 4:28, 4:28]
    assert head.reshape(-1, 3).mean(axis=0) == pytest.approx([1, 1, 1], abs=1e-5)
    assert np.all(scaled[0, :4] == 0)


def test_per_slice_scaling_removes_a_scanners_gain_per_channel():
    darker = head_slice() * np.array([0.5, 0.4, 1.5], np.float32)  # another scanner, another gain per sequence
    assert np.asarray(PerSliceIntensity()(darker)) == pytest.approx(np.asarray(PerSliceIntensity()(head_slice())))


def test_per_slice_scaling_leaves_an_empty_slice_finite():
    scaled = np.asarray(PerSliceIntensity()(np.zeros((1, 8, 8, 3), np.float32)))
    assert np.all(scaled == 0)


@pytest.mark.parametrize(("backbone", "input_scaling"), [("resnet18", "per_slice"), ("mobilenetv2", "fixed")])
def test_a_unet_loads_in_safe_mode_and_predicts_the_same(tmp_path, backbone, input_scaling):
    model = build_unet(32, backbone, input_scaling=input_scaling)
    model.save(tmp_path / "unet.keras")
    loaded = load_model(tmp_path / "unet.keras", "unet")
    pixels = head_slice()
    assert loaded.predict(pixels, verbose=0) == pytest.approx(model.predict(pixels, verbose=0), abs=1e-6)
    scaled = any(isinstance(layer, PerSliceIntensity) for layer in loaded.layers)
    assert scaled == (input_scaling == "per_slice")
