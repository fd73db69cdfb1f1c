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


def stratified_split(
    strata: Sequence[Hashable], fractions: Sequence[float], seed: int, spread_by: Sequence[Hashable] | None = None
) -> np.ndarray:
    """Assign each item a split name; every stratum is divided by the fractions.

    Within a stratum the items are ordered by `spread_by` (randomly among equals) and dealt out so
    that every stretch of that order holds the splits in proportion: each split gets items of every
    `spread_by` group large enough, and small groups still land in the splits by turns.
    """
    strata = list(strata)
    spread = list(spread_by) if spread_by is not None else [""] * len(strata)
    assignment = np.empty(len(strata), dtype=object)
    rng = np.random.default_rng(seed)
    for stratum in sorted(set(strata), key=str):
        members = np.array([i for i, s in enumerate(strata) if s == stratum])
        members = members[rng.permutation(len(members))]
        members = sorted(members, key=lambda i: str(spread[i]))  # stable: random within a group
        counts = _allocate(len(members), fractions)
        dealt = [0] * len(counts)
        for position, item in enumerate(members, start=1):
            # the split furthest behind its share of the items dealt so far (ties: the earlier split)
            behind = [count * position / len(members) - given for count, given in zip(counts, dealt, strict=True)]
            chosen = int(np.argmax(behind))
            assignment[item] = SPLITS[chosen]
            dealt[chosen] += 1
    return assignment


def site_of(patient: str) -> str:
    """The tissue source site in a TCGA patient id (TCGA_CS_4941: CS); empty for other ids."""
    parts = patient.split("_")
    return parts[1] if len(parts) >= 3 and parts[0] == "TCGA" else ""


def patient_wise_split(slices: pd.DataFrame, fractions: Sequence[float], seed: int) -> pd.Series:
    """The split of each slice, chosen per patient: stratified by whether the patient has tumour, and
    spread over the TCGA sites (the hospitals; their scanners and protocols differ).

    `slices` needs columns `patient` and `tumour_pixels`. Patients are sorted first, so the
    split depends only on the patients and the seed, not on the order files were listed in.
    """
    has_tumour = slices.groupby("patient")["tumour_pixels"].max().gt(0).sort_index()
    sites = [site_of(patient) for patient in has_tumour.index]
    split_of_patient = dict(
        zip(has_tumour.index, stratified_split(has_tumour.tolist(), fractions, seed, spread_by=sites), strict=True)
    )
    return slices["patient"].map(split_of_patient)
