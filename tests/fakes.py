r"""Generated data sets in the exact on-disk layouts of the real ones, so
that PyG's and OGB's own loaders read them offline.

ogbn-arxiv:

    <root>/ogbn_arxiv/RELEASE_v1.txt
    <root>/ogbn_arxiv/raw/{edge,node-feat,node-label,node_year,
                           num-node-list,num-edge-list}.csv.gz
    <root>/ogbn_arxiv/split/time/{train,valid,test}.csv.gz

Like arXiv's citation graph: directed edges (the loader makes them
undirected), a publication year per node, the time split (train before
2018, validation 2018, test 2019), labels out of 40 classes of which the
graph uses :obj:`num_classes`, and homophilous edges (most cite the same
class).

Also a stand-in for a study's runner (:func:`device_runner`) that a
spawned worker process can import."""
from pathlib import Path

import pickle

import numpy as np
import pandas as pd
import scipy.sparse as sp


def write_fake_arxiv(root: Path, num_nodes: int = 600, num_classes: int = 4,
                     num_features: int = 16, avg_degree: int = 6,
                     homophily: float = 0.8, signal: float = 0.6,
                     seed: int = 0) -> Path:
    r"""Writes the graph under :obj:`root` and returns
    :obj:`root / "ogbn_arxiv"`."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / 'ogbn_arxiv'
    raw, split = folder / 'raw', folder / 'split' / 'time'
    raw.mkdir(parents=True)
    split.mkdir(parents=True)

    y = rng.integers(num_classes, size=num_nodes)
    means = rng.normal(size=(num_classes, num_features))
    x = signal * means[y] + rng.normal(size=(num_nodes, num_features))
    year = rng.choice([2015, 2016, 2017, 2018, 2019], size=num_nodes,
                      p=[0.3, 0.2, 0.2, 0.15, 0.15])

    src = np.repeat(np.arange(num_nodes), avg_degree // 2)
    same = rng.random(src.size) < homophily
    by_class = [np.flatnonzero(y == c) for c in range(num_classes)]
    dst = np.where(same, [rng.choice(by_class[y[s]]) for s in src],
                   rng.integers(num_nodes, size=src.size))
    keep = src != dst
    edge = np.stack([src[keep], dst[keep]], axis=1)

    def write(path: Path, array: np.ndarray):
        pd.DataFrame(array).to_csv(path, header=False, index=False,
                                   compression='gzip')

    write(raw / 'edge.csv.gz', edge)
    write(raw / 'node-feat.csv.gz', x.astype(np.float32))
    write(raw / 'node-label.csv.gz', y[:, None])
    write(raw / 'node_year.csv.gz', year[:, None])
    write(raw / 'num-node-list.csv.gz', np.array([[num_nodes]]))
    write(raw / 'num-edge-list.csv.gz', np.array([[len(edge)]]))
    write(split / 'train.csv.gz', np.flatnonzero(year < 2018)[:, None])
    write(split / 'valid.csv.gz', np.flatnonzero(year == 2018)[:, None])
    write(split / 'test.csv.gz', np.flatnonzero(year == 2019)[:, None])
    (folder / 'RELEASE_v1.txt').write_text('ogbn-arxiv (generated)\n')
    return folder


def write_fake_planetoid(raw_dir: Path, prefix: str, num_classes: int = 3,
                         num_features: int = 12, num_test: int = 100):
    r"""Tiny Planetoid raw files as `torch_geometric.io.read_planetoid_data`
    reads them: `x`, `tx`, `allx` pickled sparse matrices, `y`, `ty`, `ally`
    pickled one-hot arrays, `graph` a pickled dict of neighbour lists and
    `test.index` the test node ids as text, in the order of `tx`."""
    rng = np.random.default_rng(0)
    num_train = 5 * num_classes
    num_all = num_train + 500 + 20  # train, 500 validation, unlabelled
    num_nodes = num_all + num_test
    y = rng.integers(num_classes, size=num_nodes)
    y[:num_train] = np.repeat(np.arange(num_classes), 5)
    x = 0.3 * rng.random((num_nodes, num_features))
    x[np.arange(num_nodes), y] += 1.0  # One informative feature per class.
    onehot = np.eye(num_classes)[y]
    test_index = num_all + rng.permutation(num_test)

    graph = {node: [] for node in range(num_nodes)}
    for node in range(num_nodes):
        for other in rng.choice(np.flatnonzero(y == y[node]), size=2):
            if other != node:
                graph[node].append(int(other))
                graph[int(other)].append(node)

    raw_dir.mkdir(parents=True)
    items = dict(x=sp.csr_matrix(x[:num_train]), y=onehot[:num_train],
                 allx=sp.csr_matrix(x[:num_all]), ally=onehot[:num_all],
                 tx=sp.csr_matrix(x[test_index]), ty=onehot[test_index],
                 graph=graph)
    for name, item in items.items():
        with open(raw_dir / f'ind.{prefix}.{name}', 'wb') as f:
            pickle.dump(item, f)
    np.savetxt(raw_dir / f'ind.{prefix}.test.index', test_index, fmt='%d')


def device_runner(task, dataset, root, epochs, patience, base=None,
                  device='cpu'):
    r"""A study runner (see :func:`study.run_task`) that trains nothing and
    reports the device it was given."""
    return dict(val_acc=0.5, device=device)
