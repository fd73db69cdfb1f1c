import pytest
import yaml

from brain_mri.common.errors import PipelineError
from brain_mri.common.params import load_params, parse_params
from tests.helpers import ROOT, run_stage


def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_committed_params_are_valid():
    params = parse_params(default_params())
    assert params.download.source == "synthetic"
    assert params.train_classifier.weights is None


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train_unet", "epochs", -1, "train_unet.epochs"),
        ("train_unet", "seed", 2**32, r"train_unet\.seed: Input should be less than or equal to 4294967295"),
        ("base", "seed", -1, r"base\.seed: Input should be greater than or equal to 0"),
        ("train_unet", "epochs", "ten", "train_unet.epochs"),
        ("train_unet", "backbone", "resnet1000", "train_unet.backbone"),
        ("train_unet", "input_scaling", "zscore", "train_unet.input_scaling"),
        ("train_classifier", "image_size", 100, "multiple of 32"),
        ("download", "source", "ftp", "download.source"),
        ("train_unet", "learning_rate", "1e-3", "train_unet.learning_rate"),
        ("train_unet", "epochs", 1.5, "train_unet.epochs"),
        ("train_unet", "monitor_from_epoch", 8, "must be below epochs"),
        ("download", "segmentation", [], "download.segmentation"),
        ("download", "segmentation", ["a.zip", 3], r"download\.segmentation\.1: Input should be a valid string"),
        ("download", "segmentation", ["a.zip", "b.zip"], "sha256.segmentation has 1 checksum"),
        ("download", "classification", ["a.zip", "b.zip", "a.zip"], "a.zip is listed twice in classification"),
    ],
)
def test_a_wrong_value_names_the_key(section, key, value, message):
    raw = default_params()
    raw[section][key] = value
    raw["download"]["sha256"]["segmentation"] = "0" * 64  # one checksum: for one location only
    with pytest.raises(PipelineError, match=message):
        parse_params(raw)


def test_an_unknown_key_is_refused():
    raw = default_params()
    raw["train_unet"]["epochz"] = 3
    with pytest.raises(PipelineError, match="train_unet.epochz: unknown key"):
        parse_params(raw)


def test_split_fractions_must_sum_to_one():
    raw = default_params()
    raw["crop_split"]["classification_split"] = {"train": 0.7, "val": 0.2, "test": 0.2}
    with pytest.raises(PipelineError, match="must be 1"):
        parse_params(raw)


def test_pretrained_weights_need_the_plain_vgg16_layout():
    raw = default_params()
    raw["train_classifier"]["weights"] = "imagenet"
    with pytest.raises(PipelineError, match="batch_norm: false"):
        parse_params(raw)


def test_a_stage_with_bad_params_exits_with_one_line_and_writes_nothing(tmp_path):
    raw = default_params()
    raw["download"]["source"] = "ftp"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = run_stage(tmp_path, "download")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "download.source" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_several_locations_pair_with_their_checksums_in_order():
    raw = default_params()
    raw["download"]["segmentation"] = ["sample.zip", "more.zip"]
    assert parse_params(raw).download.locations("segmentation") == [("sample.zip", None), ("more.zip", None)]
    raw["download"]["sha256"]["segmentation"] = [None, "ab" * 32]
    assert parse_params(raw).download.locations("segmentation") == [("sample.zip", None), ("more.zip", "ab" * 32)]
    assert parse_params(raw).download.locations("classification") == [(raw["download"]["classification"], None)]


@pytest.mark.reliability
def test_a_plain_http_download_needs_a_checksum():
    raw = default_params()
    raw["download"]["source"] = "url"
    raw["download"]["classification"] = "https://data.example.org/brain.zip"
    raw["download"]["segmentation"] = ["https://data.example.org/a.zip", "http://user:pw@data.example.org/b.zip?t=1"]
    with pytest.raises(
        PipelineError, match=r"http://data\.example\.org/b\.zip is plain http:// without a checksum"
    ) as refused:
        parse_params(raw)
    assert "pw" not in str(refused.value) and "t=1" not in str(refused.value)
    raw["download"]["sha256"]["segmentation"] = [None, "ab" * 32]
    assert parse_params(raw).download.locations("segmentation")[1][1] == "ab" * 32
    raw["download"]["source"] = "local"  # a local path that happens to start so is not fetched over http
    raw["download"]["sha256"]["segmentation"] = None
    parse_params(raw)


@pytest.mark.reliability
def test_a_params_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes((ROOT / "params.yaml").read_bytes().replace(b"base:", "# Größe\nbase:".encode("latin-1"), 1))
    with pytest.raises(
        PipelineError, match=r"params.yaml is not UTF-8 text \(byte 0xf6 at position \d+\); save it as UTF-8"
    ):
        load_params(path)


@pytest.mark.reliability
def test_a_key_given_twice_is_refused_not_quietly_overwritten(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text().replace("train_unet:\n", "train_unet:\n  epochs: 3\n", 1))
    with pytest.raises(PipelineError, match=r"params.yaml, line \d+: 'epochs' appears twice in one section; keep one"):
        load_params(path)


def test_a_bare_on_or_off_means_the_word_not_a_boolean(tmp_path):
    """YAML 1.1 reads `xla: off` (and what `dvc exp run -S train_unet.xla=off` writes) as false."""
    path = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    path.write_text(text.replace("  xla: auto", "  xla: off").replace("  deterministic: auto", "  deterministic: on"))
    params = load_params(path)
    assert params.train_unet.xla == params.train_classifier.xla == "off"
    assert params.train_unet.deterministic == params.train_classifier.deterministic == "on"
    with pytest.raises(PipelineError, match="train_unet.mixed_precision"):
        parse_params({**default_params(), "train_unet": {**default_params()["train_unet"], "mixed_precision": 1}})
