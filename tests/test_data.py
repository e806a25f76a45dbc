import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from align_gnn.data import DataError, load_dataset, ogb, planetoid
from align_gnn.data.planetoid import load_planetoid, raw_paths
from conftest import HANG_SECONDS
from fakes import write_fake_arxiv, write_fake_planetoid

REPO = Path(__file__).resolve().parents[1]


def test_missing_data(tmp_path, monkeypatch):
    monkeypatch.setattr(planetoid.Planetoid, 'url',
                        'https://planetoid.invalid/data')
    with pytest.raises(DataError) as info:
        load_planetoid('pubmed', tmp_path)
    message = str(info.value)
    assert str(tmp_path / 'PubMed' / 'raw') in message
    assert 'ind.pubmed.{x,y,tx,ty,allx,ally,graph,test.index}' in message
    assert '../shared/datasets/PubMed' in message
    assert isinstance(info.value, ValueError)


def test_corrupt_data(data_root, tmp_path):
    raw = tmp_path / 'Cora' / 'raw'
    raw.mkdir(parents=True)
    for path in raw_paths('cora', data_root):
        (raw / os.path.basename(path)).write_bytes(open(path, 'rb').read())
    x_path = raw / 'ind.cora.x'
    x_path.write_bytes(x_path.read_bytes()[:1000])  # truncated
    with pytest.raises(DataError) as info:
        load_planetoid('cora', tmp_path)
    message = str(info.value)
    assert 'corrupt or truncated' in message and str(raw) in message
    assert 'UnpicklingError' in message


def test_features_with_nan(tmp_path):
    raw = tmp_path / 'PubMed' / 'raw'
    write_fake_planetoid(raw, 'pubmed')
    with open(raw / 'ind.pubmed.allx', 'rb') as f:
        allx = pickle.load(f).tolil()
    allx[3, 0] = np.nan
    with open(raw / 'ind.pubmed.allx', 'wb') as f:
        pickle.dump(allx.tocsr(), f)
    with pytest.raises(DataError, match='NaN or inf'):
        load_planetoid('pubmed', tmp_path)

# ogbn-arxiv ##################################################################


@pytest.fixture
def arxiv_root(tmp_path) -> Path:
    write_fake_arxiv(tmp_path)
    return tmp_path


def read_index(path: Path) -> np.ndarray:
    with gzip.open(path, 'rt') as f:
        return np.loadtxt(f, dtype=np.int64, delimiter=',', ndmin=1)


def test_ogbn_arxiv_offline(arxiv_root, monkeypatch):
    def no_input(*args):
        raise AssertionError('the loader asked for input')

    monkeypatch.setattr('builtins.input', no_input)
    graph = load_dataset('OGBN-ArXiv', arxiv_root)
    folder = arxiv_root / 'ogbn_arxiv'
    assert (folder / 'processed' / 'geometric_data_processed.pt').is_file()
    assert graph.num_classes == 40 and graph.x.shape == (600, 16)
    assert graph.y.shape == (600, ) and graph.y.dtype == torch.long
    assert graph.is_undirected()
    edges = read_index(folder / 'raw' / 'edge.csv.gz').reshape(-1, 2)
    assert graph.num_edges == len({(int(i), int(j)) for i, j in edges} |
                                  {(int(j), int(i)) for i, j in edges})
    masks = [graph.train_mask, graph.val_mask, graph.test_mask]
    for mask, name in zip(masks, ['train', 'valid', 'test']):
        index = read_index(folder / 'split' / 'time' / f'{name}.csv.gz')
        assert mask.nonzero().view(-1).tolist() == sorted(index.tolist())
    assert int(sum(masks).max()) == 1  # disjoint
    again = load_dataset('ogbn-arxiv', arxiv_root)  # processed
    assert torch.equal(again.edge_index, graph.edge_index)


def cli(*args) -> subprocess.CompletedProcess:
    r"""The CLI with an open, silent stdin: a prompt would block it."""
    return subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), *map(str, args)],
        stdin=subprocess.PIPE, capture_output=True, text=True, cwd=REPO,
        timeout=HANG_SECONDS)


def test_arxiv_without_release_file_fails_fast(arxiv_root, tmp_path):
    (arxiv_root / 'ogbn_arxiv' / 'RELEASE_v1.txt').unlink()
    with pytest.raises(DataError, match='RELEASE_v1.txt'):
        load_dataset('ogbn-arxiv', arxiv_root)
    result = cli('--dataset', 'ogbn-arxiv', '--root', arxiv_root, '--out',
                 tmp_path / 'r.json')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.count('\n') == 1
    assert result.stderr.startswith('error: ogbn-arxiv:')
    assert 'delete the folder' in result.stderr
    assert not (tmp_path / 'r.json').exists()


def test_arxiv_missing_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(ogb, 'ARXIV_URL', 'http://ogb.invalid/arxiv.zip')
    with pytest.raises(DataError) as info:
        load_dataset('ogbn-arxiv', tmp_path)
    message = str(info.value)
    assert f"'{tmp_path / 'ogbn_arxiv'}'" in message
    assert '9 of the 9 files are missing' in message
    assert 'internet' in message
    assert not (tmp_path / 'ogbn_arxiv').exists()


@pytest.mark.parametrize('name', ['raw/edge.csv.gz', 'raw/node-feat.csv.gz',
                                  'split/time/valid.csv.gz'])
def test_arxiv_corrupt_file(arxiv_root, name):
    path = arxiv_root / 'ogbn_arxiv' / name
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(DataError) as info:
        load_dataset('ogbn-arxiv', arxiv_root)
    message = str(info.value)
    assert f"'{path}' is corrupt or truncated" in message


def test_arxiv_features_with_nan(tmp_path):
    folder = write_fake_arxiv(tmp_path)
    path = folder / 'raw' / 'node-feat.csv.gz'
    with gzip.open(path, 'rt') as f:
        lines = f.read().splitlines()
    lines[5] = 'nan,' + lines[5].split(',', 1)[1]
    with gzip.open(path, 'wt') as f:
        f.write('\n'.join(lines) + '\n')
    with pytest.raises(DataError,
                       match=r'NaN or inf \(first: node 5'):
        load_dataset('ogbn-arxiv', tmp_path)


def test_arxiv_unreadable_processed_file(arxiv_root):
    load_dataset('ogbn-arxiv', arxiv_root)
    processed = arxiv_root / 'ogbn_arxiv' / 'processed'
    path = processed / 'geometric_data_processed.pt'
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError) as info:
        load_dataset('ogbn-arxiv', arxiv_root)
    assert f"Delete '{processed}'" in str(info.value)
