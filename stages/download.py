"""Stage download: the two raw datasets into data/raw/, in their upstream layouts.

data/raw/classification/{yes,no}/*        (Brain MRI Images for Brain Tumor Detection)
data/raw/segmentation/kaggle_3m/<patient>/ (LGG segmentation, with data.csv)

Each dataset may come from several sources (a list in params); they are merged into one.
"""

import tempfile
from pathlib import Path

from brain_mri.common.errors import run_stage
from brain_mri.common.outputs import atomic_dir, write_json
from brain_mri.common.params import load_params
from brain_mri.data.inventory import folder_inventory
from brain_mri.data.merge import merge_classification, merge_segmentation
from brain_mri.data.processed import SOURCE
from brain_mri.data.sources import fetch_each
from brain_mri.data.synthetic import write_classification_dataset, write_segmentation_dataset

RAW = Path("data/raw")
METRICS = Path("metrics/download/raw_inventory.json")


def main() -> None:
    params = load_params()
    download = params.download
    with atomic_dir(RAW) as raw:
        sources: dict[str, list[dict]] = {"classification": [], "segmentation": []}
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
            with tempfile.TemporaryDirectory(prefix=".download-", dir="data") as scratch:
                sources = {
                    "classification": merge_classification(
                        fetch_each(download, "classification", Path(scratch)), raw / "classification"
                    ),
                    "segmentation": merge_segmentation(
                        fetch_each(download, "segmentation", Path(scratch)), raw / "segmentation" / "kaggle_3m"
                    ),
                }
        inventory = {name: {**folder_inventory(raw / name), "sources": sources[name]} for name in sources}
        write_json(METRICS, {"source": download.source, **inventory})
        # where each dataset came from, carried through crop_split into the models
        locations = {name: [source["location"] for source in sources[name]] for name in sources}
        write_json(raw / SOURCE, {"source": download.source, **locations})
    print(f"download: {download.source} -> {RAW} {inventory}")


if __name__ == "__main__":
    run_stage(main)
