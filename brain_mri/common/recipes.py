"""Named recipes: params overlays in recipes/<name>.yaml, run as one `dvc exp run`.

    python -m brain_mri.common.recipes                    # the recipes and what each is for
    python -m brain_mri.common.recipes real-cpu -S download.source=local ...   # run one

A recipe sets only the params it is about; the rest stay as params.yaml has them. It runs as
`dvc exp run` with one `-S` per value, so DVC records every param of the experiment, `dvc exp
show` and MLflow show them, and `--queue`, `--temp`, `-n NAME` and further `-S` (applied after
the recipe's) work as with any experiment.
"""

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from brain_mri.common.errors import PipelineError, run_stage
from brain_mri.common.params import load_params, merge_params, parse_params
from brain_mri.common.repo import repo_root

RECIPES = Path("recipes")


def recipe_path(name: str, root: Path) -> Path:
    path = root / RECIPES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (root / RECIPES).glob("*.yaml"))) or "none"
        raise PipelineError(f"no recipe {name!r} in {root / RECIPES} (recipes: {known})")
    return path


def load_recipe(name: str, root: Path) -> dict:
    overlay = yaml.safe_load(recipe_path(name, root).read_text())
    if not isinstance(overlay, dict):
        raise PipelineError(f"recipe {name}: expected a mapping of params sections; fix {RECIPES}/{name}.yaml")
    return overlay


def set_param_flags(overlay: dict) -> list[str]:
    """One `-S key.path=value` for each value of the overlay (lists whole), in Hydra's override syntax,
    which is what `dvc exp run -S` reads."""
    flags = []
    for key, value in _leaves(overlay):
        flags += ["-S", f"{key}={_override_value(value)}"]
    return flags


def _leaves(overlay: dict, prefix: str = "") -> list[tuple[str, object]]:
    leaves = []
    for key, value in overlay.items():
        path = f"{prefix}{key}"
        leaves += _leaves(value, f"{path}.") if isinstance(value, dict) and value else [(path, value)]
    return leaves


def _override_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):  # 5e-05 too: params.yaml is read with YAML 1.2's floats (ParamsLoader)
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_override_value(item) for item in value) + "]"
    return "'" + str(value).replace("'", "\\'") + "'"  # a quoted string: paths, slugs


def describe(root: Path) -> str:
    """Each recipe's name and the first line of its comment."""
    lines = []
    for path in sorted((root / RECIPES).glob("*.yaml")):
        comment = next((line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
        lines.append(f"{path.stem:12} {comment}")
    return "\n".join(lines)


def main() -> None:
    root = repo_root()
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1].rstrip() + "\n\n" + describe(root))
        return
    name, extra = sys.argv[1], sys.argv[2:]
    overlay = load_recipe(name, root)
    # the recipe must make valid params on its own: a wrong key shows here, not minutes into a run
    parse_params(merge_params(load_params(root / "params.yaml").model_dump(), overlay), recipe_path(name, root))
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    command = [dvc, "exp", "run", *set_param_flags(overlay), *extra]
    # the user's own arguments are not echoed: a URL in them may carry a token
    yours = f" and {len(extra)} argument(s) of yours" if extra else ""
    print(f"recipe {name}: {shlex.join(command[1 : len(command) - len(extra)])}{yours}", flush=True)
    sys.exit(subprocess.run(command, cwd=root).returncode)


if __name__ == "__main__":
    run_stage(main)
