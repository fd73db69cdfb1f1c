"""Seeded, stratified train/val/test splits; segmentation is split by patient, never by slice."""

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from brain_mri.data.processed import SPLITS


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split n items into counts by fractions (largest remainder), each split non-empty when n allows."""
    exact = [n * f for f in fractions]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(fractions):
        for i, count in enumerate(counts):
            if count == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
    return counts


def stratified_split(strata: Sequence[Hashable], fractions: Sequence[float], seed: int) -> np.ndarray:
    """Assign each item a split name; every stratum is shuffled and divided by the fractions."""
    strata = list(strata)
    assignment = np.empty(len(strata), dtype=object)
    rng = np.random.default_rng(seed)
    for stratum in sorted(set(strata), key=str):
        members = np.array([i for i, s in enumerate(strata) if s == stratum])
        members = members[rng.permutation(len(members))]
        start = 0
        for name, count in zip(SPLITS, _allocate(len(members), fractions), strict=True):
            assignment[members[start : start + count]] = name
            start += count
    return assignment


def patient_wise_split(slices: pd.DataFrame, fractions: Sequence[float], seed: int) -> pd.Series:
    """The split of each slice, chosen per patient and stratified by whether the patient has tumour.

    `slices` needs columns `patient` and `tumour_pixels`. Patients are sorted first, so the
    split depends only on the patients and the seed, not on the order files were listed in.
    """
    has_tumour = slices.groupby("patient")["tumour_pixels"].max().gt(0).sort_index()
    split_of_patient = dict(
        zip(
            has_tumour.index,
            stratified_split(has_tumour.tolist(), fractions, seed),
            strict=True,
        )
    )
    return slices["patient"].map(split_of_patient)
