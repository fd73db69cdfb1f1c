"""Model quality on the real data in ../shared/datasets, trained from scratch on this machine.

    .venv/bin/python bench/quality.py unet        # the 59 LGG patients: 35 train, 12 val, 12 test, 128x128
    .venv/bin/python bench/quality.py classifier  # the 253 real images, about 46 in the test split
    .venv/bin/python bench/quality.py unet --folds 4  # patient-wise cross-validation (59 patients: hours)
    .venv/bin/python bench/quality.py unet -S train_unet.missing_sequence_p=0  # one param changed
    .venv/bin/python bench/quality.py classifier --folds 5  # every distinct image tested once, 100 to 120 min
    .venv/bin/python bench/quality.py classifier --seeds 42 7 3  # an ensemble: one model per seed, mean probability
    .venv/bin/python bench/quality.py classifier --folds 5 --train-fraction 0.5 -S train_classifier.epochs=60
    .venv/bin/python bench/quality.py unet --train-fraction 0.5  # the recipe on half the training patients

Runs the real stages (download from the archives, crop_split, train_*) in a temporary folder
with a recipe's params (recipes/real-cpu.yaml, the one README's command runs), then scores the
test split the way the evaluate stage does, and prints the figures with the test size and the
training time. `-S section.key=value` changes one of those params (as `dvc exp run -S` does),
to try a change of the recipe on the same data and split.

With --folds K the U-Net is trained K times: the patients are dealt into K groups, each group
is the test split once, and 3 patients of the next group are the validation split. Every
patient is then scored by a model that never saw it, so the mean over all patients says more
than one split's 6 patients do. For the classifier the folds are of images, stratified by label,
and the whole next group is the validation split (with 5 folds: 60/20/20, as in the usual split);
accuracy, F1 and ROC AUC are then over all distinct images. `--only 1 2` runs only those folds,
when time is short.

With --seeds (classifier only) the classifier is trained once per training seed on the same
split, and each image is scored by the mean of the models' probabilities: an ensemble, to see
how much of the seed-to-seed spread averaging removes.

With --train-fraction F each split trains on a fraction F of its training images (classifier:
drawn per label; U-Net: whole training patients, drawn as crop_split splits them, by tumour
presence and spread over the TCGA sites; the same draw for every recipe); the others sit unused,
and val and test stay whole. Run at a few fractions, it is a learning curve: how the test scores
grow with the number of training images or patients. Raise the epochs by 1/F to keep the number
of training steps; keep them to see the recipe as it is on less data.

With --keep DIR the work folder is DIR (a new or empty folder), kept afterwards: params.yaml, the
real data, data/processed and the trained model(s). Without it the folder is temporary. After
`unet --keep DIR`, `cd DIR && <project>/.venv/bin/python <project>/stages/train_classifier.py` adds
the recipe's classifier, and `bench/cascade_gate.py DIR` then scores the cascade on that U-Net.
"""

import argparse
import json
import resource
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from common import ROOT, merge, prepare_real_data, run_stage

from brain_mri.common.recipes import load_recipe
from brain_mri.data.processed import NpyRows
from brain_mri.data.splits import patient_wise_split

RECIPE = "real-cpu"  # recipes/real-cpu.yaml: what README's real-data figures are trained with
MODELS = ("classifier", "unet")


def training_minutes(work: Path, model: str) -> float:
    """Runs the model's training stage; the minutes it took. Prints its rate and the peak memory."""
    start = time.perf_counter()
    run_stage(work, f"train_{model}")
    seconds = time.perf_counter() - start
    params = yaml.safe_load((work / "params.yaml").read_text())[f"train_{model}"]
    kind = "segmentation" if model == "unet" else "classification"
    manifest = pd.read_csv(work / f"data/processed/{kind}/manifest.csv")
    images = int((manifest["split"] == "train").sum()) * params["epochs"]
    # the largest child so far: the training stage holds the data and the model
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"train_{model}: {images / seconds:.1f} training images/s over the whole stage; peak memory {peak:.0f} MB")
    return round(seconds / 60, 1)


def train_classifiers(work: Path, seeds: list[int]) -> tuple[list[Path], float]:
    """Trains the classifier once per training seed; the saved models and the minutes it all took."""
    params_path = work / "params.yaml"
    models, minutes = [], 0.0
    for seed in seeds:
        params = yaml.safe_load(params_path.read_text())
        params["train_classifier"]["seed"] = seed
        params_path.write_text(yaml.safe_dump(params))
        print(f"training seed {seed}", flush=True)
        minutes += training_minutes(work, "classifier")
        models.append((work / "models/classifier.keras").rename(work / f"models/classifier-seed{seed}.keras"))
    return models, round(minutes, 1)


def score_unet(work: Path) -> dict:
    """Test scores at the default mask threshold 0.5 and at the one that is best on val."""
    from brain_mri.evaluation.predictions import unet_masks
    from brain_mri.evaluation.scores import per_patient_scores, per_slice_summary, segmentation_scores
    from brain_mri.models.saving import load_model

    processed = work / "data/processed/segmentation"
    slices = NpyRows(processed / "slices.npy")
    masks = NpyRows(processed / "masks.npy")
    manifest = pd.read_csv(processed / "manifest.csv")
    model = load_model(work / "models/unet.keras", "unet")

    def scores(split: str, threshold: float) -> tuple[pd.DataFrame, dict]:
        part = manifest[manifest["split"] == split].reset_index(drop=True)
        truth = masks[part["row"].to_numpy()] > 0
        predicted = unet_masks(model, slices, masks, part["row"].to_numpy(), threshold)
        per_patient = per_patient_scores(part["patient"], predicted, truth)
        return per_patient, segmentation_scores(per_patient, per_slice_summary(predicted, truth))

    val_dice = {t: scores("val", t)[1]["dice_mean"] for t in (0.3, 0.4, 0.5, 0.6, 0.7)}
    best = max(val_dice, key=val_dice.get)
    per_patient, at_default = scores("test", 0.5)
    print(per_patient.to_string(index=False))
    per_patient_best, at_best = scores("test", best)
    print(f"at the val-chosen mask threshold {best}:")
    print(per_patient_best.to_string(index=False))
    return {
        **at_default,
        "per_patient": per_patient,
        "val_dice_by_threshold": val_dice,
        "mask_threshold_chosen_on_val": best,
        "test_at_val_threshold": {k: at_best[k] for k in ("dice_mean", "dice_median", "iou_mean")},
    }


def score_classifier(work: Path, models: list[Path]) -> dict:
    """Test scores of the models' mean probability, at 0.5 and at the best-F1 threshold on val."""
    from brain_mri.evaluation.predictions import classifier_probabilities
    from brain_mri.evaluation.scores import best_f1_threshold, classification_scores
    from brain_mri.models.saving import load_model

    processed = work / "data/processed/classification"
    images = NpyRows(processed / "images.npy")
    manifest = pd.read_csv(processed / "manifest.csv")
    labels = manifest.sort_values("row")["label"].to_numpy()
    rows = {split: manifest.loc[manifest["split"] == split, "row"].to_numpy() for split in ("val", "test")}
    by_model = []
    for path in models:
        model = load_model(path, "classifier")
        by_model.append({split: classifier_probabilities(model, images, rows[split]) for split in rows})
    if len(models) > 1:
        alone = [classification_scores(labels[rows["test"]], p["test"], 0.5)["accuracy"] for p in by_model]
        print(f"test accuracy of each model alone: {alone}", flush=True)
    probabilities = {split: np.mean([p[split] for p in by_model], axis=0) for split in rows}
    chosen = best_f1_threshold(labels[rows["val"]], probabilities["val"])
    at_chosen = classification_scores(labels[rows["test"]], probabilities["test"], chosen)
    return {
        **classification_scores(labels[rows["test"]], probabilities["test"], 0.5),
        "best_f1_threshold_on_val": chosen,
        "test_at_val_threshold": {k: at_chosen[k] for k in ("accuracy", "precision", "recall", "f1", "confusion")},
        "test_predictions": manifest.set_index("row")
        .loc[rows["test"], ["source", "label"]]
        .assign(probability=probabilities["test"], threshold_chosen_on_val=chosen),
    }


def patient_folds(patients: list[str], folds: int, seed: int = 42) -> list[list[str]]:
    """The patients shuffled once and dealt into `folds` groups of nearly equal size."""
    order = np.random.default_rng(seed).permutation(sorted(patients))
    return [sorted(order[k::folds]) for k in range(folds)]


def assign_fold(manifest: pd.DataFrame, groups: list[list[str]], fold: int, val_patients: int = 3) -> pd.Series:
    """Each slice's split for one fold: test = group `fold`, val = the first patients of the next group."""
    test, val = set(groups[fold]), set(groups[(fold + 1) % len(groups)][:val_patients])
    return manifest["patient"].map(lambda p: "test" if p in test else "val" if p in val else "train")


def cross_validate_unet(work: Path, folds: int, only: list[int]) -> dict:
    manifest_path = work / "data/processed/segmentation/manifest.csv"
    manifest = pd.read_csv(manifest_path)
    groups = patient_folds(manifest["patient"].unique().tolist(), folds)
    per_patient, fold_means, minutes = [], [], []
    for fold in [k - 1 for k in only]:
        manifest.assign(split=assign_fold(manifest, groups, fold)).to_csv(manifest_path, index=False)
        print(f"fold {fold + 1}/{folds}: test patients {', '.join(groups[fold])}", flush=True)
        minutes.append(training_minutes(work, "unet"))
        scores = score_unet(work)
        fold_means.append(round(scores["dice_mean"], 3))
        per_patient.append(scores["per_patient"].assign(fold=fold + 1))
    everyone = pd.concat(per_patient, ignore_index=True)
    print(everyone.to_string(index=False))
    return {
        "folds": folds,
        "folds_run": only,
        "patients": len(everyone),
        "dice_mean_over_patients": round(float(everyone["dice"].mean()), 3),
        "dice_median_over_patients": round(float(everyone["dice"].median()), 3),
        "dice_mean_by_fold": fold_means,
        "training_minutes_by_fold": minutes,
    }


def image_folds(labels: pd.Series, folds: int, seed: int = 42) -> np.ndarray:
    """Each image's group (0 to folds-1): every label's images shuffled once and dealt round."""
    group = np.empty(len(labels), dtype=int)
    rng = np.random.default_rng(seed)
    for label in sorted(labels.unique()):
        members = np.flatnonzero(labels.to_numpy() == label)
        group[rng.permutation(members)] = np.arange(len(members)) % folds
    return group


def thin_training_split(split: np.ndarray, labels: pd.Series, fraction: float, seed: int = 42) -> np.ndarray:
    """`split` with all but a fraction of each label's training images set to "unused"."""
    thinned = split.astype(object)  # numpy strings would be cut to the longest label ("train")
    rng = np.random.default_rng(seed)
    for label in sorted(labels.unique()):
        members = np.flatnonzero((split == "train") & (labels.to_numpy() == label))
        thinned[rng.permutation(members)[round(fraction * len(members)) :]] = "unused"
    return thinned


def write_classifier_split(path: Path, manifest: pd.DataFrame, split: np.ndarray, fraction: float) -> np.ndarray:
    """Writes each image's split, with all but `fraction` of the training images unused; the split written."""
    split = thin_training_split(split, manifest["label"], fraction)
    manifest.assign(split=split).to_csv(path, index=False)
    return split


def thin_training_patients(manifest: pd.DataFrame, fraction: float, seed: int = 42) -> pd.Series:
    """Each slice's split, with all but a fraction of the training patients set to "unused": the patients
    kept are drawn as crop_split draws its splits (by tumour presence, spread over the TCGA sites), so each
    of the two groups keeps at least one patient of each presence."""
    train = manifest[manifest["split"] == "train"]
    drawn = patient_wise_split(train, (fraction, 1 - fraction), seed)
    split = manifest["split"].astype(object)
    split[drawn.index[drawn != "train"]] = "unused"
    return split


def cross_validate_classifier(work: Path, folds: int, only: list[int], seeds: list[int], fraction: float) -> dict:
    from brain_mri.evaluation.scores import classification_scores

    manifest_path = work / "data/processed/classification/manifest.csv"
    manifest = pd.read_csv(manifest_path)
    group = image_folds(manifest["label"], folds)
    predictions, fold_accuracy, minutes = [], [], []
    for fold in [k - 1 for k in only]:
        split = np.where(group == fold, "test", np.where(group == (fold + 1) % folds, "val", "train"))
        split = write_classifier_split(manifest_path, manifest, split, fraction)
        counts = f"{int((split == 'train').sum())} training, {int((group == fold).sum())} test images"
        print(f"fold {fold + 1}/{folds}: {counts}", flush=True)
        models, fold_minutes = train_classifiers(work, seeds)
        minutes.append(fold_minutes)
        scores = score_classifier(work, models)
        fold_accuracy.append(round(scores["accuracy"], 3))
        print(json.dumps({k: scores[k] for k in ("accuracy", "f1", "roc_auc", "confusion")}), flush=True)
        predictions.append(scores["test_predictions"].assign(fold=fold + 1))
    everyone = pd.concat(predictions)
    labels, probabilities = everyone["label"].to_numpy(), everyone["probability"].to_numpy()
    at_val_threshold = (probabilities >= everyone["threshold_chosen_on_val"].to_numpy()) == labels
    return {
        "folds": folds,
        "folds_run": only,
        **classification_scores(labels, probabilities, 0.5),
        "seeds": seeds,
        "train_fraction": fraction,
        "accuracy_at_thresholds_chosen_on_val": round(float(at_val_threshold.mean()), 3),
        "accuracy_by_fold": fold_accuracy,
        "training_minutes_by_fold": minutes,
    }


def param_change(text: str) -> dict:
    """`section.key=value` (the value read as YAML) as a nested dict."""
    path, separator, value = text.partition("=")
    if not separator or "." not in path:
        raise argparse.ArgumentTypeError(f"{text!r}: write a param change as section.key=value")
    change = yaml.safe_load(value)
    for key in reversed(path.split(".")):
        change = {key: change}
    return change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=MODELS, nargs="?", default="unet")
    parser.add_argument("--recipe", default=RECIPE, help=f"a recipe in recipes/ (default {RECIPE})")
    parser.add_argument("-S", "--set", type=param_change, action="append", default=[], help="section.key=value")
    parser.add_argument("--folds", type=int, default=0, help="cross-validation with K folds (patient-wise for unet)")
    parser.add_argument("--only", type=int, nargs="+", help="with --folds K: run only these folds (1 to K)")
    parser.add_argument("--seeds", type=int, nargs="+", help="classifier: one model per training seed, averaged")
    parser.add_argument(
        "--train-fraction", type=float, default=1.0, help="train on this fraction (U-Net: of the training patients)"
    )
    parser.add_argument("--keep", type=Path, help="work in this new or empty folder and keep it (data, models)")
    args = parser.parse_args()
    if args.folds and args.folds < 3:
        parser.error("--folds needs at least 3 folds: one tests, the next validates, the others train")
    only = args.only or list(range(1, args.folds + 1))
    if args.only and not all(1 <= k <= args.folds for k in args.only):
        parser.error("--only needs --folds K and fold numbers from 1 to K")
    if args.seeds and args.model != "classifier":
        parser.error("--seeds is for the classifier; a U-Net ensemble would not fit its 30-minute training budget")
    if not 0 < args.train_fraction <= 1:
        parser.error("--train-fraction takes a fraction above 0 and at most 1")
    if args.train_fraction < 1 and args.model == "unet" and args.folds:
        parser.error("--train-fraction with --folds is for the classifier; for the U-Net, drop --folds")
    if args.keep and (args.keep.is_file() or (args.keep.is_dir() and any(args.keep.iterdir()))):
        parser.error(f"--keep {args.keep}: not a new or empty folder; name one, so that nothing in it is overwritten")
    params = load_recipe(args.recipe, ROOT)
    for change in args.set:
        params = merge(params, change)
    with nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        work.mkdir(parents=True, exist_ok=True)
        prepare_real_data(work, params)
        seeds = args.seeds or [yaml.safe_load((work / "params.yaml").read_text())[f"train_{args.model}"]["seed"]]
        if args.folds:
            folds = (
                cross_validate_unet(work, args.folds, only)
                if args.model == "unet"
                else cross_validate_classifier(work, args.folds, only, seeds, args.train_fraction)
            )
            print(json.dumps({"model": args.model, **params, **folds}, indent=2))
            return
        if args.model == "unet":
            if args.train_fraction < 1:
                manifest_path = work / "data/processed/segmentation/manifest.csv"
                manifest = pd.read_csv(manifest_path)
                split = thin_training_patients(manifest, args.train_fraction)
                manifest.assign(split=split).to_csv(manifest_path, index=False)
                kept, everyone = manifest[split == "train"], manifest[manifest["split"] == "train"]
                counts = f"{kept['patient'].nunique()} of {everyone['patient'].nunique()} training patients"
                print(f"training on {counts}, {len(kept)} of {len(everyone)} slices", flush=True)
            minutes = training_minutes(work, "unet")
            scores = score_unet(work)
        else:
            manifest_path = work / "data/processed/classification/manifest.csv"
            manifest = pd.read_csv(manifest_path)
            write_classifier_split(manifest_path, manifest, manifest["split"].to_numpy(), args.train_fraction)
            models, minutes = train_classifiers(work, seeds)
            scores = score_classifier(work, models)
    scores.pop("per_patient", None)
    scores.pop("test_predictions", None)
    report = {
        "model": args.model,
        "seeds": seeds,
        "train_fraction": args.train_fraction,
        "training_minutes": minutes,
        **params,
        **scores,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
