"""Reliability and security: each promise about failure, provoked by a test.

Cases covered elsewhere are listed in README ("What happens when things go wrong") with
their tests; this module holds the rest.
"""

import io
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from brain_mri.common.errors import PipelineError
from brain_mri.common.params import load_params
from brain_mri.data.images import crop_to_brain, decode_image, read_mask, read_slice
from brain_mri.models.classifier import build_classifier
from brain_mri.models.saving import load_model
from brain_mri.models.unet import build_unet
from tests.helpers import ROOT, copy_work, run_stage, stage_command, stage_env

pytestmark = pytest.mark.reliability


# Fuzz: the loaders and the crop raise nothing but the project's error


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_crash_the_image_loaders(data):
    for load in (decode_image, read_slice, read_mask):
        try:
            load(data, "fuzz")
        except PipelineError:
            pass


def _encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "TIFF":
        tifffile.imwrite(buffer, array)
    else:
        Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3, 4]))),
    st.sampled_from(["PNG", "TIFF", "BMP"]),
    st.integers(0, 64),
)
def test_random_small_images_decode_and_crop_or_raise_the_project_error(image, fmt, cut):
    picture = image[..., 0] if image.shape[2] == 1 else image
    data = _encoded(picture, fmt)
    data = data[: len(data) - cut] if cut else data  # sometimes truncated
    try:
        decoded = decode_image(data, "fuzz")
    except PipelineError:
        return
    cropped = crop_to_brain(decoded)
    assert cropped.ndim == 3 and cropped.shape[2] == 3 and cropped.size > 0


# Security


def test_models_load_in_safe_mode_and_a_lambda_layer_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(tmp_path / "evil.keras")
    with pytest.raises(PipelineError, match="cannot load the model"):
        load_model(str(tmp_path / "evil.keras"))


def test_params_yaml_with_a_python_object_tag_is_refused(tmp_path):
    (tmp_path / "params.yaml").write_text("base: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


# Bad data


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("four channels", np.zeros((256, 256, 4), np.uint8), r"expected uint8 \(H, W, 3\)"),
        ("sixteen bit", np.zeros((256, 256, 3), np.uint16), "uint16"),
    ],
)
def test_a_slice_that_is_not_8_bit_rgb_is_refused(name, array, message):
    with pytest.raises(PipelineError, match=message):
        read_slice(_encoded(array, "TIFF"), name)


def test_a_truncated_tiff_is_refused():
    data = _encoded(np.zeros((256, 256, 3), np.uint8), "TIFF")
    with pytest.raises(PipelineError):
        read_slice(data[:500], "truncated.tif")


def test_an_empty_dataset_is_a_clear_error(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path)
    for label in ("yes", "no"):
        (tmp_path / "data/raw/classification" / label).mkdir(parents=True)
    (tmp_path / "data/raw/segmentation/kaggle_3m").mkdir(parents=True)
    result = run_stage(tmp_path, "crop_split")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no yes/ and no/ folder" in result.stderr
    assert not (tmp_path / "data/processed").exists()


# predict on bad input (with untrained models of the right shapes: no training needed)


@pytest.fixture(scope="module")
def untrained_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    build_classifier(32, None, True, 0.0).save(folder / "classifier.keras")
    build_unet(32, "resnet18").save(folder / "unet.keras")
    return folder


def test_predict_skips_a_non_image_and_a_huge_image_with_a_row_each(untrained_models, tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path)
    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("L", (10_000, 10_000)).save(tmp_path / "huge.png")
    Image.new("RGB", (300, 200), (90, 90, 90)).save(tmp_path / "fine.jpg")
    inputs = [str(tmp_path / name) for name in ("notes.txt", "huge.png", "fine.jpg")]
    result = run_stage(tmp_path, "predict", *inputs, "--out", "out", "--models", str(untrained_models))
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out/predictions.csv").set_index("input")
    assert "not a readable image" in table.loc[inputs[0], "status"]
    assert "larger than" in table.loc[inputs[1], "status"]
    assert table.loc[inputs[2], "status"] == "ok"
    assert "skipped:" in result.stderr


# Faults


def test_a_full_disk_fails_the_stage_clearly_and_keeps_the_earlier_output(tiny_processed, tmp_path):
    work = copy_work(tiny_processed, tmp_path / "work")
    before = (work / "data/processed/segmentation/slices.npy").read_bytes()

    def small_disk():  # writes past 1 MB fail, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    result = run_stage(work, "crop_split", preexec_fn=small_disk)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no space" in last and "Traceback" not in result.stderr
    assert (work / "data/processed/segmentation/slices.npy").read_bytes() == before, "earlier output intact"
    assert not list((work / "data").glob(".processed.partial-*")), "no half-written output left"


def test_a_download_killed_part_way_leaves_no_raw_data_and_the_rerun_completes(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path)
    process = subprocess.Popen(stage_command("download"), cwd=tmp_path, env=stage_env())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "data").glob(".raw.partial-*/segmentation/kaggle_3m/*")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list((tmp_path / "data").glob(".raw.partial-*")), "killed while writing"
    assert not (tmp_path / "data/raw").exists(), "no half dataset under the real name"
    result = run_stage(tmp_path, "download")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list((tmp_path / "data").glob(".raw.partial-*")), "the rerun cleaned the leftovers"
    assert (tmp_path / "data/raw/segmentation/kaggle_3m/data.csv").is_file()
