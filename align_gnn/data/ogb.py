r"""OGB's ogbn-arxiv with its time split, made undirected, read by OGB's
:class:`~ogb.nodeproppred.PygNodePropPredDataset` from the data root."""
import gzip
import os.path as osp
import zlib
from functools import partial
from typing import List, Optional, Tuple

import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage
from torch_geometric.utils import index_to_mask

from align_gnn.data.utils import (
    DataError,
    _check_download_host,
    _check_finite,
    _first_line,
    data_root,
)

NAMES = {'ogbn-arxiv': 'ogbn-arxiv'}
ARXIV_FILES = (
    'raw/edge.csv.gz', 'raw/node-feat.csv.gz', 'raw/node-label.csv.gz',
    'raw/node_year.csv.gz', 'raw/num-node-list.csv.gz',
    'raw/num-edge-list.csv.gz', 'split/time/train.csv.gz',
    'split/time/valid.csv.gz', 'split/time/test.csv.gz')
ARXIV_RELEASE = 'RELEASE_v1.txt'
ARXIV_URL = 'http://snap.stanford.edu/ogb/data/nodeproppred/arxiv.zip'

# ogb 1.3.6 reads its processed file with a plain `torch.load`, which
# torch >= 2.6 restricts to allow-listed classes; allow PyG's data classes
# (and nothing else):
torch.serialization.add_safe_globals(
    [DataEdgeAttr, DataTensorAttr, GlobalStorage])


def arxiv_folder(root: Optional[str] = None) -> str:
    r"""The folder OGB reads ogbn-arxiv from: :obj:`<root>/ogbn_arxiv` (or
    :obj:`<root>/ogbn_arxiv_pyg`, if that exists, as OGB does)."""
    folder = osp.join(data_root(root), 'ogbn_arxiv')
    return folder + '_pyg' if osp.exists(folder + '_pyg') else folder


def load_ogbn_arxiv(root: Optional[str] = None) -> Tuple[Data, int]:
    r"""Loads ogbn-arxiv with OGB's
    :class:`~ogb.nodeproppred.PygNodePropPredDataset` from
    :obj:`<root>/ogbn_arxiv/` (downloaded if missing and the download host
    answers) and returns the graph, made undirected, with boolean
    :obj:`train_mask`, :obj:`val_mask` and :obj:`test_mask` from OGB's
    time split and labels :obj:`y` of shape :obj:`(N,)`, and the number of
    classes (40).

    Raises :class:`DataError` where OGB would stop to ask on stdin (a folder
    without :obj:`RELEASE_v1.txt`), or for missing, corrupt or truncated
    files.
    """
    from ogb.nodeproppred import PygNodePropPredDataset

    root, folder = data_root(root), arxiv_folder(root)
    if osp.isdir(folder) and not osp.isfile(osp.join(folder, ARXIV_RELEASE)):
        raise DataError(
            f"ogbn-arxiv: '{folder}' has no {ARXIV_RELEASE}, so it is "
            f"incomplete or from another OGB release (and OGB would stop to "
            f"ask on stdin); delete the folder to download it again, or put "
            f"a complete copy there")
    paths = [osp.join(folder, name) for name in ARXIV_FILES]
    processed = osp.join(folder, 'processed', 'geometric_data_processed.pt')
    missing = [path for path in paths if not osp.isfile(path)]
    if missing and not osp.isfile(processed):
        _check_download_host(ARXIV_URL, partial(
            _arxiv_missing_message, folder, missing))
    # What OGB reads now: the split, and the raw files if not processed yet.
    _check_gzip([path for path in paths if osp.isfile(path) and (
        'split' in path or not osp.isfile(processed))], folder)
    try:
        dataset = PygNodePropPredDataset('ogbn-arxiv', root)
        split = dataset.get_idx_split()
        data = dataset[0]
    except Exception as err:
        raise DataError(
            f"ogbn-arxiv: reading '{folder}' failed ({type(err).__name__}: "
            f"{_first_line(err)}): a file is missing, corrupt or truncated, "
            f"or '{osp.dirname(processed)}' is stale. Delete "
            f"'{osp.dirname(processed)}' and, if that does not help, delete "
            f"'{folder}' to download it again") from err
    _check_finite('ogbn-arxiv', data.x, osp.join(folder, 'raw'))
    num_nodes = data.num_nodes
    data = T.ToUndirected()(Data(x=data.x, edge_index=data.edge_index,
                                 y=data.y.view(-1), num_nodes=num_nodes))
    for mask, key in (('train_mask', 'train'), ('val_mask', 'valid'),
                      ('test_mask', 'test')):
        data[mask] = index_to_mask(split[key], num_nodes)
    return data, dataset.num_classes


def load_graph(name: str, root: Optional[str] = None) -> Data:
    r"""The graph of :func:`load_ogbn_arxiv` with its number of classes as
    :obj:`num_classes` (see :func:`~align_gnn.data.load_dataset`)."""
    data, num_classes = load_ogbn_arxiv(root)
    data.num_classes = num_classes
    return data


def _arxiv_missing_message(folder: str, missing: List[str],
                           err: Exception) -> str:
    return (f"ogbn-arxiv: {len(missing)} of the {len(ARXIV_FILES)} files "
            f"are missing in '{folder}' (first: "
            f"'{osp.relpath(missing[0], folder)}') and downloading them "
            f"failed ({type(err).__name__}: {err}). Run once with internet "
            f"access (OGB downloads {ARXIV_URL}) or copy a complete "
            f"ogbn_arxiv/ folder into the data root.")


def _check_gzip(paths: List[str], folder: str):
    # Names the file that OGB (or pandas) would fail on without naming it.
    for path in paths:
        try:
            with gzip.open(path) as f:
                while f.read(1 << 24):
                    pass
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"ogbn-arxiv: '{path}' is corrupt or truncated "
                f"({type(err).__name__}: {err}); delete '{folder}' to "
                f"download it again, or copy that file again") from err
