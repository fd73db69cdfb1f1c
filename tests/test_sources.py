"""Every download source, with the network replaced only where it cannot run here (Kaggle)."""

import hashlib
import importlib
import io
import sys
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from brain_mri.common.errors import PipelineError, redacted, shown_location
from brain_mri.data.layouts import find_classification_folders, find_kaggle_3m
from brain_mri.data.sources import download_kaggle, download_url, safe_extract

LIMITS = {"max_files": 1000, "max_bytes": 10**8}


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return path


def test_zip_entry_climbing_out_of_the_target_is_refused(tmp_path):
    archive = make_zip(tmp_path / "evil.zip", {"yes/a.jpg": b"x", "../escaped.txt": b"x"})
    with pytest.raises(PipelineError, match=r"'\.\./escaped\.txt' would land outside"):
        safe_extract(archive, tmp_path / "out", **LIMITS)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "yes" / "a.jpg").exists(), "nothing is extracted from a refused archive"


def test_absolute_tar_entries_are_refused(tmp_path):
    archive = tmp_path / "absolute.tar"
    with tarfile.open(archive, "w") as bundle:
        member = tarfile.TarInfo("/tmp/absolute.txt")
        member.size = 1
        bundle.addfile(member, io.BytesIO(b"x"))
    with pytest.raises(PipelineError, match="outside the target"):
        safe_extract(archive, tmp_path / "absolute", **LIMITS)


def chained_links_tar(path: Path, escape_to: str) -> Path:
    """A tar built like the CVE-2025-4517 proof of concept: symbolic links through folders with
    247-character names make the path longer than PATH_MAX, where the "data" filter's check of a
    link's target stops resolving, so a last link leads out of the target folder and a file entry
    written through it lands at `escape_to` (relative to the target folder)."""
    folder, steps, path_so_far = "d" * 247, "abcdefghijklmnop", ""
    with tarfile.open(path, "w") as bundle:
        for step in steps:
            entry = tarfile.TarInfo(str(Path(path_so_far, folder)))
            entry.type = tarfile.DIRTYPE
            bundle.addfile(entry)
            link = tarfile.TarInfo(str(Path(path_so_far, step)))
            link.type, link.linkname = tarfile.SYMTYPE, folder
            bundle.addfile(link)
            path_so_far = str(Path(path_so_far, folder))
        long_link = str(Path(*steps, "l" * 254))
        link = tarfile.TarInfo(long_link)
        link.type, link.linkname = tarfile.SYMTYPE, "../" * len(steps)
        bundle.addfile(link)
        escape = tarfile.TarInfo("escape")
        escape.type, escape.linkname = tarfile.SYMTYPE, f"{long_link}/{escape_to}"
        bundle.addfile(escape)
        written = tarfile.TarInfo("escape/written.txt")
        written.size = 7
        bundle.addfile(written, io.BytesIO(b"written"))
    return path


@pytest.mark.reliability
def test_a_tar_built_like_cve_2025_4517_writes_nothing_outside_and_is_refused(tmp_path):
    (tmp_path / "outside").mkdir()
    archive = chained_links_tar(tmp_path / "evil.tar", "../../outside")
    with pytest.raises(PipelineError, match="is a symbolic link, not a file or folder; refusing the archive"):
        safe_extract(archive, tmp_path / "box" / "target", **LIMITS)
    assert not (tmp_path / "outside" / "written.txt").exists()
    assert not any((tmp_path / "box" / "target").iterdir()), "nothing is extracted from a refused archive"


@pytest.mark.reliability
@pytest.mark.parametrize("kind", ["hard link", "symbolic link", "device or other special file"])
def test_tar_links_and_special_files_are_refused_even_when_they_stay_inside(tmp_path, kind):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as bundle:
        inside = tarfile.TarInfo("yes/a.jpg")
        inside.size = 1
        bundle.addfile(inside, io.BytesIO(b"x"))
        entry = tarfile.TarInfo("yes/b.jpg")
        entry.type, entry.linkname = {
            "hard link": (tarfile.LNKTYPE, "yes/a.jpg"),
            "symbolic link": (tarfile.SYMTYPE, "a.jpg"),
            "device or other special file": (tarfile.FIFOTYPE, ""),
        }[kind]
        bundle.addfile(entry)
    with pytest.raises(PipelineError, match=f"'yes/b.jpg' is a {kind}, not a file or folder"):
        safe_extract(archive, tmp_path / "out", **LIMITS)


def test_an_archive_over_the_limits_is_refused_before_extraction(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {f"f{i}": b"0" * 1000 for i in range(20)})
    with pytest.raises(PipelineError, match="over the limits"):
        safe_extract(archive, tmp_path / "out", max_files=10, max_bytes=10**6)
    with pytest.raises(PipelineError, match="over the limits"):
        safe_extract(archive, tmp_path / "out", max_files=100, max_bytes=5000)


def test_tar_gz_with_an_extra_top_folder_and_the_dataset_twice_is_found(tmp_path):
    source = tmp_path / "src" / "archive" / "brain_tumor_dataset"
    for top in (source, tmp_path / "src" / "archive"):
        for label in ("yes", "no"):
            (top / label).mkdir(parents=True, exist_ok=True)
            (top / label / f"{label} 1.jpg").write_bytes(b"same bytes")
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(tmp_path / "src" / "archive", arcname="archive")
    safe_extract(archive, tmp_path / "out", **LIMITS)
    found = find_classification_folders(tmp_path / "out")
    assert len(found["yes"]) == 2 and len(found["no"]) == 2


def test_a_folder_in_neither_layout_is_refused_with_what_was_expected(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"x")
    with pytest.raises(PipelineError, match="yes/ and no/"):
        find_classification_folders(tmp_path)
    with pytest.raises(PipelineError, match="kaggle_3m layout"):
        find_kaggle_3m(tmp_path)


class RangeHandler(SimpleHTTPRequestHandler):
    """A static file server that honours `Range: bytes=N-`, as real download servers do."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        wanted = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not wanted or not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        start = int(wanted.split("=")[1].split("-")[0])
        if start >= len(data):
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_download_resumes_a_partial_file_and_verifies_the_checksum(http_server, tmp_path):
    served, base = http_server
    payload = bytes(range(256)) * 4000
    (served / "data.zip").write_bytes(payload)
    destination = tmp_path / "cache" / "data.zip"
    destination.parent.mkdir()
    # an earlier download was cut off after 100 kB
    destination.with_name("data.zip.part").write_bytes(payload[:100_000])
    digest = hashlib.sha256(payload).hexdigest()
    assert download_url(f"{base}/data.zip", destination, digest) == destination
    assert destination.read_bytes() == payload
    assert not destination.with_name("data.zip.part").exists()


def test_url_download_with_a_wrong_checksum_keeps_nothing(http_server, tmp_path):
    served, base = http_server
    (served / "data.zip").write_bytes(b"payload")
    destination = tmp_path / "data.zip"
    with pytest.raises(PipelineError, match="SHA-256 does not match"):
        download_url(f"{base}/data.zip", destination, "0" * 64)
    assert not destination.exists() and not destination.with_name("data.zip.part").exists()


@pytest.mark.reliability
def test_a_url_that_answers_with_a_web_page_keeps_nothing(http_server, tmp_path):
    served, base = http_server
    (served / "data.zip").write_text("<!DOCTYPE html><html><body>Please sign in</body></html>")
    destination = tmp_path / "cache" / "data.zip"
    for _ in range(2):  # and the second time too: nothing was kept to be reused
        with pytest.raises(PipelineError, match="bytes that are not a zip or tar archive"):
            download_url(f"{base}/data.zip", destination, None)
        assert not list(destination.parent.iterdir())
    archive = make_zip(served / "data.zip", {"yes/a.jpg": b"x"})
    assert download_url(f"{base}/data.zip", destination, None).read_bytes() == archive.read_bytes()


def test_url_download_of_a_missing_file_is_one_clear_error(http_server, tmp_path):
    _, base = http_server
    with pytest.raises(PipelineError, match="download of .* failed"):
        download_url(f"{base}/missing.zip", tmp_path / "missing.zip", None)


@pytest.fixture
def no_kaggle_credentials(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))


@pytest.mark.reliability
def test_a_malformed_kaggle_json_is_one_line_that_shows_none_of_it(no_kaggle_credentials, tmp_path, capsys):
    folder = tmp_path / "no-kaggle"
    folder.mkdir()
    for text in ('{"username": "someone", "key": "secret-kaggle-key-123"', '["someone"]', '{"username": "someone"}'):
        (folder / "kaggle.json").write_text(text)
        with pytest.raises(PipelineError, match="is not Kaggle credentials") as refused:
            download_kaggle("mateuszbuda/lgg-mri-segmentation", tmp_path / "k")
        assert "secret-kaggle-key-123" not in str(refused.value)
    assert capsys.readouterr().out == "", "none of the client's help text"


def test_kaggle_without_credentials_says_how_to_provide_them(no_kaggle_credentials, tmp_path):
    with pytest.raises(PipelineError, match="KAGGLE_USERNAME and KAGGLE_KEY.*download.source: local"):
        download_kaggle("mateuszbuda/lgg-mri-segmentation", tmp_path)


class FakeKaggleApi:
    """The Kaggle client at its boundary: no machine here reaches Kaggle."""

    calls: list = []
    fail_with: Exception | None = None

    def authenticate(self):
        pass

    def dataset_download_files(self, slug, path, unzip, quiet):
        FakeKaggleApi.calls.append(slug)
        if FakeKaggleApi.fail_with:
            raise FakeKaggleApi.fail_with
        make_zip(Path(path) / f"{slug.split('/')[1]}.zip", {"yes/Y1.jpg": b"1", "no/N1.jpg": b"2"})


@pytest.fixture
def fake_kaggle(monkeypatch):
    # `kaggle.api` is also an attribute (a client instance) of the package, so import by name
    extended = importlib.import_module("kaggle.api.kaggle_api_extended")
    FakeKaggleApi.calls, FakeKaggleApi.fail_with = [], None
    monkeypatch.setattr(extended, "KaggleApi", FakeKaggleApi)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret-kaggle-key-123")
    return FakeKaggleApi


def test_kaggle_source_downloads_the_archive_through_the_official_client(fake_kaggle, tmp_path):
    archive = download_kaggle("navoneel/brain-mri-images-for-brain-tumor-detection", tmp_path / "k")
    assert fake_kaggle.calls == ["navoneel/brain-mri-images-for-brain-tumor-detection"]
    assert zipfile.ZipFile(archive).namelist() == ["yes/Y1.jpg", "no/N1.jpg"]


def test_a_kaggle_failure_never_echoes_the_credentials(fake_kaggle, tmp_path):
    fake_kaggle.fail_with = RuntimeError("401 for user someone key secret-kaggle-key-123")
    with pytest.raises(PipelineError) as error:
        download_kaggle("navoneel/brain-mri-images-for-brain-tumor-detection", tmp_path / "k")
    assert "secret-kaggle-key-123" not in str(error.value)


def test_a_malformed_kaggle_slug_is_refused(tmp_path):
    with pytest.raises(PipelineError, match="owner/name slug"):
        download_kaggle("lgg-mri-segmentation", tmp_path)


assert sys.version_info >= (3, 11), "tarfile's data filter needs Python 3.11.4+"


def test_a_url_is_shown_without_its_credentials_query_or_fragment():
    url = "https://alice:S3cretPass@data.example.org:8443/lgg/kaggle_3m.zip?token=abc123#part"
    assert shown_location(url) == "https://data.example.org:8443/lgg/kaggle_3m.zip"
    assert shown_location("ftp://bob:pw@[::1]:2121/lgg.zip;type=i") == "ftp://[::1]:2121/lgg.zip;type=i"
    for kept in ("../shared/datasets/lgg-mri-segmentation-sample.zip", "mateuszbuda/lgg-mri-segmentation"):
        assert shown_location(kept) == kept


@pytest.mark.reliability
def test_every_url_in_an_error_line_is_shown_without_credentials_or_query():
    line = (
        "MLflow tracking server http://alice:S3cretPass@127.0.0.1:9 is unreachable; "
        "API request to 'https://bob:pw@mlflow.example.org/api/2.0?token=abc' failed"
    )
    assert redacted(line) == (
        "MLflow tracking server http://127.0.0.1:9 is unreachable; "
        "API request to 'https://mlflow.example.org/api/2.0' failed"
    )
    plain = "data/raw/segmentation: 2 patients (see ../shared/datasets/README.md)"
    assert redacted(plain) == plain
    assert "pw" not in redacted("no server at http://u:pw@[::1 (malformed)")


@pytest.mark.reliability
def test_an_archive_listing_one_file_twice_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "twice.zip", "w") as bundle:
        bundle.writestr("yes/a.jpg", b"first")
        with pytest.warns(UserWarning, match="Duplicate name"):
            bundle.writestr("yes/a.jpg", b"second")
    with tarfile.open(tmp_path / "twice.tar", "w") as bundle:
        for data in (b"first", b"second"):
            member = tarfile.TarInfo("./yes/a.jpg" if data == b"first" else "yes/a.jpg")
            member.size = len(data)
            bundle.addfile(member, io.BytesIO(data))
    for name in ("twice.zip", "twice.tar"):
        with pytest.raises(PipelineError, match="lists the file '.*yes/a.jpg' twice; refusing the archive"):
            safe_extract(tmp_path / name, tmp_path / name.replace(".", "-"), **LIMITS)
