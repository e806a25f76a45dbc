r"""Planetoid (Cora, CiteSeer, PubMed) with its public split, read by PyG's
:class:`~torch_geometric.datasets.Planetoid` from the data root."""
import errno
import os.path as osp
import pickle
import warnings
from functools import partial
from typing import Dict, List, Optional

import torch_geometric.transforms as T
from torch_geometric.data import Data
from torch_geometric.datasets import Planetoid

from align_gnn.data.utils import (
    DataError,
    _check_download_host,
    _check_finite,
    data_root,
)

NAMES = {'cora': 'Cora', 'citeseer': 'CiteSeer', 'pubmed': 'PubMed'}
PLANETOID = tuple(NAMES)
RAW_NAMES = ('x', 'y', 'tx', 'ty', 'allx', 'ally', 'graph', 'test.index')


def raw_paths(name: str, root: Optional[str] = None) -> List[str]:
    r"""The raw files that :class:`~torch_geometric.datasets.Planetoid` reads
    for the data set :obj:`name`, e.g.
    :obj:`<root>/Cora/raw/ind.cora.{x,y,tx,ty,allx,ally,graph,test.index}`."""
    name = _planetoid_name(name)
    raw_dir = osp.join(data_root(root), name, 'raw')
    prefix = f'ind.{name.lower()}'
    return [osp.join(raw_dir, f'{prefix}.{raw}') for raw in RAW_NAMES]


def load_planetoid(name: str, root: Optional[str] = None) -> Planetoid:
    r"""Loads :obj:`"cora"`, :obj:`"citeseer"` or :obj:`"pubmed"`
    (case-insensitive) with its public split and row-normalized features.
    Missing raw files are downloaded; if that fails, raises
    :class:`DataError` saying where the files belong and how to get them.

    Args:
        name (str): The name of the data set.
        root (str, optional): The data root (see :func:`data_root`).
            (default: :obj:`None`)
    """
    name, root = _planetoid_name(name), data_root(root)
    paths = raw_paths(name, root)
    missing = [path for path in paths if not osp.isfile(path)]
    if missing:
        _check_download_host(Planetoid.url, partial(
            _missing_message, name, paths, missing))
    try:
        dataset = Planetoid(root, name, split='public',
                            transform=T.NormalizeFeatures())
    except Exception as err:
        if _read_only(err):
            raise DataError(_read_only_message(name, paths, err)) from err
        if all(osp.isfile(path) for path in paths):
            raise DataError(_unreadable_message(name, paths, err)) from err
        raise DataError(_missing_message(name, paths, missing, err)) from err
    _check_finite(name, dataset._data.x, osp.dirname(paths[0]))
    _check_processed(name, dataset, paths)
    return dataset


def raw_counts(paths: List[str]) -> Dict[str, int]:
    r"""The numbers of nodes, features and classes that the raw files
    :obj:`paths` (see :func:`raw_paths`) describe, read from their headers
    as PyG's reader does (CiteSeer's isolated test nodes included)."""
    def load(path):
        with open(path, 'rb') as f, warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return pickle.load(f, encoding='latin1')

    files = dict(zip(RAW_NAMES, paths))
    allx, tx, y = load(files['allx']), load(files['tx']), load(files['y'])
    with open(files['test.index']) as f:
        test = [int(line) for line in f if line.strip()]
    tests = max(tx.shape[0], max(test) - min(test) + 1)
    return dict(nodes=allx.shape[0] + tests, features=allx.shape[1],
                classes=y.shape[1])


def _check_processed(name: str, dataset: Planetoid, paths: List[str]):
    # PyG reads processed/ without comparing it to raw/: another data set's
    # file (or a stale one) would be trained on under this name.
    try:
        expected = raw_counts(paths)
    except Exception:  # raw files PyG did not need: nothing to compare
        return
    found = dict(nodes=dataset._data.num_nodes,
                 features=dataset._data.x.size(-1),
                 classes=dataset.num_classes)
    if found != expected:
        differ = '; '.join(f'{key}: {found[key]} there, {expected[key]} '
                           f'in the raw files' for key in found
                           if found[key] != expected[key])
        raise DataError(
            f"{name}: '{dataset.processed_dir}' does not match the raw files "
            f"in '{osp.dirname(paths[0])}' ({differ}): it is another data "
            f"set's or stale, and is not used. Delete "
            f"'{dataset.processed_dir}' to rebuild it from the raw files.")


def _read_only(err: BaseException) -> bool:
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.EACCES,
                                                      errno.EPERM,
                                                      errno.EROFS):
            return True
        err = err.__cause__ or err.__context__
    return False


def _read_only_message(name: str, paths: List[str], err: Exception) -> str:
    folder = osp.dirname(osp.dirname(paths[0]))
    return (f"{name}: the data folder '{folder}' is read-only ("
            f"{type(err).__name__}: {err}); PyG writes "
            f"'{osp.join(folder, 'processed')}' beside 'raw' the first time. "
            f"Copy {name}/raw to a writable data root (--root or "
            f"ALIGN_GNN_DATA), or run once where this one is writable.")


def load_graph(name: str, root: Optional[str] = None) -> Data:
    r"""The graph of :func:`load_planetoid` with its number of classes as
    :obj:`num_classes` (see :func:`~align_gnn.data.load_dataset`)."""
    dataset = load_planetoid(name, root)
    data = dataset[0]
    data.num_classes = dataset.num_classes
    return data


def _planetoid_name(name: str) -> str:
    if name.lower() not in PLANETOID:
        raise ValueError(f"Unknown Planetoid data set {name!r} (choose from "
                         f"{', '.join(PLANETOID)})")
    return NAMES[name.lower()]


def _unreadable_message(name: str, paths: List[str], err: Exception) -> str:
    raw_dir = osp.dirname(paths[0])
    processed_dir = osp.join(osp.dirname(raw_dir), 'processed')
    return (f"{name}: reading the raw files in '{raw_dir}' failed "
            f"({type(err).__name__}: {err}): one is corrupt or truncated, "
            f"or '{processed_dir}' is stale. Delete '{processed_dir}' and, "
            f"if that does not help, copy the raw files again (e.g. from "
            f"../shared/datasets/{name}/raw).")


def _missing_message(name: str, paths: List[str], missing: List[str],
                     err: Exception) -> str:
    raw_dir = osp.dirname(paths[0])
    expected = f"ind.{name.lower()}.{{{','.join(RAW_NAMES)}}}"
    return (f"{name}: {len(missing)} of the {len(paths)} raw files are "
            f"missing in '{raw_dir}' (expected {expected}) and downloading "
            f"them failed ({type(err).__name__}: {err}). "
            f"Copy them there (e.g. `cp -r ../shared/datasets/{name} "
            f"{osp.dirname(osp.dirname(raw_dir))}/`), point the data root "
            f"(--root or ALIGN_GNN_DATA) at a folder that holds "
            f"{name}/raw/, or run once with internet access.")
