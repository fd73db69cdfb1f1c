"""Where raw data comes from: a local folder or archive, a URL, or Kaggle; extracted safely.

Each source ends as a plain folder; `layouts` then finds the upstream layout inside it.
"""

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from brain_mri.common.errors import PipelineError, shown_location
from brain_mri.common.params import Download
from brain_mri.common.repo import repo_root, resolve_user_path

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
CHUNK = 1 << 20
# Downloads are kept (and resumed from) outside the stage's output, at the real root.
DOWNLOADS = ".downloads"


def fetch(params: Download, location: str, checksum: str | None, scratch: Path) -> Path:
    """A local folder holding the dataset named by `location`, fetched and extracted as needed."""
    if params.source == "local":
        path = resolve_user_path(location)
        if not path.exists():
            raise PipelineError(
                f"download.{params.source}: {path} does not exist; point it at the dataset folder or archive"
            )
        if path.is_dir():
            _refuse_links_out(path)
            return path
        if not is_archive(path):
            raise PipelineError(f"{path}: not a folder or a .zip/.tar/.tar.gz archive")
        archive = path
    elif params.source == "url":
        name = Path(location.split("?")[0]).name or "download"
        key = hashlib.sha1(location.encode(), usedforsecurity=False).hexdigest()[:12]
        archive = download_url(location, repo_root() / DOWNLOADS / f"{key}-{name}", checksum)
    else:
        archive = download_kaggle(location, repo_root() / DOWNLOADS / "kaggle" / location.replace("/", "__"))
    extracted = scratch / "extracted"
    safe_extract(archive, extracted, params.limits.max_files, params.limits.max_bytes)
    return extracted


def fetch_each(
    params: Download, dataset: Literal["classification", "segmentation"], scratch: Path
) -> Iterator[tuple[str, Path]]:
    """(location, local folder) for each source of the dataset, fetched one at a time; a source's
    extracted copy in scratch is removed once the next one is asked for."""
    for number, (location, checksum) in enumerate(params.locations(dataset)):
        folder = scratch / f"{dataset}-{number}"
        yield shown_location(location), fetch(params, location, checksum, folder)
        shutil.rmtree(folder, ignore_errors=True)


def _refuse_links_out(folder: Path) -> None:
    """A symbolic link in a source folder that leads outside it would copy outside files into data/raw."""
    root = folder.resolve()
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(parent) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise PipelineError(
                    f"{path} is a symbolic link to {path.resolve()}, outside the source folder {folder}; "
                    "copy the file into the folder or remove the link"
                )


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _inside(target: Path, name: str) -> Path:
    destination = (target / name).resolve()
    if name.startswith(("/", "\\")) or not destination.is_relative_to(target.resolve()):
        raise PipelineError(f"archive entry {name!r} would land outside the target folder; refusing the archive")
    return destination


def safe_extract(archive: Path, target: Path, max_files: int, max_bytes: int) -> None:
    """Extract a .zip/.tar/.tar.gz into target, refusing path traversal, links out and bombs."""
    target.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                members = bundle.infolist()
                _check_size(
                    archive,
                    len(members),
                    sum(m.file_size for m in members),
                    max_files,
                    max_bytes,
                )
                for member in members:
                    _inside(target, member.filename)
                    if (member.external_attr >> 16) & 0o170000 == 0o120000:
                        raise PipelineError(
                            f"archive entry {member.filename!r} is a symbolic link; refusing the archive"
                        )
                _refuse_twice(archive, [m.filename for m in members if not m.is_dir()])
                bundle.extractall(target)  # noqa: S202 (every member was checked above)
        else:
            with tarfile.open(archive) as bundle:
                members = bundle.getmembers()
                _check_complete(archive, bundle, members)
                _check_size(
                    archive,
                    len(members),
                    sum(m.size for m in members),
                    max_files,
                    max_bytes,
                )
                for member in members:
                    _inside(target, member.name)
                    # links are refused whole: chains of them defeat the "data" filter on Python before
                    # 3.11.13 / 3.12.11 / 3.13.4 (CVE-2025-4517), and the datasets hold only files and folders
                    if not (member.isfile() or member.isdir()):
                        raise PipelineError(
                            f"archive entry {member.name!r} is a {_tar_kind(member)}, not a file or folder; "
                            "refusing the archive (the datasets hold only files and folders)"
                        )
                _refuse_twice(archive, [m.name for m in members if not m.isdir()])
                # the "data" filter also drops setuid bits and other modes a data file does not need
                bundle.extractall(target, filter="data")  # noqa: S202 (every member was checked above)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise PipelineError(f"{archive}: damaged or not an archive ({error}); download or copy it again") from None


def _check_complete(archive: Path, bundle: tarfile.TarFile, members: list[tarfile.TarInfo]) -> None:
    """tarfile ends its listing quietly at a damaged header; what follows the last entry it read must
    be the end-of-archive padding (zeros), or the rest of the archive would be lost without a word.
    Reading it to the end also checks a compressed stream's own checksum."""
    bundle.fileobj.seek(bundle.offset)
    while chunk := bundle.fileobj.read(CHUNK):
        if chunk.count(0) != len(chunk):
            after = f"after entry {members[-1].name!r}" if members else "at its start"
            raise PipelineError(
                f"{archive}: damaged {after} ({len(members)} entries readable); download or copy it again"
            )


def _refuse_twice(archive: Path, names: list[str]) -> None:
    """A file listed twice would be extracted twice, the last copy quietly winning."""
    seen: set[str] = set()
    for name in names:
        normal = os.path.normpath(name)
        if normal in seen:
            raise PipelineError(
                f"{archive}: lists the file {name!r} twice; refusing the archive (which copy is meant?)"
            )
        seen.add(normal)


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    return "device or other special file"


def _check_size(archive: Path, files: int, size: int, max_files: int, max_bytes: int) -> None:
    if files > max_files or size > max_bytes:
        raise PipelineError(
            f"{archive}: unpacks to {files:,} files and {size:,} bytes, over the limits "
            f"({max_files:,} files, {max_bytes:,} bytes); raise download.limits if the archive is trusted"
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, destination: Path, sha256: str | None) -> Path:
    """HTTP(S) download with a progress bar, resumed from a `.part` file, verified, renamed."""
    import requests

    if not url.startswith(("http://", "https://")):
        raise PipelineError(f"download URL {shown_location(url)!r} must start with http:// or https://")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists() and (sha256_of(destination) == sha256.lower() if sha256 else _is_archive_data(destination)):
        return destination
    partial = destination.with_name(destination.name + ".part")
    done = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=60) as response:
            if not sha256 and response.url.lower().startswith("http://") and not url.lower().startswith("http://"):
                raise PipelineError(
                    f"{shown_location(url)} redirected to plain http://, where anyone on the way could change "
                    "the data; set download.sha256 to accept it"
                )
            if response.status_code == 416:  # the part file is already complete
                pass
            else:
                response.raise_for_status()
                if done and response.status_code != 206:  # server ignores Range: restart
                    done = 0
                total = int(response.headers.get("Content-Length", 0)) + done
                with (
                    partial.open("ab" if done else "wb") as handle,
                    tqdm(
                        total=total or None,
                        initial=done,
                        unit="B",
                        unit_scale=True,
                        desc=destination.name,
                    ) as progress,
                ):
                    for chunk in response.iter_content(CHUNK):
                        handle.write(chunk)
                        progress.update(len(chunk))
    except requests.RequestException as error:
        raise PipelineError(
            f"download of {shown_location(url)} failed ({type(error).__name__}); check the URL and network, "
            "then rerun to resume"
        ) from None
    if sha256 and sha256_of(partial) != sha256.lower():
        partial.unlink()
        raise PipelineError(
            f"{shown_location(url)}: SHA-256 does not match download.sha256; the file was removed, "
            "check the URL or the checksum"
        )
    if not sha256 and not _is_archive_data(partial):
        # without a checksum, at least never keep (and reuse forever) what is not an archive
        size = partial.stat().st_size
        partial.unlink()
        raise PipelineError(
            f"{shown_location(url)}: the server sent {size:,} bytes that are not a zip or tar archive (a login or "
            "error page?); check the URL, or set download.sha256"
        )
    partial.replace(destination)
    return destination


# the first bytes of the archives download reads: zip, gzip (.tar.gz), and tar's "ustar" at byte 257
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b")


def _is_archive_data(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(265)
    return head.startswith(ARCHIVE_MAGIC) or head[257:262] == b"ustar"


def kaggle_credentials_present() -> bool:
    in_env = bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
    in_files = _kaggle_json().is_file() or (_kaggle_json().parent / "access_token").is_file()
    return in_env or bool(os.environ.get("KAGGLE_API_TOKEN")) or in_files


def _kaggle_json() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"


def _check_kaggle_json() -> None:
    """The client answers a broken kaggle.json with its whole help text and an exit; say what is wrong
    instead (never what the file holds)."""
    path = _kaggle_json()
    if not path.is_file() or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")):
        return
    try:
        credentials = json.loads(path.read_text(encoding="utf-8"))
        valid = all(isinstance(credentials.get(key), str) and credentials[key] for key in ("username", "key"))
    except (ValueError, AttributeError):
        valid = False
    if not valid:
        raise PipelineError(
            f"{path} is not Kaggle credentials (JSON with a username and a key); download a new one from "
            "kaggle.com/settings (Create New Token) or set KAGGLE_USERNAME and KAGGLE_KEY"
        )


def download_kaggle(slug: str, folder: Path) -> Path:
    """Download a Kaggle dataset archive with the official client and its usual credentials."""
    if slug.count("/") != 1:
        raise PipelineError(
            f"Kaggle dataset {slug!r} must be an owner/name slug, e.g. mateuszbuda/lgg-mri-segmentation"
        )
    if not kaggle_credentials_present():
        raise PipelineError(
            "no Kaggle credentials: put kaggle.json in ~/.kaggle/ or set KAGGLE_USERNAME and KAGGLE_KEY "
            "(or KAGGLE_API_TOKEN), "
            "or download the archive yourself and use download.source: local"
        )
    _check_kaggle_json()
    from kaggle.api.kaggle_api_extended import KaggleApi

    folder.mkdir(parents=True, exist_ok=True)
    api = KaggleApi()
    try:
        # the client prints its help and exits when it rejects the credentials
        with contextlib.redirect_stdout(io.StringIO()):
            api.authenticate()
        api.dataset_download_files(slug, path=str(folder), unzip=False, quiet=False)
    except SystemExit:
        raise PipelineError(
            "the Kaggle client rejected the credentials; check kaggle.json or KAGGLE_USERNAME / KAGGLE_KEY"
        ) from None
    except Exception as error:  # the client raises its own and HTTP errors; never echo credentials
        raise PipelineError(
            f"Kaggle download of {slug} failed ({type(error).__name__}); check the slug and your access"
        ) from None
    archives = sorted(folder.glob("*.zip"))
    if not archives:
        raise PipelineError(f"Kaggle download of {slug} produced no archive; try again or use download.source: local")
    return archives[0]
