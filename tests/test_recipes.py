"""Recipes: params overlays in recipes/, turned into `dvc exp run -S` flags that DVC reads back exactly."""

import shutil
import subprocess
import sys

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from brain_mri.common.params import load_params, merge_params, parse_params
from brain_mri.common.recipes import RECIPES, load_recipe, set_param_flags
from tests.helpers import ROOT, stage_env, tiny_params

NAMES = sorted(path.stem for path in (ROOT / RECIPES).glob("*.yaml"))


def test_the_committed_recipes_are_real_cpu_and_full_gpu():
    assert NAMES == ["full-gpu", "real-cpu"]


@pytest.mark.parametrize("name", NAMES)
def test_dvc_reads_a_recipes_flags_back_as_the_recipe_laid_over_params(name, tmp_path):
    params = tiny_params()
    recipe = load_recipe(name, ROOT)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    flags = set_param_flags(recipe)
    apply_overrides(path, flags[1::2])  # what `dvc exp run -S ...` does to params.yaml
    assert yaml.safe_load(path.read_text()) == merge_params(params, recipe)
    parse_params(yaml.safe_load(path.read_text()))  # and the result is valid params


def test_awkward_values_survive_dvcs_parser_and_load_as_valid_params(tmp_path):
    params = tiny_params()
    change = {
        "download": {"segmentation": ["../my data/a b.zip", "it's.tar.gz", "x,y=[z].zip", "C:\\data\\lgg.zip"]},
        "train_unet": {"learning_rate": 0.00005},  # written back by DVC as 5e-05
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    apply_overrides(path, set_param_flags(change)[1::2])
    loaded = load_params(path)
    assert list(loaded.download.segmentation) == change["download"]["segmentation"]
    assert loaded.train_unet.learning_rate == 0.00005


def run_recipes(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "brain_mri.common.recipes", *args],
        cwd=cwd,
        env=stage_env(),
        capture_output=True,
        text=True,
    )


def test_an_unknown_recipe_or_a_wrong_key_in_one_is_one_line_before_anything_runs(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    shutil.copytree(ROOT / RECIPES, tmp_path / RECIPES)
    unknown = run_recipes(tmp_path, "real-gpu")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert (
        unknown.stderr.strip() == f"error: no recipe 'real-gpu' in {tmp_path / RECIPES} (recipes: full-gpu, real-cpu)"
    )
    (tmp_path / RECIPES / "typo.yaml").write_text("train_unet:\n  epoch: 3\n")
    wrong = run_recipes(tmp_path, "typo")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    (line,) = wrong.stderr.strip().splitlines()
    assert "train_unet.epoch: unknown key" in line and "typo.yaml" in line
    listed = run_recipes(tmp_path)
    assert listed.returncode == 0 and "real-cpu" in listed.stdout and "full-gpu" in listed.stdout
