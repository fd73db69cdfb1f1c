"""Experiments the way users run them: dvc exp run, the recipes, a queue, and one MLflow store for all."""

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from tests.helpers import ROOT, built_once, committed_copy, dvc, stage_env, stages_run

pytestmark = pytest.mark.slow
RECIPES = ("real-cpu", "full-gpu")
# a recipe's own settings, at the sizes of the tests, on the embedded data, without ImageNet weights
TINY_RECIPE = [
    *("-S", "download.source=synthetic", "-S", "crop_split.image_size=32"),
    *("-S", "train_classifier.epochs=1", "-S", "train_classifier.monitor_from_epoch=0"),
    *("-S", "train_classifier.image_size=32", "-S", "train_classifier.weights=null"),
    *("-S", "train_unet.epochs=1", "-S", "train_unet.image_size=32", "-S", "train_unet.encoder_weights=null"),
]


@pytest.fixture(scope="session")
def experiments(shared_root, reproduced) -> tuple[Path, str, str]:
    """(repository, the workspace experiment's output, the queue's final status)."""
    folder = built_once(shared_root, "experiments", lambda folder: run_experiments(reproduced, folder))
    return folder / "repo", (folder / "workspace.log").read_text(), (folder / "queue-status.log").read_text()


def run_experiments(reproduced: Path, folder: Path) -> None:
    """A copy of the reproduced project, its outputs committed as the baseline: two workspace
    experiments started at once, the next workspace experiment, then a queue of three (the two
    recipes and one more) run with `dvc queue start`."""
    repo = committed_copy(reproduced, folder / "repo")
    command = [str(Path(sys.executable).parent / "dvc"), "exp", "run", "-S"]
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    processes = [
        subprocess.Popen([*command, f"evaluate.threshold={threshold}"], cwd=repo, env=stage_env(), **output)
        for threshold in (0.4, 0.6)
    ]
    at_once = []
    for process in processes:
        text = process.communicate(timeout=900)[0]
        at_once.append({"output": text, "returncode": process.returncode})
    (folder / "at-once.json").write_text(json.dumps(at_once))
    workspace = dvc(repo, "exp", "run", "-n", "threshold", "-S", "evaluate.threshold=0.45")
    # a queued experiment starts from the workspace: the threshold experiment's params, with its own
    # changes; each recipe as README runs it, at tiny sizes
    for recipe in RECIPES:
        queued = subprocess.run(
            [sys.executable, "-m", "brain_mri.common.recipes", recipe, "--queue", "-n", recipe, *TINY_RECIPE],
            cwd=repo,
            env=stage_env(),
            capture_output=True,
            text=True,
        )
        assert queued.returncode == 0, queued.stderr[-3000:]
    dvc(repo, "exp", "run", "--queue", "-n", "queued-b", "-S", "evaluate.mask_threshold=0.3")
    dvc(repo, "queue", "start")
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        status = dvc(repo, "queue", "status").stdout
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(5)  # each poll is a dvc process: a shorter wait cost more CPU than it saved
    (folder / "workspace.log").write_text(workspace.stdout)
    (folder / "queue-status.log").write_text(status)


def test_a_workspace_experiment_reruns_only_the_stage_whose_params_it_sets(experiments):
    _, output, _ = experiments
    assert stages_run(output) == ["evaluate"], "only the stage whose params changed"


def test_both_queued_experiments_succeed_and_exp_show_lists_their_metrics(experiments):
    repo, _, status = experiments
    assert status.count("Success") == 3, status
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    names = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment["revs"]:
                names[revision["name"]] = revision["data"]
    assert {"threshold", *RECIPES, "queued-b"} <= set(names)
    for name in (*RECIPES, "queued-b"):
        metrics = names[name]["metrics"]["metrics/evaluate/segmentation.json"]["data"]
        assert isinstance(metrics["dice_mean"], float)
    params = {name: names[name]["params"]["params.yaml"]["data"] for name in (*RECIPES, "queued-b")}
    assert params["queued-b"]["evaluate"]["mask_threshold"] == 0.3
    # each recipe's own settings, under the tiny sizes laid over it
    real, full = params["real-cpu"], params["full-gpu"]
    assert real["train_unet"]["loss"] == "bce_jaccard" and real["train_unet"]["missing_sequence_p"] == 0.3
    assert real["train_classifier"]["batch_norm"] is True and real["train_classifier"]["dropout"] == 0.3
    assert real["crop_split"]["segmentation_split"] == {"train": 0.6, "val": 0.2, "test": 0.2}
    assert full["train_unet"]["backbone"] == "resnet34" and full["train_unet"]["early_stopping_patience"] == 10
    assert full["crop_split"]["segmentation_split"]["train"] == 0.7 and full["train_classifier"]["batch_norm"] is False
    assert real["train_unet"]["epochs"] == full["train_unet"]["epochs"] == 1
    assert real["evaluate"]["threshold"] == 0.45, "a queued experiment starts from the workspace's params"


def test_every_experiment_lands_in_the_one_store_tagged_and_grouped(experiments):
    repo, _, _ = experiments
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    stage_runs = [run for run in runs if "stage" in run.data.tags]
    parents = {run.info.run_id: run for run in runs if run.data.tags.get("kind") == "pipeline"}
    by_experiment: dict[str, dict[str, list]] = {}
    for run in stage_runs:
        by_experiment.setdefault(run.data.tags.get("dvc_experiment"), {}).setdefault(run.data.tags["stage"], []).append(
            run
        )
    (unet,) = by_experiment["real-cpu"]["train_unet"]
    (evaluation,) = by_experiment["queued-b"]["evaluate"]
    assert unet.info.run_name == "train_unet real-cpu"
    assert unet.data.params["epochs"] == "1" and unet.data.params["loss"] == "bce_jaccard"
    assert "training/final_val_loss" in unet.data.metrics
    assert evaluation.data.params["mask_threshold"] == "0.3"
    # a recipe changes both models' params: both train, and evaluate runs; an experiment on
    # evaluate's params runs evaluate alone; one parent groups one pipeline execution
    everything = {"train_classifier", "train_unet", "evaluate"}
    for name, rerun in (("real-cpu", everything), ("full-gpu", everything), ("queued-b", {"evaluate"})):
        assert set(by_experiment[name]) == rerun
        (parent_id,) = {run.data.tags["mlflow.parentRunId"] for runs in by_experiment[name].values() for run in runs}
        assert parents[parent_id].data.tags["dvc_experiment"] == name
        siblings = {r.data.tags["stage"] for r in stage_runs if r.data.tags.get("mlflow.parentRunId") == parent_id}
        assert siblings == rerun
    assert (repo / "mlartifacts").is_dir() and not list((repo / ".dvc/tmp/exps").glob("**/mlflow.db"))


def test_two_experiments_at_once_leave_the_stores_readable_and_the_next_run_works(experiments):
    """The first two experiments of the fixture started at once; the workspace experiment after
    them is the next run (it reran evaluate: the test above)."""
    repo, workspace, _ = experiments
    at_once = json.loads((repo.parent / "at-once.json").read_text())
    for run in at_once:
        # DVC's lock refuses a run that would touch what the other one holds ("is busy, it is
        # being blocked by"); when both get past the lock, DVC 3.67 can also fail the second
        # one while saving the experiment ("'NoneType' object is not subscriptable"): either
        # way DVC exits non-zero with an ERROR line, and what matters here is what follows
        assert run["returncode"] == 0 or "ERROR" in run["output"], run["output"][-2000:]
    assert dvc(repo, "exp", "show", "--json").returncode == 0, "the experiment store still reads"
    assert "evaluate" in stages_run(workspace), "the next run recovers"
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    evaluations = mlflow.search_runs(experiment_names=["brain-mri"], filter_string="tags.stage = 'evaluate'")
    before_the_queue = evaluations[~evaluations["tags.dvc_experiment"].isin([*RECIPES, "queued-b"])]
    succeeded = sum(run["returncode"] == 0 for run in at_once)
    # each experiment that succeeded, and the next one (a failed experiment may also have logged
    # its evaluate run before DVC failed to save it)
    assert (before_the_queue["status"] == "FINISHED").sum() >= 1 + succeeded, "the store holds every run"
    assert (before_the_queue["tags.dvc_experiment"] == "threshold").sum() == 1, "and the next one's"
    assert (evaluations["status"] == "RUNNING").sum() == 0, "no run left RUNNING"


def test_the_readmes_exp_show_line_fits_120_columns_with_the_swept_param_beside_test_dice(experiments):
    repo, _, _ = experiments
    (line,) = [line.strip() for line in (ROOT / "README.md").read_text().splitlines() if "dvc exp show --" in line]
    shown = subprocess.run(
        shlex.split(line) + ["--no-pager"], cwd=repo, env=stage_env(COLUMNS="120"), capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(text) for text in lines) <= 120 and "…" not in shown.stdout, shown.stdout
    header = next(text for text in lines if "Experiment" in text).split()
    assert header == ["Experiment", "accuracy", "dice_mean", "train_unet.loss"], header
    (queued,) = [text.split() for text in lines if "[real-cpu]" in text]
    assert queued[-1] == "bce_jaccard" and float(queued[-2]) >= 0.0
