"""Several sources of one dataset merged into one raw folder, the same image or patient in two refused."""

from pathlib import Path

import pytest

from brain_mri.common.errors import PipelineError
from brain_mri.data.layouts import list_classification_images, list_segmentation_slices
from brain_mri.data.merge import merge_classification, merge_segmentation

HEADER = "Patient,RNASeqCluster,death01\n"


def kaggle_3m(root: Path, patients: dict[str, int], readme: str = "the dataset's README") -> Path:
    """root/kaggle_3m with `slices` made-up slice and mask files for each patient folder, and data.csv."""
    folder = root / "kaggle_3m"
    for name, slices in patients.items():
        (folder / name).mkdir(parents=True)
        for number in range(1, slices + 1):
            (folder / name / f"{name}_{number}.tif").write_bytes(f"{name} slice {number}".encode())
            (folder / name / f"{name}_{number}_mask.tif").write_bytes(f"{name} mask {number}".encode())
    rows = "".join(f"{name.rsplit('_', 1)[0]},2,0\n" for name in patients)
    (folder / "data.csv").write_text(HEADER + rows)
    (folder / "README.md").write_text(readme)
    return root


def test_two_segmentation_sources_become_one_dataset_with_one_data_csv(tmp_path):
    first = kaggle_3m(tmp_path / "a", {"TCGA_CS_4941_19960909": 2, "TCGA_DU_5849_19950405": 3})
    second = kaggle_3m(tmp_path / "b", {"TCGA_HT_7680_19970202": 1}, readme="another README")
    merged = tmp_path / "raw" / "kaggle_3m"
    summary = merge_segmentation([("sample.zip", first), ("more.zip", second)], merged)
    assert summary == [
        {"location": "sample.zip", "patients": 2, "slices": 5},
        {"location": "more.zip", "patients": 1, "slices": 1},
    ]
    slices, rejected = list_segmentation_slices(merged)
    assert sorted(slices["patient"].unique()) == ["TCGA_CS_4941", "TCGA_DU_5849", "TCGA_HT_7680"]
    assert len(slices) == 6 and rejected.empty
    assert (merged / "data.csv").read_text() == HEADER + "TCGA_CS_4941,2,0\nTCGA_DU_5849,2,0\nTCGA_HT_7680,2,0\n"
    assert (merged / "README.md").read_text() == "the dataset's README", "the first source's"


def test_the_same_patient_in_two_segmentation_sources_is_refused_naming_both(tmp_path):
    first = kaggle_3m(tmp_path / "a", {"TCGA_CS_4941_19960909": 2})
    second = kaggle_3m(tmp_path / "b", {"TCGA_CS_4941_19960909": 2})
    with pytest.raises(PipelineError) as refused:
        merge_segmentation([("sample.zip", first), ("copy/of/sample.zip", second)], tmp_path / "raw")
    message = str(refused.value)
    assert "patient TCGA_CS_4941 is in two segmentation sources" in message
    assert "in sample.zip" in message and "in copy/of/sample.zip" in message and "\n" not in message


def test_data_csv_with_other_columns_is_refused(tmp_path):
    first = kaggle_3m(tmp_path / "a", {"TCGA_CS_4941_19960909": 1})
    second = kaggle_3m(tmp_path / "b", {"TCGA_HT_7680_19970202": 1})
    (second / "kaggle_3m/data.csv").write_text("Patient,other\nTCGA_HT_7680,1\n")
    with pytest.raises(PipelineError, match="data.csv in b.zip has other columns than in a.zip"):
        merge_segmentation([("a.zip", first), ("b.zip", second)], tmp_path / "raw")


def classification_source(root: Path, images: dict[str, bytes]) -> Path:
    for name, content in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_two_classification_sources_merge_and_a_sources_own_second_copy_is_kept_once(tmp_path):
    first = classification_source(
        tmp_path / "a",
        {
            "brain_tumor_dataset/yes/Y1.jpg": b"tumour 1",
            "brain_tumor_dataset/no/N1.jpg": b"healthy 1",
            "yes/Y1.jpg": b"tumour 1",  # the Kaggle archive carries its images twice
            "brain_tumor_dataset/no/N1 copy.jpg": b"healthy 1",  # a copy under another name: crop_split's
            "no/.DS_Store": b"finder",
        },
    )
    second = classification_source(tmp_path / "b", {"yes/Y1.jpg": b"tumour 2", "no/N2.jpg": b"healthy 2"})
    merged = tmp_path / "raw"
    summary = merge_classification([("a.zip", first), ("b", second)], merged)
    assert summary == [{"location": "a.zip", "images": 3}, {"location": "b", "images": 2}]
    images = list_classification_images(merged)
    names = sorted(Path(p).name for p in images["path"])
    assert names == ["N1 copy.jpg", "N1.jpg", "N2.jpg", "Y1-2.jpg", "Y1.jpg"], "a name another source took: numbered"
    assert (merged / "yes/Y1-2.jpg").read_bytes() == b"tumour 2"


def test_the_same_image_in_two_classification_sources_is_refused_naming_both(tmp_path):
    first = classification_source(tmp_path / "a", {"yes/Y1.jpg": b"tumour 1", "no/N1.jpg": b"healthy 1"})
    second = classification_source(tmp_path / "b", {"yes/Y9.jpg": b"tumour 9", "no/renamed.jpg": b"healthy 1"})
    with pytest.raises(PipelineError) as refused:
        merge_classification([("a.zip", first), ("b.zip", second)], tmp_path / "raw")
    assert str(refused.value) == (
        "the same image is in two classification sources: no/N1.jpg in a.zip and no/renamed.jpg in b.zip; "
        "remove it from one of them"
    )
