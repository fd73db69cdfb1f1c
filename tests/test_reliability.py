"""Reliability and security: each promise about failure, provoked by a test.

Cases covered elsewhere are listed in README ("What happens when things go wrong") with
their tests; this module holds the rest.
"""

import contextlib
import io
import os
import resource
import shutil
import signal
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
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

from brain_mri.common.cluster import is_chief
from brain_mri.common.errors import PipelineError
from brain_mri.common.params import load_params
from brain_mri.data.images import crop_to_brain, decode_image, read_mask, read_slice
from brain_mri.models.classifier import build_classifier
from brain_mri.models.saving import load_model
from brain_mri.models.unet import build_unet
from brain_mri.training.devices import choose_strategy
from tests.helpers import ROOT, copy_work, free_port, run_stage, stage_command, stage_env

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
        load_model(tmp_path / "evil.keras", "unet")


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


def test_a_huge_tiff_slice_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """8000x8000x3 (192 MB decoded), written tile by tile and compressed: a 1 MB file. Refused from
    its header, so decoding it never costs the memory; and a stack of pages is counted whole."""
    tile = np.zeros((1024, 1024, 3), np.uint8)
    buffer = io.BytesIO()
    tiles = (tile for _ in range(64))  # 8 x 8 tiles of 1024 (the last row and column padded)
    tifffile.imwrite(buffer, tiles, shape=(8000, 8000, 3), dtype=np.uint8, tile=(1024, 1024), compression="zlib")
    stack = io.BytesIO()  # 200 pages of 512x512x3: each small, 157 million values together
    tifffile.imwrite(stack, (tile[:512, :512] for _ in range(200)), shape=(200, 512, 512, 3), dtype=np.uint8)

    def never(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(tifffile.TiffFile, "asarray", never)
    for name, data in (("huge.tif", buffer.getvalue()), ("stack.tif", stack.getvalue())):
        with pytest.raises(PipelineError, match=r"larger than the 40,000,000 pixels we decode"):
            read_slice(data, name)


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


def peak_memory_of_predict(inputs: Path, models: Path, work: Path) -> int:
    """The peak resident memory (KB, as the kernel counts it) of one predict run on a folder."""
    shutil.copy(ROOT / "params.yaml", work)
    args = stage_command("predict", str(inputs), "--out", "out", "--models", str(models), "--no-cascade")
    with (work / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(args, cwd=work, env=stage_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait for it
    assert process.returncode == 0, (work / "stderr.txt").read_text()[-2000:]
    return usage.ru_maxrss


def test_predict_memory_stays_bounded_whatever_the_number_and_size_of_the_inputs(untrained_models, tmp_path):
    """Scans of 6300x6300 (40 MP, 119 MB decoded as RGB): predict's peak resident memory with five of
    them is that with one, give or take less than one decoded scan, and under 2 GB; masks and
    overlays are written for every one at its own size."""
    scan = np.zeros((6300, 6300), np.uint8)
    scan[800:5500, 1000:5300] = 120
    peaks = {}
    for count in (1, 5):
        folder, work = tmp_path / f"{count}-scans", tmp_path / f"work-{count}"
        folder.mkdir()
        work.mkdir()
        Image.fromarray(scan).save(folder / "scan-00.png", compress_level=1)
        for number in range(1, count):
            shutil.copy(folder / "scan-00.png", folder / f"scan-{number:02}.png")
        peaks[count] = peak_memory_of_predict(folder, untrained_models, work)
    one_scan_decoded = 6300 * 6300 * 3 // 1024
    grew = f"peak {peaks[1] // 1024} MB with one scan, {peaks[5] // 1024} MB with five"
    assert peaks[5] - peaks[1] < one_scan_decoded, grew
    assert peaks[5] < 2 * 1024 * 1024, f"peak {peaks[5] / 1024:.0f} MB"
    table = pd.read_csv(tmp_path / "work-5/out/predictions.csv")
    assert (table["status"] == "ok").sum() == 5 and table["mask"].nunique() == 5
    assert Image.open(tmp_path / "work-5/out" / table["overlay"][0]).size == (6300, 6300)


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


def contents(folder: Path) -> dict[Path, bytes]:
    """Every file under folder, by its path there, with its bytes: to compare a folder before and after."""
    return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, megabytes: int) -> Iterator[Path]:
    """A real filesystem of `megabytes` at `folder` (root can mount one; elsewhere the test skips)."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], check=False)
    if mount.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (or CAP_SYS_ADMIN); the RLIMIT_FSIZE test above still runs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_really_full_filesystem_fails_crop_split_with_one_line_and_keeps_the_earlier_output(tiny_processed, tmp_path):
    """data/ on a 32 MB tmpfs holding the earlier processed data (21 MB) and a filler: the new arrays do
    not fit. Without space reserved up front, writing them through a memory map would die of SIGBUS."""
    work = copy_work(tiny_processed, tmp_path / "work")
    shutil.move(work / "data", tmp_path / "data-before")
    with mounted_tmpfs(work / "data", 32):
        (work / "data/raw").symlink_to(tmp_path / "data-before/raw")
        shutil.copytree(tmp_path / "data-before/processed", work / "data/processed")
        free = shutil.disk_usage(work / "data").free
        (work / "data/filler").write_bytes(b"\0" * (free - (4 << 20)))  # 4 MB left
        before = contents(work / "data/processed")
        result = run_stage(work, "crop_split")
        assert result.returncode == 1, f"exit {result.returncode}: {result.stderr[-1500:]}"
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "no space" in last and "Traceback" not in result.stderr, last
        after = contents(work / "data/processed")
        assert after == before, "earlier output intact"
        assert not list((work / "data").glob(".processed.partial-*")), "no half-written output left"


def test_a_read_only_data_folder_fails_the_stage_with_one_line(tiny_processed, tmp_path):
    work = copy_work(tiny_processed, tmp_path / "work")
    shutil.move(work / "data", tmp_path / "data-before")
    with mounted_tmpfs(work / "data", 64):
        shutil.copytree(tmp_path / "data-before/raw", work / "data/raw")
        subprocess.run(["mount", "-o", "remount,ro", str(work / "data")], check=True)
        result = run_stage(work, "crop_split")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write or read") and "Read-only file system" in last, last


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


def test_a_link_out_of_a_local_source_folder_is_refused_and_copies_nothing(tiny_processed, tmp_path):
    """A symbolic link in the user's dataset folder that leads elsewhere (here to a private file)
    would copy that file into data/raw; download refuses the folder and keeps the earlier raw data."""
    mine = shutil.copytree(tiny_processed / "data/raw/classification", tmp_path / "mine")
    segmentation = shutil.copytree(tiny_processed / "data/raw/segmentation", tmp_path / "segmentation")
    private = tmp_path / "private.jpg"
    shutil.copy(next((mine / "yes").iterdir()), private)
    (mine / "yes" / "linked.jpg").symlink_to(private)
    local = {"download": {"source": "local", "classification": str(mine), "segmentation": str(segmentation)}}
    work = copy_work(tiny_processed, tmp_path / "work", local)
    before = sorted(p.relative_to(work) for p in (work / "data/raw").rglob("*"))
    result = run_stage(work, "download")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "linked.jpg is a symbolic link" in line and "outside the source" in line
    assert sorted(p.relative_to(work) for p in (work / "data/raw").rglob("*")) == before


def noise_jpegs(count: int) -> dict[str, bytes]:
    """`count` small JPEGs of noise (they do not compress: damage lands in image data), half tumour, half not."""
    rng = np.random.default_rng(0)
    images = {}
    for number in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(buffer, "JPEG")
        images[f"{'yes' if number % 2 else 'no'}/{number:02}.jpg"] = buffer.getvalue()
    return images


def damaged(data: bytes, start: int, count: int = 64) -> bytes:
    """`data` with `count` bytes from `start` inverted."""
    return data[:start] + bytes(b ^ 0xFF for b in data[start : start + count]) + data[start + count :]


@pytest.mark.parametrize("kind", ["tar.gz", "tar", "zip"])
def test_a_damaged_archive_fails_the_download_with_one_line_and_keeps_the_earlier_raw_data(
    tiny_processed, tmp_path, kind
):
    """64 inverted bytes in a 40-image archive: in the middle of a zip (a bad CRC or a corrupt deflate
    stream) or a tar.gz (a corrupt compressed stream), on the 21st header of a plain tar (after which
    tarfile would quietly list nothing more; a plain tar has no checksum of its files' data)."""
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, data in noise_jpegs(40).items():
                bundle.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz" if kind == "tar.gz" else "w") as bundle:
            for name, data in noise_jpegs(40).items():
                member = tarfile.TarInfo(name)
                member.size = len(data)
                bundle.addfile(member, io.BytesIO(data))
    archive = tmp_path / f"brain.{kind}"
    if kind == "tar":
        with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as bundle:
            start = bundle.getmembers()[20].offset
    else:
        start = len(buffer.getvalue()) // 2
    archive.write_bytes(damaged(buffer.getvalue(), start))
    segmentation = shutil.copytree(tiny_processed / "data/raw/segmentation", tmp_path / "segmentation")
    local = {"download": {"source": "local", "classification": str(archive), "segmentation": str(segmentation)}}
    work = copy_work(tiny_processed, tmp_path / "work", local)
    before = contents(work / "data/raw")
    result = run_stage(work, "download")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "damaged" in line and "download or copy it again" in line, line
    assert contents(work / "data/raw") == before


@pytest.mark.parametrize(
    ("stage", "change"),
    [
        ("train_unet", {"train_unet": {"encoder_weights": "imagenet"}}),
        ("train_classifier", {"train_classifier": {"weights": "imagenet", "batch_norm": False}}),
    ],
)
def test_imagenet_weights_without_network_say_where_to_put_the_file(tiny_processed, tmp_path, stage, change):
    """Offline (every download goes to a proxy that is not there), with an empty Keras cache."""
    work = copy_work(tiny_processed, tmp_path / "work", change)
    closed = f"http://127.0.0.1:{free_port()}"
    offline = stage_env(HTTPS_PROXY=closed, HTTP_PROXY=closed, https_proxy=closed, KERAS_HOME=str(tmp_path / "keras"))
    result = run_stage(work, stage, env=offline)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "cannot load the 'imagenet' weights" in last, last
    assert str(tmp_path / "keras" / "models") in last and "null" in last
    assert not (work / "models").exists() or not list((work / "models").iterdir())


@pytest.mark.parametrize(
    "tf_config",
    [
        "{not json",
        '{"cluster": {}}',
        '{"cluster": {"worker": ["a:1"]}, "task": {}}',
        "[1]",
        '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "0"}}',
        '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
    ],
)
def test_a_malformed_tf_config_is_one_line_saying_what_it_should_hold(monkeypatch, tf_config):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    for reads_it in (lambda: choose_strategy("multi_worker"), is_chief):  # the strategy, and who logs and saves
        with pytest.raises(PipelineError, match=r"TF_CONFIG is not a cluster description; set it to JSON like"):
            reads_it()


def test_a_damaged_model_file_or_the_wrong_model_is_one_clear_error(untrained_models, tmp_path):
    real = (untrained_models / "unet.keras").read_bytes()
    for name, content in (("garbage", b"not a model at all"), ("truncated", real[: len(real) // 2])):
        (tmp_path / f"{name}.keras").write_bytes(content)
        with pytest.raises(PipelineError, match="is not a Keras model file"):
            load_model(tmp_path / f"{name}.keras", "unet")
    with pytest.raises(PipelineError, match=r"not found; run `dvc repro`"):
        load_model(tmp_path / "missing.keras", "unet")
    with pytest.raises(PipelineError, match=r"holds a classifier \(output \(None, 1\)\), not the unet"):
        load_model(untrained_models / "classifier.keras", "unet")
    with pytest.raises(PipelineError, match=r"holds a unet .*, not the classifier"):
        load_model(untrained_models / "unet.keras", "classifier")
