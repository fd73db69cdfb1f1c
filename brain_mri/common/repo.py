"""Facts about the repository a stage runs in."""

import os
import subprocess
from pathlib import Path


def repo_root() -> Path:
    """The real repository root, also for `dvc exp run --temp/--queue`, which run in a copy.

    DVC sets DVC_ROOT to the real root; without DVC the stage runs from the root itself.
    """
    return Path(os.environ.get("DVC_ROOT", ".")).resolve()


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_commit() -> str:
    return _git("rev-parse", "HEAD") or "unknown"


# the code a stage runs: dvc.yaml's deps of every training stage (tests/test_layout.py checks them)
CODE = ("stages", "brain_mri")


def code_commit() -> str:
    """The newest commit that changed the pipeline's code, `+modified` when the working tree changes it.

    Not HEAD: committing dvc.lock after a repro moves HEAD, and a model file that named HEAD would
    differ from the one dvc.lock hashes at every rerun, though the code that trained it is the same.
    """
    commit = _git("log", "-1", "--format=%H", "--", *CODE)
    if not commit:
        return "unknown"
    return commit + ("+modified" if _git("status", "--porcelain", "--", *CODE) else "")


def resolve_user_path(location: str) -> Path:
    """A path from params.yaml: relative paths are relative to the repository root."""
    path = Path(location).expanduser()
    return path if path.is_absolute() else repo_root() / path
