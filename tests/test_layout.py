"""The project's shape: dvc.yaml's deps cover every module a stage imports, stages/ holds only
stage scripts, and nothing outside stages/ imports one."""

import ast
from importlib.metadata import packages_distributions, version
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def imported_names(path: Path) -> set[str]:
    """Every absolute module name a file imports, at any depth (`from a.b import c` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_file(module: str) -> Path | None:
    """The project's file of a module name, or None for a module from elsewhere."""
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def project_files_imported_by(script: Path) -> set[Path]:
    """The script and every project file it imports, transitively, packages' __init__ included."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            parts = name.split(".")
            todo.extend(f for k in range(1, len(parts) + 1) if (f := project_file(".".join(parts[:k]))))
    return seen


def stage_script(stage: dict) -> Path:
    module = stage["cmd"].split(" -m ")[1].split()[0]
    return ROOT / (module.replace(".", "/") + ".py")


def uncovered(stage: dict) -> list[str]:
    """Project files the stage imports that none of its deps (files or folders) contains."""
    deps = [ROOT / dep for dep in stage["deps"]]
    return sorted(
        str(path.relative_to(ROOT))
        for path in project_files_imported_by(stage_script(stage))
        if not any(path == dep or dep in path.parents for dep in deps)
    )


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_module_a_stage_imports_is_among_its_deps(name):
    assert uncovered(STAGES[name]) == [], f"add these (or their folders) to the deps of {name} in dvc.yaml"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_removing_any_library_folder_from_a_stages_deps_is_caught(name):
    stage = STAGES[name]
    folders = [dep for dep in stage["deps"] if dep.startswith("brain_mri/") and (ROOT / dep).is_dir()]
    assert folders
    for folder in folders:
        fewer = {**stage, "deps": [dep for dep in stage["deps"] if dep != folder]}
        assert any(path.startswith(folder + "/") for path in uncovered(fewer)), f"{name} without {folder}"


def test_stages_holds_only_the_stage_scripts_and_predict():
    scripts = {stage_script(stage).name for stage in STAGES.values()} | {"predict.py"}
    assert {path.name for path in (ROOT / "stages").iterdir() if path.name != "__pycache__"} == scripts


def test_the_library_tests_and_benchmarks_import_no_stage_script():
    for folder in ("brain_mri", "tests", "bench", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            importing = {name for name in imported_names(path) if name == "stages" or name.startswith("stages.")}
            assert not importing, f"{path.relative_to(ROOT)} imports {importing}"


def test_a_library_module_imports_only_its_own_phase_and_earlier_ones():
    # inference (the models applied to inputs, as predict does) comes before evaluation, which scores it
    phases = ["common", "data", "models", "training", "inference", "evaluation", "tracking"]
    for path in (ROOT / "brain_mri").rglob("*.py"):
        own = path.relative_to(ROOT / "brain_mri").parts[0]
        if own not in phases:
            continue
        for name in imported_names(path):
            parts = name.split(".")
            if parts[0] == "brain_mri" and len(parts) > 1 and parts[1] in phases:
                assert phases.index(parts[1]) <= phases.index(own), f"{path.relative_to(ROOT)} imports {name}"


def pinned(requirements_file: str) -> dict[str, str]:
    """name -> the whole line, of a requirements file and the files it includes with -r."""
    lines = {}
    for line in (ROOT / requirements_file).read_text().splitlines():
        if line.startswith("-r "):
            lines.update(pinned(line.split()[1]))
        elif line and not line.startswith("#"):
            lines[line.split("==")[0].split("[")[0]] = line
    return lines


def test_the_cpu_and_gpu_installs_differ_in_tensorflow_alone_and_the_package_pulls_in_neither():
    cpu, gpu = pinned("requirements.txt"), pinned("requirements-gpu.txt")
    assert cpu.pop("tensorflow-cpu") == "tensorflow-cpu==2.21.0"
    assert gpu.pop("tensorflow") == "tensorflow[and-cuda]==2.21.0"
    assert cpu == gpu, "the same pins besides TensorFlow"
    assert not any(name.startswith("tensorflow") for name in pinned("requirements-base.txt"))
    assert 'file = ["requirements-base.txt"]' in (ROOT / "pyproject.toml").read_text()


def test_a_logged_model_names_the_tensorflow_distribution_that_is_installed():
    from brain_mri.tracking.models import model_requirements

    versions = {"keras": "3.15.1", "tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0", "segmentation-models": "1.0.1"}
    gpu_install = {"tensorflow": ["tensorflow"], "keras": ["keras"]}  # requirements-gpu.txt: tensorflow[and-cuda]
    assert model_requirements(gpu_install, versions.__getitem__) == [
        "keras==3.15.1",
        "tensorflow==2.21.0",
        "segmentation-models==1.0.1",
    ]
    installed = packages_distributions()  # here: requirements-dev.txt, so requirements.txt's tensorflow-cpu
    assert len(installed["tensorflow"]) == 1, "one TensorFlow distribution"
    assert f"tensorflow-cpu=={version('tensorflow-cpu')}" in model_requirements(installed)
