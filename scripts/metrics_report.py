"""A Markdown report of what a change does to the metrics, for a pull-request comment.

    python scripts/metrics_report.py [REF] [--no-repro]

Reproduces the pipeline on the embedded data (unless --no-repro), then prints
`dvc metrics diff` and `dvc params diff` against REF (default: main) and the plot files
that changed, with a page that draws old against new (`dvc plots diff`). In a shallow clone
it deepens the history first, or says what to do. Progress goes to stderr, the report to
stdout.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

PLOTS_PAGE = Path("dvc_plots_diff")


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"metrics report: `{' '.join(command)}` failed: {result.stderr.strip().splitlines()[-1:]}")
    return result


def resolve(ref: str) -> str | None:
    result = run("git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() or None


def ensure_history(ref: str) -> str:
    """The commit of ref, deepening a shallow clone when ref is not in it."""
    commit = resolve(ref)
    shallow = run("git", "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    if commit is None and shallow:
        print(f"shallow clone: fetching more history to find {ref}", file=sys.stderr)
        run("git", "fetch", "--quiet", "--unshallow", check=False)
        run("git", "fetch", "--quiet", "origin", f"{ref}:{ref}", check=False)
        commit = resolve(ref)
    if commit is None:
        hint = " (with actions/checkout, set fetch-depth: 0)" if shallow else ""
        sys.exit(f"metrics report: {ref} is not in this clone; fetch it, e.g. `git fetch origin {ref}`{hint}")
    return commit


def plot_files() -> list[str]:
    """Every file dvc.yaml names as plot data or picture."""
    config = yaml.safe_load(Path("dvc.yaml").read_text())
    files = set()
    for plot in config.get("plots", []):
        if isinstance(plot, str):
            files.add(plot)
        else:
            for definition in plot.values():
                files.update(definition.get("y", {}) if isinstance(definition.get("y"), dict) else [])
    return sorted(files)


def changed_plots(commit: str) -> list[str]:
    changed = []
    for path in plot_files():
        old = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True).stdout
        new = Path(path).read_bytes() if Path(path).exists() else b""
        if old != new:
            changed.append(path)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", nargs="?", default="main", help="what to compare against (default: main)")
    parser.add_argument("--no-repro", action="store_true", help="report on the workspace as it is")
    arguments = parser.parse_args()

    commit = ensure_history(arguments.ref)
    if not arguments.no_repro:
        print("dvc repro ...", file=sys.stderr)
        result = subprocess.run(["dvc", "repro"], stdout=sys.stderr, stderr=sys.stderr)
        if result.returncode != 0:
            sys.exit("metrics report: dvc repro failed; see above")
    metrics = run("dvc", "metrics", "diff", commit, "--md").stdout.strip()
    params = run("dvc", "params", "diff", commit, "--md").stdout.strip()
    changed = changed_plots(commit)
    if changed:
        run("dvc", "plots", "diff", commit, "-o", str(PLOTS_PAGE))

    short = commit[:8]
    print(f"## Metrics against `{arguments.ref}` ({short})\n")
    print(metrics or "No metric changed.")
    print(f"\n## Params against `{arguments.ref}` ({short})\n")
    print(params or "No param changed.")
    print("\n## Changed plots\n")
    if changed:
        print("\n".join(f"- `{path}`" for path in changed))
        print(f"\nOld against new, drawn by `dvc plots diff`: `{PLOTS_PAGE / 'index.html'}`")
    else:
        print("No plot changed.")


if __name__ == "__main__":
    main()
