"""What predict reads: the inputs a user names, and a distinct output name for each."""

from brain_mri.inference.predict import expand_inputs, output_stems


def test_a_kaggle_3m_patient_folder_gives_its_slices_not_their_ground_truth_masks(tmp_path):
    patient = tmp_path / "TCGA_CS_4941_19960909"
    patient.mkdir()
    for name in ("TCGA_CS_4941_19960909_1.tif", "TCGA_CS_4941_19960909_1_mask.tif", "notes.txt", "scan.jpg"):
        (patient / name).write_bytes(b"x")
    assert [p.name for p in expand_inputs([tmp_path])] == ["TCGA_CS_4941_19960909_1.tif", "scan.jpg"]
    named = patient / "TCGA_CS_4941_19960909_1_mask.tif"
    assert expand_inputs([named]) == [named], "a file named on the command line is read as given"


def test_inputs_of_one_name_in_two_folders_get_distinct_outputs(tmp_path):
    assert output_stems([tmp_path / "a/scan.png", tmp_path / "b/scan.png", tmp_path / "scan.jpg"]) == [
        "scan",
        "scan-2",
        "scan-3",
    ]
