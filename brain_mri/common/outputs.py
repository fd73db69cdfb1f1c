"""Writing outputs so that a crash never leaves a half-written one: temporary name, then rename."""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

# read once: os.umask can only be read by setting it, which would race with other threads
UMASK = os.umask(0o022)
os.umask(UMASK)


def _as_if_created(path: Path, mode: int) -> None:
    """Give a temporary file (0600) or folder (0700) the mode a plain create would: mode less the umask."""
    path.chmod(mode & ~UMASK)


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; on success it replaces `final`.

    Leftovers of a run that was killed before it could clean up are removed first, so a
    rerun starts clean and never mistakes a half-written folder for a complete one.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    _as_if_created(partial, 0o777)
    try:
        yield partial
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
    finally:
        if partial.exists():
            shutil.rmtree(partial)


@contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success it replaces `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix, dir=final.parent)
    os.close(handle)
    partial = Path(name)
    _as_if_created(partial, 0o666)
    try:
        yield partial
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)


def write_json(path: Path, data: dict) -> None:
    with atomic_file(path) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_file(path) as partial:
        frame.to_csv(partial, index=False)


def write_png(path: Path, picture: Figure | np.ndarray) -> None:
    """A matplotlib figure (then freed) or a uint8 image array, as a PNG."""
    with atomic_file(path) as partial:
        if isinstance(picture, Figure):
            picture.savefig(partial, dpi=90, format="png")
        else:
            Image.fromarray(picture).save(partial, format="PNG")
    if isinstance(picture, Figure):
        plt.close(picture)
