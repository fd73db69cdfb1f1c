"""The real pipeline, `dvc repro` in a temporary git copy with tiny params, start to finish."""

import json

import mlflow
import pytest
import yaml

from tests.helpers import TINY_PARAMS, dvc, project_copy, stages_run

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


def test_changing_unet_epochs_reruns_only_train_unet_and_evaluate(reproduced):
    repo, _ = reproduced
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train_unet"]["epochs"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run(dvc(repo, "repro").stdout) == ["train_unet", "evaluate"]
