"""A patient's slices as one volume: the U-Net's masks of one kaggle_3m patient post-processed together.

An LGG patient has one tumour, so only the largest 3D connected component of the patient's predicted
volume is kept (Buda et al.'s post-processing): specks elsewhere in the head go. Chosen on the validation
patients of the 59-patient split (docs/lab-notebook.md); `evaluate.largest_component` turns it on.
"""

from collections import defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from brain_mri.data.layouts import SLICE_NAME

# (volume, slice number): the inputs of one volume are one patient's slices, stacked in slice order
SlicePosition = tuple[Hashable, int]
FULL_3D = ndimage.generate_binary_structure(3, 3)  # 26-connected: touching by a corner is one component


def slice_position(path: Path) -> SlicePosition | None:
    """A kaggle_3m slice's (patient folder, slice number): a file `<patient>_<k>.tif` in a folder `<patient>`,
    as kaggle_3m lays them out (data.layouts); any other file (`scans/IMG_0001.tif`) has no place: None."""
    match = SLICE_NAME.match(path.name)
    if not match or match["mask"] or match["folder"] != path.parent.name:
        return None
    return str(path.parent), int(match["slice"])


def largest_component(volume: np.ndarray) -> np.ndarray:
    """A boolean volume with only its largest 26-connected component left."""
    labels, count = ndimage.label(volume, structure=FULL_3D)
    if count < 2:
        return volume
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def volume_groups(positions: Sequence[SlicePosition | None]) -> list[list[int]]:
    """Indices grouped by volume, each group in slice order, in order of first appearance; an input
    without a position is a group of its own."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, position in enumerate(positions):
        groups[("volume", position[0]) if position is not None else ("alone", index)].append(index)

    def slice_number(index: int) -> int:
        position = positions[index]
        return position[1] if position is not None else 0

    return [sorted(indices, key=slice_number) for indices in groups.values()]


def volume_order(positions: Sequence[SlicePosition | None]) -> list[int]:
    """The order to predict inputs in: each volume's slices together, in slice order, at the place of the
    volume's first input; inputs without a position keep their places among them."""
    return [index for group in volume_groups(positions) for index in group]


def keep_largest_components(masks: list[np.ndarray], positions: Sequence[SlicePosition | None]) -> list[np.ndarray]:
    """Each volume's masks (0/255) cut to the volume's largest 3D component; masks without a position stay.

    kaggle_3m's slices are all 256x256; should a patient's slices differ in size, those of each size are
    a volume of their own.
    """
    kept = list(masks)
    by_size = [
        ((position[0], masks[index].shape), position[1]) if position is not None else None
        for index, position in enumerate(positions)
    ]
    for indices in volume_groups(by_size):
        if positions[indices[0]] is None:
            continue
        volume = largest_component(np.stack([masks[i] > 0 for i in indices]))
        for i, mask in zip(indices, volume, strict=True):
            kept[i] = np.where(mask, 255, 0).astype(np.uint8)
    return kept
