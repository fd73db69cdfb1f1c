"""crop_split as a stage: bad files are skipped and listed, duplicates counted once."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from brain_mri.data.synthetic import write_classification_dataset, write_segmentation_dataset
from tests.helpers import ROOT, run_stage


def tiff_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """A raw folder with one of each kind of bad file, through crop_split."""
    work = tmp_path_factory.mktemp("crop_split")
    shutil.copy(ROOT / "params.yaml", work / "params.yaml")
    raw = work / "data" / "raw"
    write_classification_dataset(raw / "classification", n_images=30, seed=0)
    write_segmentation_dataset(raw / "segmentation", n_patients=6, slices_per_patient=8, seed=0)
    yes, no = raw / "classification" / "yes", raw / "classification" / "no"
    original = sorted(yes.iterdir())[0]
    shutil.copy(original, yes / f"copy of {original.name}")  # the same bytes under another name
    (no / "empty.jpg").write_bytes(b"")
    (no / "truncated.jpg").write_bytes(sorted(no.iterdir())[0].read_bytes()[:300])
    patients = sorted(p for p in (raw / "segmentation" / "kaggle_3m").iterdir() if p.is_dir())
    first, second = patients[0], patients[1]
    (first / f"{first.name}_1_mask.tif").unlink()  # a slice without its mask
    (first / f"{first.name}_2_mask.tif").write_bytes(tiff_bytes(np.zeros((128, 128), np.uint8)))  # wrong shape
    (second / f"{second.name}_3_mask.tif").write_bytes(tiff_bytes(np.full((256, 256), 7, np.uint8)))  # not 0/255
    (second / f"{second.name}_4.tif").write_bytes(tiff_bytes(np.zeros((256, 256, 3), np.uint16)))  # 16-bit slice
    (raw / "segmentation" / "kaggle_3m" / "TCGA_XX_0000_20000101").mkdir()  # a patient with no slices
    result = run_stage(work, "crop_split")
    assert result.returncode == 0, result.stderr[-2000:]
    return work


def test_every_bad_file_is_listed_with_its_reason(processed):
    rejected = pd.read_csv(processed / "data/processed/rejected.csv")
    reasons = dict(zip(rejected["path"].map(lambda p: Path(p).name), rejected["reason"], strict=True))
    assert "empty file" in reasons["empty.jpg"]
    assert "not a readable image" in reasons["truncated.jpg"]
    assert any(name.startswith("copy of ") and "duplicate of" in reason for name, reason in reasons.items())
    assert any(name.endswith("_1.tif") and reason == "slice has no mask" for name, reason in reasons.items())
    assert any("mask is (128, 128)" in reason for reason in reasons.values())
    assert any("only 0 and 255" in reason for reason in reasons.values())
    assert any("uint16" in reason for reason in reasons.values())
    assert reasons["TCGA_XX_0000_20000101"] == "patient folder has no slices"


def test_the_rejected_count_is_a_tracked_metric(processed):
    report = json.loads((processed / "metrics/crop_split/data_report.json").read_text())
    rejected = pd.read_csv(processed / "data/processed/rejected.csv")
    assert report["rejected_files"] == len(rejected) == 8


def test_a_duplicate_image_is_counted_once(processed):
    manifest = pd.read_csv(processed / "data/processed/classification/manifest.csv")
    assert len(manifest) == 30  # 30 generated; the copy, the empty and the truncated file are left out
    assert manifest["source"].map(lambda p: Path(p).name).str.startswith("copy of ").sum() == 0


def test_arrays_and_manifests_agree(processed):
    out = processed / "data/processed"
    images = np.load(out / "classification/images.npy", mmap_mode="r")
    slices = np.load(out / "segmentation/slices.npy", mmap_mode="r")
    masks = np.load(out / "segmentation/masks.npy", mmap_mode="r")
    images_manifest = pd.read_csv(out / "classification/manifest.csv")
    slices_manifest = pd.read_csv(out / "segmentation/manifest.csv")
    assert images.shape[0] == len(images_manifest) and slices.shape[0] == masks.shape[0] == len(slices_manifest)
    row = slices_manifest.iloc[-1]
    assert (masks[row["row"]] > 0).sum() == row["tumour_pixels"]
    assert np.array_equal(slices[row["row"]], tifffile.imread(processed / row["image_path"]))


def test_no_patient_lands_in_two_splits(processed):
    manifest = pd.read_csv(processed / "data/processed/segmentation/manifest.csv")
    assert (manifest.groupby("patient")["split"].nunique() == 1).all()


def test_one_class_missing_is_a_clear_error_and_leaves_no_output(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    raw = tmp_path / "data" / "raw"
    write_classification_dataset(raw / "classification", n_images=10, seed=0)
    write_segmentation_dataset(raw / "segmentation", n_patients=3, slices_per_patient=6, seed=0)
    shutil.rmtree(raw / "classification" / "no")
    result = run_stage(tmp_path, "crop_split")
    assert result.returncode == 1
    assert "no no/ folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "processed").exists()


def test_download_with_a_missing_local_path_names_it(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["download"].update(source="local", classification="nowhere/cls.zip", segmentation="nowhere/seg.zip")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage(tmp_path, "download")
    assert result.returncode == 1
    assert "nowhere/cls.zip does not exist" in result.stderr
    assert not (tmp_path / "data" / "raw").exists()
