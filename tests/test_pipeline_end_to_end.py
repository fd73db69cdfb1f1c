"""The real pipeline, `dvc repro` in a temporary git copy with tiny params, start to finish."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.conftest import CLASSIFICATION_ARCHIVE, SEGMENTATION_ARCHIVE, needs_real_data
from tests.helpers import TINY_PARAMS, dvc, pipeline_env, project_copy, stages_run

pytestmark = pytest.mark.slow

STAGES = ["download", "crop_split", "train_classifier", "train_unet", "evaluate"]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    repo = project_copy(tmp_path_factory.mktemp("pipeline"), TINY_PARAMS)
    first = dvc(repo, "repro")
    return repo, first.stdout


def test_every_stage_runs_in_order(reproduced):
    _, output = reproduced
    assert stages_run(output) == STAGES


def test_metrics_hold_numbers_and_both_models_beat_chance(reproduced):
    repo, _ = reproduced
    classifier = json.loads((repo / "metrics/evaluate/classifier.json").read_text())
    segmentation = json.loads((repo / "metrics/evaluate/segmentation.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert isinstance(classifier[key], float), key
    majority = max(
        classifier["confusion"]["tp"] + classifier["confusion"]["fn"],
        classifier["confusion"]["tn"] + classifier["confusion"]["fp"],
    )
    assert classifier["accuracy"] > majority / classifier["test_size"], (
        "no better than always answering the larger class"
    )
    assert classifier["roc_auc"] > 0.75
    # an empty prediction scores 0 on every patient with tumour
    assert segmentation["dice_mean"] > 0.5 and segmentation["test_patients"] >= 1
    shown = dvc(repo, "metrics", "show", "--json").stdout
    assert "dice_mean" in shown and "accuracy" in shown


def test_mlflow_holds_both_training_runs_with_params_metrics_and_model(reproduced):
    repo, _ = reproduced
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    by_stage = {run.data.tags["stage"]: run for run in runs}
    assert {"train_classifier", "train_unet", "evaluate"} <= set(by_stage)
    for stage in ("train_classifier", "train_unet"):
        run = by_stage[stage]
        assert run.info.status == "FINISHED"
        assert run.data.params["epochs"] == str(TINY_PARAMS[stage]["epochs"])
        assert "final_val_loss" in run.data.metrics
        assert run.data.tags["device"] in ("CPU", "GPU") and run.data.tags["git_commit"] != "unknown"
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
        assert len(history) == TINY_PARAMS[stage]["epochs"], "one loss value per epoch"
        models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
        assert any(model.source_run_id == run.info.run_id for model in models)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(by_stage["train_unet"].info.run_id)}
    assert "training_curves.png" in artifacts
    assert (repo / "mlartifacts").is_dir(), "artifacts live beside the store at the repository root"


def test_a_second_repro_reruns_nothing(reproduced):
    repo, _ = reproduced
    assert stages_run(dvc(repo, "repro").stdout) == []


def predict(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stages.predict", *args],
        cwd=repo,
        env=pipeline_env(PYTHONPATH=str(repo)),
        capture_output=True,
        text=True,
    )


def test_predict_writes_a_mask_and_overlay_of_each_inputs_own_size(reproduced, tmp_path):
    repo, _ = reproduced
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    gray = np.zeros((300, 240), np.uint8)
    gray[40:260, 30:210] = 120
    Image.fromarray(gray).save(inputs / "grey scan.png")
    Image.fromarray(gray).convert("RGBA").save(inputs / "rgba.png")
    (inputs / "notes.txt").write_text("not an image")
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    slice_path = next((repo / "data/raw/segmentation/kaggle_3m").glob("*/*_5.tif"))
    result = predict(repo, str(inputs), str(slice_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out/predictions.csv")
    assert len(table) == 4, "three images and the broken file; the .txt is not an image"
    broken = table[table["input"].str.endswith("broken.jpg")].iloc[0]
    assert broken["status"].startswith("skipped: ") and "not a readable image" in broken["status"]
    for row in table[table["status"] == "ok"].itertuples():
        mask = np.asarray(Image.open(tmp_path / "out" / row.mask))
        source = Image.open(row.input)
        assert mask.shape == (source.height, source.width)
        assert set(np.unique(mask)) <= {0, 255}
        assert (tmp_path / "out" / row.overlay).is_file()
        assert 0.0 <= row.tumour_probability <= 1.0


def test_predict_without_cascade_segments_every_input(reproduced, tmp_path):
    repo, _ = reproduced
    slices = sorted((repo / "data/raw/segmentation/kaggle_3m").glob("*/*[0-9].tif"))[:6]
    result = predict(repo, *map(str, slices), "--out", str(tmp_path / "out"), "--no-cascade")
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out/predictions.csv")
    assert table["segmented"].all()


def test_predict_on_a_missing_path_is_one_line_and_writes_nothing(reproduced, tmp_path):
    repo, _ = reproduced
    result = predict(repo, str(tmp_path / "nowhere.jpg"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


@needs_real_data
def test_predict_on_the_real_images(reproduced, tmp_path):
    repo, _ = reproduced
    real = tmp_path / "real"
    with zipfile.ZipFile(CLASSIFICATION_ARCHIVE) as bundle:
        names = [n for n in bundle.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png"))][::25]
        for name in names:
            (real / name).parent.mkdir(parents=True, exist_ok=True)
            (real / name).write_bytes(bundle.read(name))
    with zipfile.ZipFile(SEGMENTATION_ARCHIVE) as bundle:
        name = next(n for n in bundle.namelist() if n.endswith("_20.tif"))
        (real / "slice.tif").write_bytes(bundle.read(name))
    result = predict(repo, str(real), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out/predictions.csv")
    assert len(table) == len(names) + 1 and (table["status"] == "ok").all()
    for row in table.itertuples():
        with Image.open(row.input) as source:
            assert np.asarray(Image.open(tmp_path / "out" / row.mask)).shape == (source.height, source.width)


def test_changing_unet_epochs_reruns_only_train_unet_and_evaluate(reproduced):
    repo, _ = reproduced
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train_unet"]["epochs"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run(dvc(repo, "repro").stdout) == ["train_unet", "evaluate"]
