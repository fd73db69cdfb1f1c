"""The two upstream layouts, found wherever they sit in a folder, and listed as tables.

Classification ("Brain MRI Images for Brain Tumor Detection"): folders `yes/` and `no/` of
images, possibly under an extra top folder, possibly twice (the Kaggle archive carries
`brain_tumor_dataset/yes` and also a top-level `yes`).
Segmentation (LGG `kaggle_3m`): `<patient>/<patient>_<k>.tif` with `<patient>_<k>_mask.tif`.
"""

import re
from pathlib import Path

import pandas as pd

from brain_mri.common.errors import PipelineError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif"}
LABELS = {"yes": 1, "no": 0}
SLICE_NAME = re.compile(r"^(?P<folder>.+)_(?P<slice>\d+)(?P<mask>_mask)?\.tiff?$", re.IGNORECASE)


def is_hidden(path: Path, root: Path) -> bool:
    # macOS archives carry __MACOSX/ and ._name resource forks next to the real files
    return any(part.startswith((".", "__MACOSX")) for part in path.relative_to(root).parts)


def find_classification_folders(root: Path) -> dict[str, list[Path]]:
    """Every `yes`/`no` folder below root that holds files, by label."""
    found: dict[str, list[Path]] = {"yes": [], "no": []}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir() and not is_hidden(p, root)):
        label = folder.name.lower()
        if label in found and any(child.is_file() for child in folder.iterdir()):
            found[label].append(folder)
    if not found["yes"] or not found["no"]:
        missing = " and ".join(label + "/" for label, folders in found.items() if not folders)
        raise PipelineError(
            f"{root}: no {missing} folder of images found; the classification data must be in the "
            "upstream layout (yes/ and no/ folders of images)"
        )
    return found


def list_classification_images(root: Path) -> pd.DataFrame:
    """A table of (path, label) for every file in the yes/no folders below root."""
    rows = []
    for label, folders in find_classification_folders(root).items():
        for folder in folders:
            for path in sorted(folder.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    rows.append({"path": str(path), "label": LABELS[label]})
    return pd.DataFrame(rows, columns=["path", "label"])


def find_kaggle_3m(root: Path) -> Path:
    """The folder whose subfolders are patients with `<patient>_<k>.tif` slices."""
    candidates = [
        root,
        *sorted(p for p in root.rglob("*") if p.is_dir() and not is_hidden(p, root)),
    ]
    for folder in candidates:
        for patient in sorted(p for p in folder.iterdir() if p.is_dir()):
            if any(SLICE_NAME.match(f.name) for f in patient.iterdir()):
                return folder
    raise PipelineError(
        f"{root}: no kaggle_3m layout found (patient folders of <patient>_<k>.tif slices with "
        "_mask.tif masks); point download.segmentation at the LGG dataset"
    )


def list_segmentation_slices(kaggle_3m: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(slices, rejected): one row per slice with its mask, and the files that cannot be used.

    Patient ids are folder names without the date, as in data.csv (`TCGA_CS_4941`).
    """
    rows, rejected = [], []
    for folder in sorted(p for p in kaggle_3m.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images, masks = {}, {}
        for path in folder.iterdir():
            match = SLICE_NAME.match(path.name)
            if not match or match["folder"] != folder.name:
                continue
            (masks if match["mask"] else images)[int(match["slice"])] = path
        if not images:
            rejected.append({"path": str(folder), "reason": "patient folder has no slices"})
            continue
        patient = folder.name.rsplit("_", 1)[0]
        for number in sorted(images):
            if number not in masks:
                rejected.append({"path": str(images[number]), "reason": "slice has no mask"})
                continue
            rows.append(
                {
                    "patient": patient,
                    "slice": number,
                    "image_path": str(images[number]),
                    "mask_path": str(masks[number]),
                }
            )
        for number in sorted(set(masks) - set(images)):
            rejected.append({"path": str(masks[number]), "reason": "mask has no slice"})
    slices = pd.DataFrame(rows, columns=["patient", "slice", "image_path", "mask_path"])
    if slices.empty:
        raise PipelineError(f"{kaggle_3m}: no slice with a mask found; check the segmentation data")
    return slices, pd.DataFrame(rejected, columns=["path", "reason"])
