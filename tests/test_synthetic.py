import hashlib
import re

import numpy as np
import pandas as pd
import tifffile
from PIL import Image

from brain_mri.data.layouts import (
    find_kaggle_3m,
    list_classification_images,
    list_segmentation_slices,
)
from brain_mri.data.synthetic import write_classification_dataset, write_segmentation_dataset


def tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_classification_set_has_the_upstream_layout_and_its_variety(tmp_path):
    write_classification_dataset(tmp_path, n_images=40, seed=0)
    images = list_classification_images(tmp_path)
    assert len(images) == 40
    assert set(images["label"]) == {0, 1}
    assert (images["label"] == 1).sum() == round(40 * 155 / 253)
    names = [p.split("/")[-1] for p in images["path"]]
    assert any(" " in name for name in names), "the real set has names with spaces"
    suffixes = {name.rsplit(".", 1)[1] for name in names}
    assert {"jpg", "JPG"} <= suffixes
    modes, sizes = set(), set()
    for path in images["path"]:
        with Image.open(path) as picture:
            modes.add(picture.mode)
            sizes.add(picture.size)
    assert len(modes) >= 2 and len(sizes) > 10


def test_classification_images_have_a_black_border_around_the_head(tmp_path):
    write_classification_dataset(tmp_path, n_images=10, seed=1)
    for path in list_classification_images(tmp_path)["path"]:
        gray = np.asarray(Image.open(path).convert("L"))
        assert gray[:3].max() < 40 and gray[:, :3].max() < 40
        assert gray.max() > 150


def test_segmentation_set_has_the_kaggle_3m_layout(tmp_path):
    write_segmentation_dataset(tmp_path, n_patients=4, slices_per_patient=12, seed=0)
    kaggle_3m = find_kaggle_3m(tmp_path)
    assert kaggle_3m == tmp_path / "kaggle_3m"
    slices, rejected = list_segmentation_slices(kaggle_3m)
    assert rejected.empty
    for patient, group in slices.groupby("patient"):
        assert re.fullmatch(r"TCGA_[A-Z]{2}_\d{4}", patient)
        assert sorted(group["slice"]) == list(range(1, len(group) + 1)), "slices run 1..N with no gaps"
    assert any(path.endswith("_10.tif") for path in slices["image_path"]), "slice numbers are not zero-padded"
    image = tifffile.imread(slices["image_path"][0])
    mask = tifffile.imread(slices["mask_path"][0])
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert mask.shape == (256, 256) and mask.dtype == np.uint8
    data = pd.read_csv(kaggle_3m / "data.csv")
    assert set(data["Patient"]) == set(slices["patient"])


def test_about_a_third_of_slices_hold_a_brighter_flair_tumour(tmp_path):
    write_segmentation_dataset(tmp_path, n_patients=6, slices_per_patient=16, seed=3)
    slices, _ = list_segmentation_slices(tmp_path / "kaggle_3m")
    fractions, contrasts = [], []
    for image_path, mask_path in zip(slices["image_path"], slices["mask_path"], strict=True):
        mask = tifffile.imread(mask_path)
        assert set(np.unique(mask)) <= {0, 255}
        fractions.append(mask.any())
        if mask.any():
            flair = tifffile.imread(image_path)[..., 1].astype(float)
            ring = (flair > 60) & (mask == 0)
            contrasts.append(flair[mask > 0].mean() - flair[ring].mean())
    assert 0.2 < np.mean(fractions) < 0.45
    assert min(contrasts) > 30


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_classification_dataset(tmp_path / name, n_images=10, seed=seed)
        write_segmentation_dataset(tmp_path / name, n_patients=3, slices_per_patient=6, seed=seed)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")
