r"""OGB's ogbn-arxiv with its time split, made undirected, read by OGB's
:class:`~ogb.nodeproppred.PygNodePropPredDataset` from the data root."""
import gzip
import os
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
    data_root,
    load_processed,
    loader_error,
)

NAMES = {'ogbn-arxiv': 'ogbn-arxiv'}
ARXIV_FILES = (
    'raw/edge.csv.gz', 'raw/node-feat.csv.gz', 'raw/node-label.csv.gz',
    'raw/node_year.csv.gz', 'raw/num-node-list.csv.gz',
    'raw/num-edge-list.csv.gz', 'split/time/train.csv.gz',
    'split/time/valid.csv.gz', 'split/time/test.csv.gz')
ARXIV_RELEASE = 'RELEASE_v1.txt'
PROCESSED_FILE = 'geometric_data_processed.pt'  # OGB's
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
    processed = osp.join(processed_dir('ogbn-arxiv', root), PROCESSED_FILE)
    missing = [path for path in paths if not osp.isfile(path)]
    if missing:
        _check_download_host(ARXIV_URL, partial(
            _arxiv_missing_message, folder, missing))

    def load(rebuild: bool):
        if rebuild and osp.isfile(processed):  # OGB processes it again
            os.unlink(processed)
        # What OGB reads now: the split, and the raw files if processing.
        _check_gzip([path for path in paths if osp.isfile(path) and (
            'split' in path or not osp.isfile(processed))], folder)
        return PygNodePropPredDataset('ogbn-arxiv', root)

    try:
        dataset = load_processed('ogbn-arxiv', raw_files('ogbn-arxiv', root),
                                 osp.dirname(processed), load)
        split = dataset.get_idx_split()
        data = dataset[0]
    except DataError:
        raise
    except Exception as err:
        raise loader_error(
            'ogbn-arxiv', folder, err,
            f"a file is missing, corrupt or truncated, or "
            f"'{osp.dirname(processed)}' is damaged. Delete "
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


def raw_files(name: str, root: Optional[str] = None) -> List[str]:
    r"""The raw files of ogbn-arxiv that OGB processes (those under
    :obj:`raw/` of :data:`ARXIV_FILES`; the split is read as it is)."""
    return [osp.join(arxiv_folder(root), name) for name in ARXIV_FILES
            if name.startswith('raw/')]


def processed_dir(name: str, root: Optional[str] = None) -> str:
    r"""The folder OGB writes what it derives from :func:`raw_files` to:
    :obj:`<arxiv_folder>/processed`."""
    return osp.join(arxiv_folder(root), 'processed')


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
