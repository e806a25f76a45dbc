import shutil
from pathlib import Path

import pytest

from align_gnn.data.planetoid import raw_paths

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared' / 'datasets'


def has_raw(root: Path, name: str) -> bool:
    return all(Path(path).is_file() for path in raw_paths(name, root))


@pytest.fixture(scope='session')
def data_root(tmp_path_factory) -> Path:
    r"""A data root holding Cora and CiteSeer: the repository's `datasets/`
    if CI filled it, else a copy of `../shared/datasets`."""
    names = ('Cora', 'CiteSeer')
    if all(has_raw(REPO / 'datasets', name) for name in names):
        return REPO / 'datasets'
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
        return REPO / 'datasets'
    root = tmp_path_factory.mktemp('hetero')
    for name in HETEROPHILOUS:
        assert has(SHARED, name), (
            f'{name} is neither in {REPO / "datasets"} nor in {SHARED}')
        shutil.copytree(SHARED / name / 'raw', root / name / 'raw')
    return root
