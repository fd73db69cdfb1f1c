"""Stage download: the two raw datasets into data/raw/, in their upstream layouts.

data/raw/classification/{yes,no}/*        (Brain MRI Images for Brain Tumor Detection)
data/raw/segmentation/kaggle_3m/<patient>/ (LGG segmentation, with data.csv)
"""

import hashlib
import shutil
import tempfile
from pathlib import Path

from stages.errors import PipelineError, run_stage
from stages.inventory import folder_inventory
from stages.layouts import find_classification_folders, find_kaggle_3m
from stages.outputs import atomic_dir, write_json
from stages.params import Download, load_params
from stages.repo import repo_root, resolve_user_path
from stages.sources import (
    copy_files,
    download_kaggle,
    download_url,
    is_archive,
    safe_extract,
)
from stages.synthetic import write_classification_dataset, write_segmentation_dataset

RAW = Path("data/raw")
# Downloads are kept (and resumed from) outside the stage's output, at the real root.
DOWNLOADS = ".downloads"
METRICS = Path("metrics/download/raw_inventory.json")


def fetch(params: Download, location: str, checksum: str | None, scratch: Path) -> Path:
    """A local folder holding the dataset named by `location`, fetched and extracted as needed."""
    if params.source == "local":
        path = resolve_user_path(location)
        if not path.exists():
            raise PipelineError(
                f"download.{params.source}: {path} does not exist; point it at the dataset folder or archive"
            )
        if path.is_dir():
            return path
        if not is_archive(path):
            raise PipelineError(f"{path}: not a folder or a .zip/.tar/.tar.gz archive")
        archive = path
    elif params.source == "url":
        name = Path(location.split("?")[0]).name or "download"
        key = hashlib.sha1(location.encode()).hexdigest()[:12]
        archive = download_url(location, repo_root() / DOWNLOADS / f"{key}-{name}", checksum)
    else:
        archive = download_kaggle(location, repo_root() / DOWNLOADS / "kaggle" / location.replace("/", "__"))
    extracted = scratch / "extracted"
    safe_extract(archive, extracted, params.limits.max_files, params.limits.max_bytes)
    return extracted


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
