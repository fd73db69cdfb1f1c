"""Stage download: the two raw datasets into data/raw/, in their upstream layouts.

data/raw/classification/{yes,no}/*        (Brain MRI Images for Brain Tumor Detection)
data/raw/segmentation/kaggle_3m/<patient>/ (LGG segmentation, with data.csv)
"""

import shutil
import tempfile
from pathlib import Path

from brain_mri.common.errors import run_stage
from brain_mri.common.outputs import atomic_dir, write_json
from brain_mri.common.params import load_params
from brain_mri.data.inventory import folder_inventory
from brain_mri.data.layouts import find_classification_folders, find_kaggle_3m
from brain_mri.data.sources import copy_files, fetch
from brain_mri.data.synthetic import write_classification_dataset, write_segmentation_dataset

RAW = Path("data/raw")
METRICS = Path("metrics/download/raw_inventory.json")


def main() -> None:
    params = load_params()
    download = params.download
    with atomic_dir(RAW) as raw:
        if download.source == "synthetic":
            size = download.synthetic
            write_classification_dataset(raw / "classification", size.classification_images, params.base.seed)
            write_segmentation_dataset(
                raw / "segmentation",
                size.segmentation_patients,
                size.slices_per_patient,
                params.base.seed,
            )
        else:
            scratch_root = Path("data")
            with tempfile.TemporaryDirectory(prefix=".download-", dir=scratch_root) as scratch:
                root = fetch(
                    download,
                    download.classification,
                    download.sha256.classification,
                    Path(scratch) / "c",
                )
                for label, folders in find_classification_folders(root).items():
                    copy_files(
                        [f for folder in folders for f in sorted(folder.iterdir()) if f.is_file()],
                        raw / "classification" / label,
                    )
                root = fetch(
                    download,
                    download.segmentation,
                    download.sha256.segmentation,
                    Path(scratch) / "s",
                )
                shutil.copytree(find_kaggle_3m(root), raw / "segmentation" / "kaggle_3m")
        inventory = {name: folder_inventory(raw / name) for name in ("classification", "segmentation")}
        write_json(METRICS, {"source": download.source, **inventory})
    print(f"download: {download.source} -> {RAW} {inventory}")


if __name__ == "__main__":
    run_stage(main)
