r"""Planetoid (Cora, CiteSeer, PubMed) with its public split, read by PyG's
:class:`~torch_geometric.datasets.Planetoid` from the data root."""
import os.path as osp
from functools import partial
from typing import List, Optional

import torch_geometric.transforms as T
from torch_geometric.data import Data
from torch_geometric.datasets import Planetoid

from align_gnn.data.utils import (
    DataError,
    _check_download_host,
    _check_finite,
    data_root,
    is_read_only,
    load_processed,
    loader_error,
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
    PyG's :obj:`processed/` is rebuilt whenever it was not built from the
    raw files there (see :func:`~align_gnn.data.utils.load_processed`).

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
        dataset = load_processed(
            name, paths, processed_dir(name, root),
            lambda rebuild: Planetoid(root, name, split='public',
                                      transform=T.NormalizeFeatures(),
                                      force_reload=rebuild))
    except DataError:
        raise
    except Exception as err:
        if all(osp.isfile(path) for path in paths) or is_read_only(err):
            raise loader_error(name, osp.join(root, name), err,
                               _damaged(name, paths)) from err
        raise DataError(_missing_message(name, paths, missing, err)) from err
    _check_finite(name, dataset._data.x, osp.dirname(paths[0]))
    return dataset


def raw_files(name: str, root: Optional[str] = None) -> List[str]:
    r"""The raw files of :obj:`name` (see :func:`raw_paths`)."""
    return raw_paths(name, root)


def processed_dir(name: str, root: Optional[str] = None) -> str:
    r"""The folder PyG writes what it derives from :func:`raw_files` to:
    :obj:`<root>/<Name>/processed`."""
    return osp.join(data_root(root), _planetoid_name(name), 'processed')


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


def _damaged(name: str, paths: List[str]) -> str:
    raw_dir = osp.dirname(paths[0])
    processed = osp.join(osp.dirname(raw_dir), 'processed')
    return (f"a raw file in '{raw_dir}' is corrupt or truncated, or "
            f"'{processed}' is damaged. Delete '{processed}' and, if that "
            f"does not help, copy the raw files again (e.g. from "
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
