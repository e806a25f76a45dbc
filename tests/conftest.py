import fcntl
import os
import shutil
import time
from pathlib import Path

import pytest

from align_gnn.data import load_dataset
from align_gnn.data.planetoid import raw_paths
from align_gnn.threads import set_threads, threads_per_process

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared' / 'datasets'

#: The test processes running at once (pytest-xdist's workers, else one).
WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', 1))
#: Each test process gets its share of the cores, for its own kernels and,
#: through :obj:`OMP_NUM_THREADS`, for every process a test starts (the
#: command line, a benchmark, a study's workers, torchrun): the suite never
#: runs more threads than there are cores (see :mod:`align_gnn.threads`).
THREADS = threads_per_process(WORKERS)
set_threads(THREADS)

#: The one wall-clock limit of the suite, for a test's subprocess or its wait
#: for a process to reach a state: a hang detector, not a speed check (speed
#: is measured in benchmarks/). Generous: a CLI test that takes 30 s on a
#: quiet 2-core machine may take ten times as long on a busy one.
HANG_SECONDS = 1800


def wait_for(condition, what: str, interval: float = 0.05):
    r"""Polls :obj:`condition()` until it holds; fails the test naming
    :obj:`what` if it still does not after :obj:`HANG_SECONDS`."""
    deadline = time.monotonic() + HANG_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f'{what} did not happen in {HANG_SECONDS} s')
        time.sleep(interval)


def has_raw(root: Path, name: str) -> bool:
    return all(Path(path).is_file() for path in raw_paths(name, root))


def processed_once(root: Path, names) -> Path:
    r"""Loads the data sets :obj:`names` from :obj:`root` under a blocking
    lock, so that parallel test processes (pytest-xdist) sharing the
    repository's `datasets/` never write its `processed/` files at once:
    the first processes them, the others then read them."""
    with open(root / '.tests.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        for name in names:
            load_dataset(name.replace('_', '-'), str(root))
    return root


@pytest.fixture(scope='session')
def data_root(tmp_path_factory) -> Path:
    r"""A data root holding Cora and CiteSeer: the repository's `datasets/`
    if CI filled it, else a copy of `../shared/datasets`."""
    names = ('Cora', 'CiteSeer')
    if all(has_raw(REPO / 'datasets', name) for name in names):
        return processed_once(REPO / 'datasets', names)
    root = tmp_path_factory.mktemp('datasets')
    for name in names:
        assert (SHARED / name / 'raw').is_dir(), (
            f'{name} is neither in {REPO / "datasets"} nor in {SHARED}')
        shutil.copytree(SHARED / name / 'raw', root / name / 'raw')
    return root


HETEROPHILOUS = ('minesweeper', 'tolokers', 'chameleon_filtered',
                 'squirrel_filtered')


@pytest.fixture(scope='session')
def hetero_root(tmp_path_factory) -> Path:
    r"""A data root holding the four heterophilous sets
    (`<name>/raw/<name>.npz`): the repository's `datasets/` if CI filled
    it, else a copy of `../shared/datasets` (PyG writes `processed/`
    beside `raw/`, so never the shared folder itself)."""
    def has(root: Path, name: str) -> bool:
        return (root / name / 'raw' / f'{name}.npz').is_file()

    if all(has(REPO / 'datasets', name) for name in HETEROPHILOUS):
        return processed_once(REPO / 'datasets', HETEROPHILOUS)
    root = tmp_path_factory.mktemp('hetero')
    for name in HETEROPHILOUS:
        assert has(SHARED, name), (
            f'{name} is neither in {REPO / "datasets"} nor in {SHARED}')
        shutil.copytree(SHARED / name / 'raw', root / name / 'raw')
    return root
