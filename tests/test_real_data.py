"""On the real archives in ../shared/datasets: layouts, crop, leak-free splits, the whole pipeline."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from brain_mri.data.images import crop_to_brain, decode_image
from brain_mri.data.layouts import find_kaggle_3m, list_classification_images, list_segmentation_slices
from brain_mri.data.sources import safe_extract
from brain_mri.data.splits import patient_wise_split
from tests.helpers import (
    CLASSIFICATION_ARCHIVE,
    MORE_PATIENTS_ARCHIVE,
    SEGMENTATION_ARCHIVE,
    dvc,
    needs_real_data,
    project_copy,
    run_stage,
    stages_run,
    write_params,
)

pytestmark = needs_real_data
LIMITS = {"max_files": 10_000, "max_bytes": 2 * 10**9}
# both real LGG archives as one dataset: 24 + 35 patients
BOTH_LGG_ARCHIVES = {
    "source": "local",
    "classification": str(CLASSIFICATION_ARCHIVE),
    "segmentation": [str(SEGMENTATION_ARCHIVE), str(MORE_PATIENTS_ARCHIVE)],
}


@pytest.fixture(scope="module")
def lgg_slices(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lgg")
    safe_extract(SEGMENTATION_ARCHIVE, folder, **LIMITS)
    slices, rejected = list_segmentation_slices(find_kaggle_3m(folder))
    slices["tumour_pixels"] = [int(np.count_nonzero(tifffile.imread(p))) for p in slices["mask_path"]]
    return slices, rejected


def test_the_lgg_sample_lists_24_patients_and_834_slices_with_masks(lgg_slices):
    slices, rejected = lgg_slices
    assert slices["patient"].nunique() == 24 and len(slices) == 834 and rejected.empty
    assert (slices["tumour_pixels"] > 0).sum() == 284
    data = pd.read_csv(Path(slices["image_path"][0]).parents[1] / "data.csv")
    assert set(slices["patient"]) <= set(data["Patient"])


def test_real_patient_split_never_puts_one_patient_in_two_splits(lgg_slices):
    slices, _ = lgg_slices
    split = patient_wise_split(slices, (0.6, 0.2, 0.2), seed=42)
    assert (split.groupby(slices["patient"]).nunique() == 1).all()
    assert set(split) == {"train", "val", "test"}
    with_tumour = split[slices["tumour_pixels"] > 0]
    assert set(with_tumour) == {"train", "val", "test"}, "every split has patients with tumour"


def test_real_patient_split_is_identical_for_the_same_seed(lgg_slices):
    slices, _ = lgg_slices
    first = patient_wise_split(slices, (0.6, 0.2, 0.2), seed=7)
    again = patient_wise_split(slices.sample(frac=1, random_state=0), (0.6, 0.2, 0.2), seed=7)
    assert first.equals(again.sort_index())
    assert not first.equals(patient_wise_split(slices, (0.6, 0.2, 0.2), seed=8))


def test_every_real_classification_image_decodes_and_crops(tmp_path):
    safe_extract(CLASSIFICATION_ARCHIVE, tmp_path, **LIMITS)
    images = list_classification_images(tmp_path)
    assert len(images) == 253 and (images["label"] == 1).sum() == 155
    for path in images["path"]:
        image = decode_image(Path(path).read_bytes(), path)
        cropped = crop_to_brain(image)
        assert cropped.ndim == 3 and min(cropped.shape[:2]) >= 32, path


@pytest.mark.slow
def test_dvc_repro_merges_both_lgg_archives_runs_every_stage_and_refuses_a_patient_twice(tmp_path):
    params = {
        "download": BOTH_LGG_ARCHIVES,
        # that it runs through, not what it learns: one epoch, in few large batches
        "train_classifier": {"epochs": 1, "batch_size": 32},
        "train_unet": {"epochs": 1, "image_size": 32, "batch_size": 32},
    }
    repo = project_copy(tmp_path / "repo", params)
    output = dvc(repo, "repro").stdout
    assert stages_run(output) == ["download", "crop_split", "train_classifier", "train_unet", "evaluate"]

    # download: both archives' patients as one dataset, each source in the inventory
    kaggle_3m = repo / "data/raw/segmentation/kaggle_3m"
    slices, rejected = list_segmentation_slices(kaggle_3m)
    assert slices["patient"].nunique() == 59 and len(slices) == 2105 and rejected.empty
    data = pd.read_csv(kaggle_3m / "data.csv")
    assert len(data) == 59 and set(data["Patient"]) == set(slices["patient"]), "both archives' rows, once"
    inventory = json.loads((repo / "metrics/download/raw_inventory.json").read_text())
    assert inventory["segmentation"]["sources"] == [
        {"location": str(SEGMENTATION_ARCHIVE), "patients": 24, "slices": 834},
        {"location": str(MORE_PATIENTS_ARCHIVE), "patients": 35, "slices": 1271},
    ]
    assert inventory["classification"]["sources"] == [{"location": str(CLASSIFICATION_ARCHIVE), "images": 253}]
    assert (
        inventory["classification"]["files"] == 253 and inventory["segmentation"]["files"] == 2105 * 2 + 2
    )  # slices, masks, the merged data.csv, README.md

    # crop_split and evaluate: every patient and image used or listed
    report = json.loads((repo / "metrics/crop_split/data_report.json").read_text())
    patients = sum(report["segmentation"][split]["patients"] for split in ("train", "val", "test"))
    images = sum(report["classification"][split]["images"] for split in ("train", "val", "test"))
    assert patients == 59
    assert images + report["rejected_files"] == 253, "every real image is used or listed as rejected"
    segmentation = json.loads((repo / "metrics/evaluate/segmentation.json").read_text())
    assert segmentation["test_patients"] == report["segmentation"]["test"]["patients"]

    # models trained on the real data: predict names it in its table, and does not warn
    scan = next(kaggle_3m.glob("*/*_12.tif"))
    predicted = run_stage(repo, "predict", str(scan), "--out", str(tmp_path / "predicted"))
    assert predicted.returncode == 0 and "warning:" not in predicted.stderr, predicted.stderr[-2000:]
    table = pd.read_csv(tmp_path / "predicted/predictions.csv")
    lgg = f"local: {SEGMENTATION_ARCHIVE.name}, {MORE_PATIENTS_ARCHIVE.name}"
    assert table["model_training_data"].tolist() == [f"classifier: local: {CLASSIFICATION_ARCHIVE.name}; unet: {lgg}"]
    assert segmentation["training_data"]["trained_on"] == lgg

    # the sample's patients again, under another name: refused, and the raw data stays
    copy = tmp_path / "copy-of-the-sample.zip"
    copy.symlink_to(SEGMENTATION_ARCHIVE)
    twice = [str(SEGMENTATION_ARCHIVE), str(MORE_PATIENTS_ARCHIVE), str(copy)]
    write_params(repo, params, {"download": {"segmentation": twice}})
    refused = run_stage(repo, "download")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert "is in two segmentation sources" in last and str(SEGMENTATION_ARCHIVE) in last and str(copy) in last, last
    assert len(list_segmentation_slices(kaggle_3m)[0]) == 2105, "the earlier raw data is left as it was"
    assert not list((repo / "data").glob(".download-*")), "no scratch folder is left"
