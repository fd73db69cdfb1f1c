"""What a folder of raw data holds: file count, bytes and a content hash, for `dvc metrics diff`."""

import hashlib
from pathlib import Path

from brain_mri.data.sources import sha256_of


def folder_inventory(root: Path) -> dict[str, int]:
    """Files, bytes and a content hash (of relative names and file hashes) of a folder.

    The hash is kept to 52 bits so it is a number that `dvc metrics diff` compares exactly.
    """
    digest = hashlib.sha256()
    files = total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_of(path).encode())
        files += 1
        total += path.stat().st_size
    return {
        "files": files,
        "bytes": total,
        "content_hash": int(digest.hexdigest()[:13], 16),
    }
