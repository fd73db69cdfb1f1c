"""The real pipeline, `dvc repro` in a temporary git copy with tiny params, start to finish."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from dvc_render.html import PAGE_HTML
from PIL import Image
from scipy import ndimage

from brain_mri.evaluation.scores import per_patient_scores
from brain_mri.models.saving import read_provenance
from tests.helpers import (
    CLASSIFICATION_ARCHIVE,
    FAKE_SECRETS,
    SEGMENTATION_ARCHIVE,
    TINY,
    committed_copy,
    copy_work,
    default_threads,
    dvc,
    git,
    needs_real_data,
    run_stage,
    run_stage_ok,
    stage_env,
    stages_run,
)

pytestmark = pytest.mark.slow

STAGES = ["download", "crop_split", "train_classifier", "train_unet", "evaluate"]


def test_every_stage_runs_in_order(reproduced):
    assert stages_run((reproduced / "repro.log").read_text()) == STAGES


# warnings that were printed, none of them about the user's data or models: MLflow's two on the logged dataset,
# by every training stage (brain_mri.tracking.provenance), and TensorFlow's retracing of evaluate's models for
# each batch size, by the default run's evaluate (the tiny data here has too few batch sizes to trigger it:
# tests/test_inference.py counts the traces)
NOISE = ("triggered tf.function retracing", "can be interpreted in multiple ways", "Inferred schema contains integer")


def test_a_repro_and_a_predict_run_print_none_of_the_warnings_they_used_to(reproduced, predicted):
    """What a newcomer reads in the stages' output is about their run, not library noise."""
    output = (reproduced / "repro.log").read_text() + (reproduced / "repro.err").read_text() + predicted[3]
    assert [warning for warning in NOISE if warning in output] == []


def test_secrets_in_the_environment_reach_no_output_and_no_file(reproduced):
    """The whole `dvc repro` ran with fake secrets set: no file it wrote (outputs, the DVC cache, the
    MLflow store and artifacts, its own output in repro.log and repro.err) holds one."""
    tracked = set(git(reproduced, "ls-files").splitlines())  # the project's sources, tests/helpers.py among them
    written = (path for path in reproduced.rglob("*") if ".git" not in path.parts and path.is_file())
    files = [path for path in written if path.relative_to(reproduced).as_posix() not in tracked]
    assert len(files) > 100 and any(path.suffix == ".db" for path in files)
    for path in files:
        content = path.read_bytes()
        for secret in FAKE_SECRETS.values():
            assert secret.encode() not in content, f"{secret} found in {path}"


def test_metrics_hold_numbers_and_both_models_beat_chance(reproduced, tmp_path):
    repo = reproduced
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
    shown = json.loads(dvc(copy_work(repo, tmp_path / "repo"), "metrics", "show", "--json").stdout)
    (workspace,) = shown.values()
    assert set(workspace["data"]) == {"metrics/evaluate/classifier.json", "metrics/evaluate/segmentation.json"}, (
        "the test scores; data facts (inventory, data report) are plain outputs"
    )


def test_mlflow_holds_both_training_runs_with_params_metrics_and_model(reproduced):
    repo = reproduced
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    by_stage = {run.data.tags["stage"]: run for run in runs if "stage" in run.data.tags}
    (parent,) = [run for run in runs if run.data.tags.get("kind") == "pipeline"]
    experiment = mlflow.get_experiment_by_name("brain-mri")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development", "MLflow's training view"
    assert {run.data.tags.get("mlflow.parentRunId") for run in by_stage.values()} == {parent.info.run_id}
    assert {"train_classifier", "train_unet", "evaluate"} <= set(by_stage)
    for stage in ("train_classifier", "train_unet"):
        run = by_stage[stage]
        assert run.info.status == "FINISHED"
        assert run.data.params["epochs"] == str(TINY[stage]["epochs"])
        assert "training/final_val_loss" in run.data.metrics
        sections = sorted({name.split("/")[0] for name in run.data.metrics if not name.startswith("system/")})
        assert sections == ["epoch", "test", "training"], "MLflow's run page: curves, test scores, then summaries"
        assert run.data.tags["device"] in ("CPU", "GPU") and run.data.tags["git_commit"] != "unknown"
        assert run.data.tags["deterministic"] == str(run.data.tags["device"] == "CPU"), "auto: on CPU only"
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch/loss")
        assert len(history) == TINY[stage]["epochs"], "one loss value per epoch"
        models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
        (model,) = [model for model in models if model.source_run_id == run.info.run_id]
        assert model.name == {"train_classifier": "classifier", "train_unet": "unet"}[stage]
    # each model's test scores beside its params, the summary on the parent
    classifier = json.loads((repo / "metrics/evaluate/classifier.json").read_text())
    segmentation = json.loads((repo / "metrics/evaluate/segmentation.json").read_text())
    assert by_stage["train_classifier"].data.metrics["test/accuracy"] == classifier["accuracy"]
    assert by_stage["train_unet"].data.metrics["test/dice_mean"] == segmentation["dice_mean"]
    assert parent.data.metrics["segmentation/dice_mean"] == segmentation["dice_mean"]
    assert parent.data.metrics["classifier/roc_auc"] == classifier["roc_auc"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(by_stage["train_unet"].info.run_id)}
    assert "training_curves.png" in artifacts
    assert (repo / "mlartifacts").is_dir(), "artifacts live beside the store at the repository root"


def test_every_logged_model_loads_and_predicts_with_mlflows_own_loader_in_a_fresh_process(reproduced):
    """What `mlflow models serve`, a registry consumer or a colleague's notebook does."""
    uri = f"sqlite:///{reproduced / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name("brain-mri")
    models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    assert {model.name for model in models} == {"classifier", "unet"}
    program = [sys.executable, "-m", "tests.programs.mlflow_client", uri, *(f"models:/{m.model_id}" for m in models)]
    result = subprocess.run(program, cwd=reproduced, env=stage_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    shapes = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith("models:/"))
    size = TINY["train_unet"]["image_size"]
    expected = {"classifier": "(1, 1)", "unet": f"(1, {size}, {size}, 1)"}
    for model in models:
        assert shapes[f"models:/{model.model_id}"] == expected[model.name], model.name


def test_outputs_have_the_modes_of_a_plain_create(reproduced, predicted):
    """Readable by the group and others as the umask allows (0644 under the usual 022), not 0600."""
    umask = os.umask(0)
    os.umask(umask)
    out, *_ = predicted
    files = [*(reproduced / "metrics").rglob("*.*"), *(reproduced / "models").glob("*"), *out.rglob("*.*")]
    files += list((reproduced / "data/processed").rglob("*.*"))
    assert len(files) > 20
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, f"{path}: {oct(path.stat().st_mode & 0o777)}"
    folders = [reproduced / "data/processed", *(reproduced / "data/processed").glob("*/"), out]
    for path in folders:
        assert path.stat().st_mode & 0o777 == 0o777 & ~umask, f"{path}: {oct(path.stat().st_mode & 0o777)}"


@pytest.mark.reliability
def test_a_stage_that_fails_under_dvc_repro_keeps_its_earlier_outputs(reproduced, tmp_path):
    """DVC deletes a stage's outputs before running it unless they persist: a stage that fails (here on
    a bad param, as it would on an unreachable server or a full disk) must leave the last good ones."""
    repo = copy_work(reproduced, tmp_path / "repo", {"base": {"seed": -1}})
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        outputs = [
            next(iter(out)) if isinstance(out, dict) else out for out in stage["outs"] + stage.get("metrics", [])
        ]
        files = [p for out in outputs for p in ([repo / out] if (repo / out).is_file() else (repo / out).rglob("*"))]
        before = {p: p.read_bytes() for p in files if p.is_file()}
        assert before, name
        result = dvc(repo, "repro", "--force", "--single-item", name, check=False)
        assert result.returncode != 0 and "base.seed" in result.stdout + result.stderr, name
        after = {p: p.read_bytes() for p in files if p.is_file()}
        assert after == before, f"{name}: outputs lost or changed by a failed run"


def test_a_second_repro_reruns_nothing(reproduced, tmp_path):
    repo = copy_work(reproduced, tmp_path / "repo")
    assert stages_run(dvc(repo, "repro").stdout) == []


def test_a_forced_repro_gives_back_every_tracked_file_bit_for_bit(reproduced, tmp_path):
    """DVC's promise on the machine that made the lock: training is deterministic on CPU
    (brain_mri.training.devices.seed_and_determinism), a model file holds no time of writing, and its
    provenance names its code by content, not by a commit: a later commit that DVC does not retrain
    for (here predict's) leaves the models the same."""
    repo = committed_copy(reproduced, tmp_path / "repo")
    with (repo / "stages/predict.py").open("a") as script:
        script.write("# a change that is not a training stage's dependency\n")
    git(repo, "commit", "-q", "-am", "change predict")
    # the stages with threads in their arithmetic; download and crop_split are seeded NumPy and PIL
    # (their repeat is the fresh clone's README command 1, docs/benchmarks.md)
    forced = dvc(
        repo, "repro", "--force", "--single-item", "train_classifier", "train_unet", env=default_threads(stage_env())
    )
    assert stages_run(forced.stdout) == ["train_classifier", "train_unet"]
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == "", "dvc.lock, metrics or plots changed"
    assert stages_run(dvc(repo, "repro").stdout) == [], "the same models: evaluate has nothing to redo"


def predict(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run_stage(repo, "predict", *args)


def real_images(folder: Path) -> list[Path]:
    """Every 25th image of the real classification archive and one real LGG slice, written to folder."""
    with zipfile.ZipFile(CLASSIFICATION_ARCHIVE) as bundle:
        names = [n for n in bundle.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png"))][::25]
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(bundle.read(name))
    with zipfile.ZipFile(SEGMENTATION_ARCHIVE) as bundle:
        name = next(n for n in bundle.namelist() if n.endswith("_20.tif"))
        (folder / "slice.tif").write_bytes(bundle.read(name))
    return [folder / name for name in names] + [folder / "slice.tif"]


@pytest.fixture(scope="module")
def predicted(reproduced, tmp_path_factory) -> tuple[Path, pd.DataFrame, list[Path], str]:
    """One predict run (the cascade, as by default) on made-up images, a broken file, a text
    file, a raw slice and, where the archives are, real images: (out folder, predictions.csv,
    the real images, what it wrote to stderr)."""
    folder = tmp_path_factory.mktemp("predict")
    inputs = folder / "inputs"
    inputs.mkdir()
    gray = np.zeros((300, 240), np.uint8)
    gray[40:260, 30:210] = 120
    Image.fromarray(gray).save(inputs / "grey scan.png")
    Image.fromarray(gray).convert("RGBA").save(inputs / "rgba.png")
    (inputs / "notes.txt").write_text("not an image")
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    slice_path = next((reproduced / "data/raw/segmentation/kaggle_3m").glob("*/*_5.tif"))
    real = real_images(folder / "real") if CLASSIFICATION_ARCHIVE.is_file() and SEGMENTATION_ARCHIVE.is_file() else []
    extra = [str(folder / "real")] if real else []
    result = predict(reproduced, str(inputs), str(slice_path), *extra, "--out", str(folder / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    return folder / "out", pd.read_csv(folder / "out/predictions.csv"), real, result.stderr


def test_predict_writes_a_mask_and_overlay_of_each_inputs_own_size(predicted):
    out, table, real, _ = predicted
    table = table[~table["input"].isin(map(str, real))]
    assert len(table) == 4, "three images and the broken file; the .txt is not an image"
    broken = table[table["input"].str.endswith("broken.jpg")].iloc[0]
    assert broken["status"].startswith("skipped: ") and "not a readable image" in broken["status"]
    for row in table[table["status"] == "ok"].itertuples():
        mask = np.asarray(Image.open(out / row.mask))
        source = Image.open(row.input)
        assert mask.shape == (source.height, source.width)
        assert set(np.unique(mask)) <= {0, 255}
        assert (out / row.overlay).is_file()
        assert 0.0 <= row.tumour_probability <= 1.0


def test_predict_with_models_trained_on_synthetic_data_warns_once_and_names_the_data(predicted):
    _, table, _, stderr = predicted
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "synthetic data" in warnings[0] and "recipe" in warnings[0], warnings
    assert set(table["model_training_data"]) == {"classifier: synthetic; unet: synthetic"}


def test_each_model_file_says_what_it_was_trained_on_as_its_mlflow_run_and_evaluate_do(reproduced):
    lock = yaml.safe_load((reproduced / "dvc.lock").read_text())
    params = yaml.safe_load((reproduced / "params.yaml").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{reproduced / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["brain-mri"], output_format="list")
    by_stage = {run.data.tags["stage"]: run for run in runs if "stage" in run.data.tags}
    code = {}
    for stage, model, kind, report in (
        ("train_classifier", "classifier", "classification", "classifier.json"),
        ("train_unet", "unet", "segmentation", "segmentation.json"),
    ):
        provenance = read_provenance(reproduced / f"models/{model}.keras")
        (data,) = [dep for dep in lock["stages"][stage]["deps"] if dep["path"] == f"data/processed/{kind}"]
        assert provenance["data_dvc_md5"] == data["md5"], "the hash DVC gives the training data"
        assert provenance["trained_on"] == provenance["data_source"] == "synthetic"
        assert provenance["params"] == params[stage]
        code[stage] = provenance["code_sha256"]
        manifest = pd.read_csv(reproduced / f"data/processed/{kind}/manifest.csv")
        train = manifest[manifest["split"] == "train"]
        expected = (
            {"train_patients": train["patient"].nunique(), "train_slices": len(train)}
            if kind == "segmentation"
            else {"train_images": len(train)}
        )
        assert {key: provenance[key] for key in expected} == expected
        run = by_stage[stage]
        assert run.data.tags["training_data"] == "synthetic" and run.data.tags["training_data_dvc_md5"] == data["md5"]
        assert run.data.tags["code_sha256"] == code[stage] and len(code[stage]) == 64
        (logged,) = run.inputs.dataset_inputs
        assert logged.dataset.digest == data["md5"][:8] and json.loads(logged.dataset.profile)["num_rows"] == len(train)
        assert {tag.key: tag.value for tag in logged.tags}["mlflow.data.context"] == "training"
        scores = json.loads((reproduced / "metrics/evaluate" / report).read_text())
        assert scores["training_data"] == {"trained_on": "synthetic", "data_dvc_md5": data["md5"]}
    assert code["train_classifier"] != code["train_unet"], "each stage's own code: its script differs"


def test_evaluate_reports_the_cascade_exactly_as_predict_runs_it(reproduced, tmp_path):
    """predict on the test split's slices, with its cascade and without (--no-cascade), gives
    evaluate's cascade figures: per-patient Dice and the slices the gate kept or dropped. Both with
    the test-time flip and each patient's largest 3D component, as the real-data recipe has them."""
    post_processing = {"evaluate": {"test_time_flip": True, "largest_component": True, "mask_threshold": 0.3}}
    repo = copy_work(reproduced, tmp_path / "project", post_processing)
    run_stage_ok(repo, "evaluate")
    test = pd.read_csv(repo / "data/processed/segmentation/manifest.csv").query("split == 'test'")
    report = json.loads((repo / "metrics/evaluate/segmentation.json").read_text())["cascade"]
    truth = np.stack([tifffile.imread(repo / path) > 0 for path in test["mask_path"]])
    healthy = ~truth.reshape(len(truth), -1).any(axis=1)
    tables = {}
    for name, flags in (("cascade", ()), ("ungated", ("--no-cascade",))):
        result = predict(repo, *test["image_path"], "--out", str(tmp_path / name), *flags)
        assert result.returncode == 0, result.stderr[-2000:]
        table = pd.read_csv(tmp_path / name / "predictions.csv")
        assert list(table["input"]) == list(test["image_path"]) and set(table["input_kind"]) == {"slice"}
        masks = np.stack([np.asarray(Image.open(tmp_path / name / mask)) > 0 for mask in table["mask"]])
        tables[name] = (table, per_patient_scores(test["patient"], masks, truth), masks)
    (cascade, through, _), (ungated, without_gate, _) = tables["cascade"], tables["ungated"]
    assert set(cascade["gate"]) == {"unet_area"} and set(ungated["gate"]) == {"none"} and ungated["segmented"].all()
    assert report["dice_mean"] == pytest.approx(through["dice"].mean(), abs=1e-9)
    assert report["ungated_dice_mean"] == pytest.approx(without_gate["dice"].mean(), abs=1e-9)
    assert report["healthy_slices_with_false_positive"] == (cascade["tumour_pixels"][healthy] > 0).sum()
    assert report["ungated_healthy_slices_with_false_positive"] == (ungated["tumour_pixels"][healthy] > 0).sum()
    assert report["tumour_slices_missed"] == (~cascade["segmented"][~healthy]).sum()
    kept = cascade["segmented"].to_numpy()
    assert (cascade["tumour_pixels"][kept] == ungated["tumour_pixels"][kept]).all(), "the gate drops masks whole"
    assert (cascade["tumour_pixels"][~kept] == 0).all()
    patients, slice_numbers = test["patient"].to_numpy(), test["slice"].to_numpy()
    for patient in set(patients):
        (positions,) = np.nonzero(patients == patient)
        volume = tables["ungated"][2][positions[np.argsort(slice_numbers[positions])]]
        assert ndimage.label(volume, structure=np.ones((3, 3, 3)))[1] <= 1, f"{patient}: one 3D component"


def test_predict_on_a_missing_path_is_one_line_and_writes_nothing(reproduced, tmp_path):
    result = predict(reproduced, str(tmp_path / "nowhere.jpg"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


def imported_modules(*args: str, cwd: Path) -> set[str]:
    """The modules predict imported when run with ARGS (Python's importtime reports each on stderr)."""
    result = run_stage(cwd, "predict", *args, env=stage_env(PYTHONPROFILEIMPORTTIME="1"))
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_predict_answers_help_and_a_missing_input_without_loading_tensorflow(reproduced, tmp_path):
    for args in (["--help"], [str(tmp_path / "nowhere.jpg"), "--out", str(tmp_path / "out")]):
        modules = imported_modules(*args, cwd=reproduced)
        assert "brain_mri.inference.predict" in modules, "importtime reports the modules predict imports"
        assert "tensorflow" not in modules and "keras" not in modules, args


@needs_real_data
def test_predict_on_the_real_images(predicted):
    out, table, real, _ = predicted
    table = table[table["input"].isin(map(str, real))]
    assert len(table) == len(real) and (table["status"] == "ok").all()
    for row in table.itertuples():
        with Image.open(row.input) as source:
            assert np.asarray(Image.open(out / row.mask)).shape == (source.height, source.width)


def charts_drawn_offline(page: Path, profile: Path) -> str:
    """The DOM of a page after headless Chromium drew it with every network request refused
    (as behind a hospital firewall); a screenshot of it beside the page."""
    chromium = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all
        "--allow-file-access-from-files", "--virtual-time-budget=15000",
    ]  # fmt: skip
    dom = subprocess.run([*chromium, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    screenshot = page.with_suffix(".png")
    subprocess.run([*chromium, f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=120)
    return dom


@pytest.mark.skipif(
    not shutil.which("chromium"), reason="headless check needs Debian's chromium (apt-get install chromium)"
)
def test_dvc_plots_show_draws_every_plot_in_chromium_with_no_network(reproduced, tmp_path):
    repo = copy_work(reproduced, tmp_path / "repo")
    dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    page = tmp_path / "plots" / "index.html"
    dom = charts_drawn_offline(page, tmp_path / "profile")
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    charts = [plot for plot in declared if isinstance(plot, dict)]
    images = [plot for plot in declared if isinstance(plot, str)]
    assert dom.count('class="marks"') == len(charts), "every vega chart drew its marks"
    for image in images:
        name = "workspace_" + image.replace("/", "_")
        assert f'src="static/{name}"' in dom and (tmp_path / "plots/static" / name).stat().st_size > 1000
    assert page.with_suffix(".png").stat().st_size > 10_000

    # the control: DVC's own page, which loads vega from a CDN, draws no chart without the network
    default = tmp_path / "default.html"
    default.write_text(PAGE_HTML)
    dvc(repo, "plots", "show", "-o", str(tmp_path / "cdn"), "--html-template", str(default))
    assert "cdn.jsdelivr.net" in (tmp_path / "cdn/index.html").read_text()
    assert charts_drawn_offline(tmp_path / "cdn/index.html", tmp_path / "profile-cdn").count('class="marks"') == 0


def test_outputs_pushed_to_a_local_remote_come_back_after_the_cache_is_gone(reproduced, tmp_path):
    repo = copy_work(reproduced, tmp_path / "repo")
    dvc(repo, "remote", "add", "--local", "-d", "storage", str(tmp_path / "remote"))
    dvc(repo, "push")
    model_bytes = (repo / "models/unet.keras").read_bytes()
    for path in (".dvc/cache", "data/raw", "data/processed", "models/unet.keras", "models/classifier.keras"):
        target = repo / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    dvc(repo, "pull")
    assert (repo / "models/unet.keras").read_bytes() == model_bytes
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout


def report(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(repo / "scripts/metrics_report.py"), *args],
        cwd=repo,
        env=stage_env(),
        capture_output=True,
        text=True,
    )


def test_a_param_change_reruns_only_its_stages_and_the_metrics_report_shows_it_against_a_ref(reproduced, tmp_path):
    repo = committed_copy(reproduced, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["threshold"] = 0.999  # almost nothing is called tumour now
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = report(repo, "HEAD")  # reproduces the pipeline first, its output on stderr
    assert result.returncode == 0, result.stderr[-2000:]
    assert stages_run(result.stderr) == ["evaluate"], "the models are up to date"
    assert "## Metrics against `HEAD`" in result.stdout
    assert "evaluate.threshold" in result.stdout and "0.999" in result.stdout
    assert "metrics/evaluate/classifier.json" in result.stdout
    assert "`metrics/evaluate/classifier_confusion.csv`" in result.stdout
    assert (repo / "dvc_plots_diff/index.html").is_file()
    first = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    without_metrics = report(repo, first, "--no-repro")
    assert without_metrics.returncode == 0, without_metrics.stderr[-2000:]
    assert "metrics/evaluate/segmentation.json" in without_metrics.stdout, (
        "all metrics are new against a ref without them"
    )


def test_metrics_report_deepens_a_shallow_clone(reproduced, tmp_path):
    repo = committed_copy(reproduced, tmp_path / "repo")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", repo.as_uri(), str(shallow)], check=True)
    result = report(shallow, "HEAD~1", "--no-repro")
    assert "shallow clone: fetching more history" in result.stderr
    assert result.returncode == 0, result.stderr[-2000:]
    assert "## Params against `HEAD~1`" in result.stdout
