"""The U-Net's input pipeline: augmentation moves slice and mask together, repeats under a seed,
and can stand FLAIR in for a missing sequence the way kaggle_3m stores one."""

import albumentations as A
import numpy as np
import pytest

from brain_mri.data.processed import FLAIR, POST_CONTRAST, PRE_CONTRAST
from brain_mri.training.pipelines import MissingSequenceAsFlair, segmentation_dataset

SIZE = 48


def slices_with_tumours(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Slices of noise, three different channels, with a bright square where the mask is."""
    rng = np.random.default_rng(seed)
    slices = rng.integers(0, 100, (n, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        top, left = rng.integers(4, SIZE - 20, 2)
        masks[i, top : top + 16, left : left + 16] = 255
    slices[masks > 0] = 230
    return slices, masks


def first_epoch(seed: int, missing_sequence_p: float = 0.0, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    slices, masks = slices_with_tumours(n)
    dataset = segmentation_dataset(
        slices, masks, np.arange(n), SIZE, 4, seed, augment=True, missing_sequence_p=missing_sequence_p
    )
    images, truths = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(images), np.concatenate(truths)


def test_the_same_seed_gives_the_same_augmented_epoch_and_another_seed_another():
    images, truths = first_epoch(seed=3)
    again_images, again_truths = first_epoch(seed=3)
    other_images, _ = first_epoch(seed=4)
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(truths, again_truths)
    assert not np.array_equal(images, other_images)


def test_geometric_augmentation_moves_the_mask_with_the_slice():
    images, truths = first_epoch(seed=5)
    for image, truth in zip(images, truths, strict=True):
        bright, tumour = image.min(axis=-1) > 150, truth[..., 0] > 0.5
        overlap = (bright & tumour).sum() / (bright | tumour).sum()
        assert overlap > 0.8


def test_missing_sequence_transform_copies_flair_into_one_or_both_other_channels():
    image = slices_with_tumours(1)[0][0]
    transform = A.Compose([MissingSequenceAsFlair(p=1.0)])
    seen = set()
    for seed in range(30):
        transform.set_random_seed(seed)
        out = transform(image=image)["image"]
        np.testing.assert_array_equal(out[..., FLAIR], image[..., FLAIR])
        replaced = tuple(c for c in (PRE_CONTRAST, POST_CONTRAST) if np.array_equal(out[..., c], image[..., FLAIR]))
        kept = [c for c in (PRE_CONTRAST, POST_CONTRAST) if c not in replaced]
        for channel in kept:
            np.testing.assert_array_equal(out[..., channel], image[..., channel])
        seen.add(replaced)
    assert seen == {(PRE_CONTRAST,), (POST_CONTRAST,), (PRE_CONTRAST, POST_CONTRAST)}


@pytest.mark.parametrize("missing_sequence_p, slices_with_a_flair_copy", [(0.0, 0), (1.0, 12)])
def test_missing_sequence_p_is_the_share_of_training_slices_given_a_flair_copy(
    missing_sequence_p, slices_with_a_flair_copy
):
    images, _ = first_epoch(seed=7, missing_sequence_p=missing_sequence_p)
    flair = images[..., FLAIR]
    copies = [np.array_equal(image[..., c], f) for image, f in zip(images, flair, strict=True) for c in (0, 2)]
    assert sum(np.reshape(copies, (len(images), 2)).any(axis=1)) == slices_with_a_flair_copy
