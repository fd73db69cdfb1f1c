"""Several sources of one dataset into one raw folder: images (patients) merged, duplicates refused.

A source is a location as the user named it (shown in messages and in the raw inventory) and the
local folder it was fetched into. An image or a patient found in two sources would be counted
twice and could land in two splits, so it stops the download with both places named. Within one
source, the second copy that the Kaggle classification archive carries (the same file, the same
name, another folder) is kept once, as before; a copy under another name is kept, and crop_split
lists it as a second copy of one image.
"""

import csv
import io
import shutil
from collections.abc import Iterable
from pathlib import Path

from brain_mri.common.errors import PipelineError
from brain_mri.data.layouts import SLICE_NAME, find_classification_folders, find_kaggle_3m, is_hidden
from brain_mri.data.sources import sha256_of

Source = tuple[str, Path]  # (location as given in params, the local folder holding it)
PATIENT_TABLE = "data.csv"


def merge_classification(sources: Iterable[Source], destination: Path) -> list[dict]:
    """The yes/no images of every source into destination/{yes,no}; one summary row per source."""
    first_seen: dict[str, tuple[int, str, str]] = {}  # content hash -> (source number, location, file inside it)
    summary = []
    for number, (location, root) in enumerate(sources):
        images = 0
        for label, folders in find_classification_folders(root).items():
            files = (f for folder in folders for f in sorted(folder.iterdir()) if f.is_file())
            for path in (f for f in files if not f.name.startswith(".")):  # .DS_Store, ._name forks
                inside = path.relative_to(root).as_posix()
                where = first_seen.setdefault(sha256_of(path), (number, location, inside))
                if where[0] != number:
                    raise PipelineError(
                        f"the same image is in two classification sources: {where[2]} in {where[1]} and "
                        f"{inside} in {location}; remove it from one of them"
                    )
                # the Kaggle archive's second copy of its images (the same file under the same name
                # elsewhere) is kept once; a copy under another name is crop_split's to list
                if where[2] == inside or Path(where[2]).name != path.name:
                    _copy_new_name(path, destination / label)
                    images += 1
        summary.append({"location": location, "images": images})
    return summary


def _copy_new_name(path: Path, folder: Path) -> None:
    """Copy path into folder under its own name, or with -2, -3, ... before the suffix if that is taken."""
    folder.mkdir(parents=True, exist_ok=True)
    target, number = folder / path.name, 1
    while target.exists():
        number += 1
        target = folder / f"{path.stem}-{number}{path.suffix}"
    shutil.copy2(path, target)


def merge_segmentation(sources: Iterable[Source], destination: Path) -> list[dict]:
    """The kaggle_3m patient folders of every source into destination, their data.csv rows in one
    data.csv; other top-level files (README.md) from the first source that has them. One summary
    row per source."""
    destination.mkdir(parents=True, exist_ok=True)
    first_seen: dict[str, tuple[int, str, str]] = {}  # patient id -> (source number, location, its folder)
    tables: list[tuple[str, str]] = []  # (location, data.csv text)
    summary = []
    for number, (location, root) in enumerate(sources):
        kaggle_3m = find_kaggle_3m(root)
        patients = slices = 0
        for entry in sorted(p for p in kaggle_3m.iterdir() if not is_hidden(p, kaggle_3m)):
            if entry.is_dir():
                patient = entry.name.rsplit("_", 1)[0]  # the folder name without its date, as in data.csv
                where = first_seen.setdefault(patient, (number, location, entry.name))
                if where[0] != number:
                    raise PipelineError(
                        f"patient {patient} is in two segmentation sources: {where[2]} in {where[1]} and "
                        f"{entry.name} in {location}; remove it from one of them"
                    )
                shutil.copytree(entry, destination / entry.name)
                patients += 1
                slices += sum(1 for f in entry.iterdir() if (m := SLICE_NAME.match(f.name)) and not m["mask"])
            elif entry.name == PATIENT_TABLE:
                tables.append((location, entry.read_text()))
            elif not (destination / entry.name).exists():
                shutil.copy2(entry, destination / entry.name)
        summary.append({"location": location, "patients": patients, "slices": slices})
    if tables:
        (destination / PATIENT_TABLE).write_text(merged_tables(tables))
    return summary


def merged_tables(tables: list[tuple[str, str]]) -> str:
    """The rows of several data.csv texts under the first one's header; the first text is kept as it is."""
    merged, header = tables[0][1], _header(tables[0][1])
    for location, text in tables[1:]:
        if _header(text) != header:
            raise PipelineError(
                f"{PATIENT_TABLE} in {location} has other columns than in {tables[0][0]}; "
                "the sources must be parts of one dataset"
            )
        rows = text.split("\n", 1)[1] if "\n" in text else ""
        merged = merged if merged.endswith("\n") else merged + "\n"
        merged += rows
    return merged


def _header(text: str) -> list[str]:
    return next(csv.reader(io.StringIO(text)), [])
