"""Facts about the repository a stage runs in."""

import os
import subprocess
from pathlib import Path


def repo_root() -> Path:
    """The real repository root, also for `dvc exp run --temp/--queue`, which run in a copy.

    DVC sets DVC_ROOT to the real root; without DVC the stage runs from the root itself.
    """
    return Path(os.environ.get("DVC_ROOT", ".")).resolve()


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip()


def resolve_user_path(location: str) -> Path:
    """A path from params.yaml: relative paths are relative to the repository root."""
    path = Path(location).expanduser()
    return path if path.is_absolute() else repo_root() / path
