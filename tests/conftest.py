"""Fixtures built once per test run and shared, read-only, by every test and xdist worker.

A test that changes one of them works on its own copy (`tests.helpers.copy_work`).
"""

import os
from pathlib import Path

import pytest

from tests.helpers import (
    FAKE_SECRETS,
    built_once,
    default_threads,
    dvc,
    project_copy,
    run_stage_ok,
    stage_env,
    write_params,
)

# Each xdist worker gets its share of the cores for TensorFlow's intra-op pool, in its own process and
# in every stage it starts (stage_env passes it on), rather than one pool per process as wide as the
# machine: two stages side by side on 2 cores would run two pools of 2 threads, which spin while they
# wait. Measured: two tiny U-Net trainings at once took 43 s with 2 threads each, 31 s with 1
# (docs/benchmarks.md). Under `pytest -n 0`, and in the determinism runs (the reproduced project and
# its forced repro: tests.helpers.default_threads), TensorFlow's default stays.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    share = max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(share))

# The order the test modules are handed to the xdist workers (--dist loadfile: a module at a time;
# a worker gets the next module when two of its tests are left). The end-to-end module first: its
# first test builds the reproduced project that the experiments start from. Then the long modules,
# in the order that, given their measured times (docs/benchmarks.md), leaves two workers finishing
# together: the experiments come after the reproduced project is built; the short modules fill the end.
FIRST = [
    "tests/test_pipeline_end_to_end.py",
    "tests/test_mlflow_server.py",
    "tests/test_real_data.py",
    "tests/test_experiments.py",
    "tests/test_training.py",
    "tests/test_reliability.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(FIRST) if item.nodeid.startswith(prefix)), len(FIRST))

    items.sort(key=rank)  # stable: within a rank, the collection order


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory, worker_id) -> Path:
    """A folder that every xdist worker of this test run sees."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def _processed(folder: Path) -> None:
    write_params(folder)
    run_stage_ok(folder, "download")
    run_stage_ok(folder, "crop_split")


@pytest.fixture(scope="session")
def tiny_processed(shared_root) -> Path:
    """params.yaml (the tiny set), data/raw and data/processed, as download and crop_split leave them."""
    return built_once(shared_root, "tiny-processed", _processed)


def _reproduce(folder: Path) -> None:
    project_copy(folder)
    result = dvc(folder, "repro", env=default_threads(stage_env(**FAKE_SECRETS)))
    (folder / "repro.log").write_text(result.stdout)
    (folder / "repro.err").write_text(result.stderr)


@pytest.fixture(scope="session")
def reproduced(shared_root) -> Path:
    """A git copy of the project (tiny params) after a whole `dvc repro`, run with fake secrets in its
    environment (tests.helpers.FAKE_SECRETS) and TensorFlow's default thread pools; its output is in
    repro.log and repro.err."""
    return built_once(shared_root, "reproduced", _reproduce)
