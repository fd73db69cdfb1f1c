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

from brain_mri.common.errors import PipelineError
from brain_mri.data.layouts import find_classification_folders, find_kaggle_3m
from brain_mri.data.sources import download_kaggle, download_url, safe_extract, shown_location

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


def test_absolute_tar_entries_and_links_out_are_refused(tmp_path):
    for name, member in (
        ("absolute", tarfile.TarInfo("/tmp/absolute.txt")),
        ("link", tarfile.TarInfo("yes/link")),
    ):
        archive = tmp_path / f"{name}.tar"
        with tarfile.open(archive, "w") as bundle:
            if name == "link":
                member.type, member.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
                bundle.addfile(member)
            else:
                member.size = 1
                bundle.addfile(member, io.BytesIO(b"x"))
        with pytest.raises(PipelineError, match="outside the target"):
            safe_extract(archive, tmp_path / name, **LIMITS)


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


def test_url_download_of_a_missing_file_is_one_clear_error(http_server, tmp_path):
    _, base = http_server
    with pytest.raises(PipelineError, match="download of .* failed"):
        download_url(f"{base}/missing.zip", tmp_path / "missing.zip", None)


@pytest.fixture
def no_kaggle_credentials(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))


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
