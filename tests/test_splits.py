import numpy as np
import pandas as pd
import pytest

from brain_mri.data.splits import patient_wise_split, stratified_split


def slices_of(patients: dict[str, list[int]]) -> pd.DataFrame:
    rows = [
        {"patient": patient, "slice": k + 1, "tumour_pixels": pixels}
        for patient, per_slice in patients.items()
        for k, pixels in enumerate(per_slice)
    ]
    return pd.DataFrame(rows)


def test_stratified_split_keeps_class_proportions_in_every_split():
    labels = [1] * 150 + [0] * 100
    splits = stratified_split(labels, (0.75, 0.2, 0.05), seed=0)
    frame = pd.DataFrame({"label": labels, "split": splits})
    counts = frame.groupby(["split", "label"]).size().unstack()
    assert counts.loc["train"].tolist() == [75, 112] or counts.loc["train"].tolist() == [75, 113]
    assert counts.loc["test"].tolist() == [5, 8] or counts.loc["test"].tolist() == [
        5,
        7,
    ]
    assert (counts > 0).all().all()


def test_stratified_split_is_identical_for_a_seed_and_differs_for_another():
    labels = [0, 1] * 50
    first = stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
    assert (first == stratified_split(labels, (0.6, 0.2, 0.2), seed=3)).all()
    assert (first != stratified_split(labels, (0.6, 0.2, 0.2), seed=4)).any()


def test_every_split_gets_an_item_of_a_stratum_large_enough():
    splits = stratified_split([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], (0.9, 0.05, 0.05), seed=0)
    ones = splits[:3]
    assert sorted(ones) == ["test", "train", "val"]


def test_split_never_puts_one_patient_in_two_splits():
    rng = np.random.default_rng(0)
    patients = {f"P{i:02d}": list(rng.integers(0, 2, 20) * 100) for i in range(15)}
    slices = slices_of(patients).sample(frac=1, random_state=1)  # any listing order
    split = patient_wise_split(slices, (0.6, 0.2, 0.2), seed=5)
    per_patient = split.groupby(slices["patient"]).nunique()
    assert (per_patient == 1).all()
    assert set(split) == {"train", "val", "test"}


def test_patient_split_does_not_depend_on_listing_order():
    patients = {f"P{i}": [0, 50 * (i % 3)] for i in range(9)}
    slices = slices_of(patients)
    shuffled = slices.sample(frac=1, random_state=2)
    a = patient_wise_split(slices, (0.6, 0.2, 0.2), 1).groupby(slices["patient"]).first()
    b = patient_wise_split(shuffled, (0.6, 0.2, 0.2), 1).groupby(shuffled["patient"]).first()
    assert a.to_dict() == b.to_dict()


def test_each_split_has_patients_with_tumour():
    patients = {f"T{i}": [0, 10] for i in range(6)} | {f"H{i}": [0, 0] for i in range(6)}
    slices = slices_of(patients)
    split = patient_wise_split(slices, (0.6, 0.2, 0.2), seed=0)
    with_tumour = slices.assign(split=split)[slices["tumour_pixels"] > 0]
    assert set(with_tumour["split"]) == {"train", "val", "test"}


@pytest.mark.parametrize("n", [3, 7, 20])
def test_every_item_gets_exactly_one_split(n):
    splits = stratified_split([0] * n, (0.7, 0.15, 0.15), seed=0)
    assert len(splits) == n and set(splits) <= {"train", "val", "test"}


def test_patients_are_spread_over_the_tcga_sites_in_every_split():
    sizes = {"CS": 9, "DU": 24, "FG": 8, "HT": 18}  # the 59 real patients in ../shared, by site
    patients = {f"TCGA_{site}_{i:04d}": [0, 10] for site, n in sizes.items() for i in range(n)}
    slices = slices_of(patients)
    split = patient_wise_split(slices, (0.6, 0.2, 0.2), seed=3).groupby(slices["patient"]).first()
    counts = pd.crosstab(split.index.str.split("_").str[1], split)
    assert counts.sum().to_dict() == {"test": 12, "train": 35, "val": 12}
    assert (counts[["val", "test"]] >= 1).all().all(), counts
    assert (abs(counts["test"] - pd.Series(sizes) * 0.2) < 1).all(), "each site's share, to within one patient"
