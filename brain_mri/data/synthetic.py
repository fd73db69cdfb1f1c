"""The embedded dataset: both public datasets' layouts and file formats, generated from a seed.

No machine of ours reaches Kaggle, so `download.source: synthetic` writes look-alikes of
- "Brain MRI Images for Brain Tumor Detection": `yes/` and `no/` folders of mixed JPEG/PNG
  images of many sizes and colour modes, names with spaces, a black border around the head;
- LGG `kaggle_3m`: one folder per patient of 256x256x3 uint8 TIFF slices (pre-contrast, FLAIR,
  post-contrast) with 0/255 masks, slice numbers 1..N not zero-padded, and `data.csv`.
A tumour is an irregular region brighter than the brain around it (in FLAIR for the slices),
so a model can learn it; healthy images and slices have none.
"""

from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from brain_mri.data.processed import SLICE_SIZE

# (extension, PIL mode) of the classification images, roughly in the real set's proportions
FILE_KINDS = (
    [(".jpg", "RGB")] * 12 + [(".JPG", "RGB")] * 5 + [(".jpg", "L"), (".jpeg", "RGB"), (".png", "RGBA"), (".png", "P")]
)
INSTITUTIONS = ("CS", "DU", "EZ", "FG", "HT", "DU")


def _blob(
    shape: tuple[int, int],
    center: tuple[float, float],
    radius: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A filled, irregular (lobed) region as a boolean mask."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width]
    angle = np.arctan2(yy - center[0], xx - center[1])
    lobes = 1.0 + sum(rng.uniform(0.08, 0.22) * np.sin(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    distance = np.hypot(yy - center[0], xx - center[1])
    return distance <= radius * lobes


def _head(shape: tuple[int, int], rng: np.random.Generator, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A grey head on black: (image float32 0..1, brain mask). The border stays black."""
    height, width = shape
    center = (
        height / 2 + rng.uniform(-0.04, 0.04) * height,
        width / 2 + rng.uniform(-0.04, 0.04) * width,
    )
    axes = (
        0.36 * height * scale * rng.uniform(0.9, 1.05),
        0.30 * width * scale * rng.uniform(0.9, 1.05),
    )
    yy, xx = np.mgrid[0:height, 0:width]
    radius = np.hypot((yy - center[0]) / axes[0], (xx - center[1]) / axes[1])
    skull = radius <= 1.0
    brain = radius <= 0.88
    texture = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), sigmaX=max(1.0, width / 60))
    image = np.zeros(shape, np.float32)
    image[skull] = 0.75  # bright skull rim
    image[brain] = 0.38 + 0.07 * texture[brain]
    return np.clip(image, 0, 1), brain


def _tumour_in(brain: np.ndarray, rng: np.random.Generator, radius_fraction: float) -> np.ndarray:
    ys, xs = np.nonzero(brain)
    pick = rng.integers(len(ys))
    center = (float(ys[pick]), float(xs[pick]))
    radius = radius_fraction * np.sqrt(brain.sum() / np.pi)
    return _blob(brain.shape, center, radius, rng) & brain


def classification_image(tumour: bool, rng: np.random.Generator) -> np.ndarray:
    """One grey head image (uint8 HxW) of a random size, with a bright tumour when asked."""
    height, width = int(rng.integers(180, 420)), int(rng.integers(170, 400))
    image, brain = _head((height, width), rng)
    if tumour:
        region = _tumour_in(brain, rng, rng.uniform(0.18, 0.35))
        image[region] = np.clip(image[region] + 0.4, 0, 1)
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    noise = rng.normal(0, 0.02, image.shape)
    return (np.clip(image + noise, 0, 1) * 255).astype(np.uint8)


def _save_image(gray: np.ndarray, path: Path, mode: str) -> None:
    picture = Image.fromarray(gray, "L")
    if mode == "RGB":
        picture = picture.convert("RGB")
    elif mode == "RGBA":
        picture = picture.convert("RGBA")
    elif mode == "P":
        picture = picture.convert("P")
    kwargs = {"quality": 90} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    picture.save(path, **kwargs)


def write_classification_dataset(root: Path, n_images: int, seed: int) -> None:
    """Write `root/yes/*` and `root/no/*` like the Kaggle set (about 61% tumour)."""
    rng = np.random.default_rng([seed, 1])
    n_yes = round(n_images * 155 / 253)
    for label, count in (("yes", n_yes), ("no", n_images - n_yes)):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(1, count + 1):
            extension, mode = FILE_KINDS[int(rng.integers(len(FILE_KINDS)))]
            # both naming styles of the real set: "Y12.jpg" / "N3.JPG" and "no 7.jpg"
            stem = f"{label} {index}" if index % 3 == 0 else f"{label[0].upper()}{index}"
            gray = classification_image(label == "yes", rng)
            _save_image(gray, folder / f"{stem}{extension}", mode)


def patient_volume(n_slices: int, with_tumour: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One patient's slices (N, 256, 256, 3) uint8 and masks (N, 256, 256) uint8 0/255."""
    shape = (SLICE_SIZE, SLICE_SIZE)
    # about a third of the slices, in one run in the middle of the volume, hold tumour
    tumour_slices: set[int] = set()
    if with_tumour:
        length = max(2, round(n_slices * rng.uniform(0.3, 0.45)))
        start = int(rng.integers(n_slices // 5, max(n_slices // 5 + 1, n_slices - length - n_slices // 6)))
        tumour_slices = set(range(start, min(n_slices, start + length)))
    center = None
    slices = np.zeros((n_slices, *shape, 3), np.uint8)
    masks = np.zeros((n_slices, *shape), np.uint8)
    for k in range(n_slices):
        # the head is smaller at the top and bottom of the volume
        scale = 0.55 + 0.45 * np.sin(np.pi * (k + 1) / (n_slices + 1))
        base, brain = _head(shape, rng, scale)
        flair = base.copy()
        post = base * 0.9
        if k in tumour_slices:
            if center is None:
                ys, xs = np.nonzero(brain)
                pick = rng.integers(len(ys))
                center = (float(ys[pick]), float(xs[pick]))
            middle = (min(tumour_slices) + max(tumour_slices)) / 2
            radius = 28 * (1.0 - 0.6 * abs(k - middle) / (len(tumour_slices) / 2 + 1))
            region = _blob(shape, center, radius, rng) & brain
            flair[region] = np.clip(flair[region] + 0.35, 0, 1)
            post[region] = np.clip(post[region] + 0.12, 0, 1)
            masks[k][region] = 255
        channels = [base, flair, post]
        for c, channel in enumerate(channels):
            noisy = cv2.GaussianBlur(channel, (0, 0), 0.8) + rng.normal(0, 0.015, shape)
            slices[k, :, :, c] = (np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    return slices, masks


def patient_folder_name(index: int, rng: np.random.Generator) -> str:
    institution = INSTITUTIONS[index % len(INSTITUTIONS)]
    year, month, day = (
        int(rng.integers(1995, 2002)),
        int(rng.integers(1, 13)),
        int(rng.integers(1, 29)),
    )
    return f"TCGA_{institution}_{7000 + 37 * index:04d}_{year}{month:02d}{day:02d}"


def write_segmentation_dataset(root: Path, n_patients: int, slices_per_patient: int, seed: int) -> None:
    """Write `root/kaggle_3m/<patient>/<patient>_<k>[_mask].tif` and `data.csv` like LGG."""
    rng = np.random.default_rng([seed, 2])
    kaggle_3m = root / "kaggle_3m"
    kaggle_3m.mkdir(parents=True, exist_ok=True)
    rows = ["Patient,histological_type,neoplasm_histologic_grade,gender,age_at_initial_pathologic,death01"]
    for index in range(n_patients):
        folder = patient_folder_name(index, rng)
        n_slices = slices_per_patient + int(rng.integers(0, 5))
        # every LGG patient has a tumour somewhere; one in six here has none, for healthy volumes
        with_tumour = index % 6 != 5
        slices, masks = patient_volume(n_slices, with_tumour, rng)
        (kaggle_3m / folder).mkdir(exist_ok=True)
        for k in range(n_slices):
            tifffile.imwrite(kaggle_3m / folder / f"{folder}_{k + 1}.tif", slices[k])
            tifffile.imwrite(kaggle_3m / folder / f"{folder}_{k + 1}_mask.tif", masks[k])
        patient_id = folder.rsplit("_", 1)[0]
        rows.append(f"{patient_id},{1 + index % 3},{2 + index % 2},{1 + index % 2},{35 + index},{index % 2}")
    (kaggle_3m / "data.csv").write_text("\n".join(rows) + "\n")
