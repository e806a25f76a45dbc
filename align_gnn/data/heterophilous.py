r"""The heterophilous graphs of the `"A Critical Look at the Evaluation of
GNNs under Heterophily: Are We Really Making Progress?"
<https://arxiv.org/abs/2302.11640>`_ paper (Platonov et al., ICLR 2023):
minesweeper and tolokers, read by PyG's
:class:`~torch_geometric.datasets.HeterophilousGraphDataset`, and the
filtered chameleon and squirrel (duplicate nodes removed; no PyG class),
read with numpy from the same :obj:`.npz` layout.

Each comes with ten fixed 50/25/25 splits: the loaded graph holds masks of
shape :obj:`(N, 10)` and run :obj:`i` of an experiment uses split :obj:`i`
(see :func:`select_split`). Minesweeper and tolokers have two classes and
are scored by ROC-AUC (:obj:`data.metric == "roc_auc"`), the others by
accuracy."""
import copy
import os.path as osp
from typing import List, Optional

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from align_gnn.data.utils import (
    DataError,
    _check_finite,
    data_root,
    load_processed,
    loader_error,
)

NAMES = {
    'minesweeper': 'minesweeper',
    'tolokers': 'tolokers',
    'chameleon-filtered': 'chameleon-filtered',
    'squirrel-filtered': 'squirrel-filtered',
}
PYG_NAMES = ('minesweeper', 'tolokers')  # HeterophilousGraphDataset's
ROC_AUC = ('minesweeper', 'tolokers')  # binary: scored by ROC-AUC
NUM_SPLITS = 10
KEYS = ('node_features', 'node_labels', 'edges', 'train_masks', 'val_masks',
        'test_masks')


def folder(name: str) -> str:
    r"""The folder of :obj:`name` under the data root, e.g.
    :obj:`"chameleon_filtered"` (PyG's naming: lower case, :obj:`-` to
    :obj:`_`)."""
    return name.lower().replace('-', '_')


def raw_path(name: str, root: Optional[str] = None) -> str:
    r""":obj:`<root>/<folder>/raw/<folder>.npz`, the file that is read."""
    name = folder(name)
    return osp.join(data_root(root), name, 'raw', f'{name}.npz')


def raw_files(name: str, root: Optional[str] = None) -> List[str]:
    r"""The raw files of :obj:`name`: :func:`raw_path`."""
    return [raw_path(name, root)]


def processed_dir(name: str, root: Optional[str] = None) -> Optional[str]:
    r"""The folder PyG writes what it derives from :func:`raw_files` to
    (minesweeper and tolokers: :obj:`<root>/<folder>/processed`), or
    :obj:`None` where the raw file is read as it is (the filtered
    chameleon and squirrel)."""
    if name.lower() not in PYG_NAMES:
        return None
    return osp.join(data_root(root), folder(name), 'processed')


def metric(name: str) -> str:
    r""":obj:`"roc_auc"` for minesweeper and tolokers, else :obj:`"acc"`."""
    return 'roc_auc' if name.lower() in ROC_AUC else 'acc'


def load_graph(name: str, root: Optional[str] = None) -> Data:
    r"""The graph of :obj:`name` (one of :data:`NAMES`), made undirected,
    with float features :obj:`x`, labels :obj:`y`, boolean
    :obj:`train_mask`, :obj:`val_mask`, :obj:`test_mask` of shape
    :obj:`(N, 10)` (one column per fixed split), :obj:`num_classes` and
    :obj:`metric` (see :func:`metric`). Raises :class:`DataError` naming
    the folder and how to fill it if the file is missing or unreadable (no
    download is attempted)."""
    name = name.lower()
    if name not in NAMES:
        raise ValueError(f"Unknown heterophilous data set {name!r} (choose "
                         f"from {', '.join(NAMES)})")
    path, root = raw_path(name, root), data_root(root)
    if not osp.isfile(path):
        raise DataError(
            f"{name}: '{path}' is missing; copy the data set there (e.g. "
            f"`cp -r ../shared/datasets/{folder(name)} {root}/`) or point "
            f"the data root (--root or ALIGN_GNN_DATA) at a folder that "
            f"holds {folder(name)}/raw/{folder(name)}.npz")
    try:
        if name in PYG_NAMES:
            from torch_geometric.datasets import HeterophilousGraphDataset
            data = load_processed(
                name, [path], processed_dir(name, root),
                lambda rebuild: HeterophilousGraphDataset(
                    root, folder(name), force_reload=rebuild))[0]
            data = Data(x=data.x.float(), edge_index=data.edge_index,
                        y=data.y.long(), train_mask=data.train_mask.bool(),
                        val_mask=data.val_mask.bool(),
                        test_mask=data.test_mask.bool())
        else:
            data = _read_npz(path)
    except DataError:
        raise
    except Exception as err:
        processed = osp.join(data_root(root), folder(name), 'processed')
        raise loader_error(
            name, osp.join(root, folder(name)), err,
            f"'{path}' is corrupt or truncated, or '{processed}' is damaged: "
            f"copy it again from ../shared/datasets/{folder(name)} (and "
            f"delete '{processed}' if it exists)") from err
    _check_finite(name, data.x, osp.dirname(path))
    data.num_classes = int(data.y.max()) + 1
    data.metric = metric(name)
    return data


def _read_npz(path: str) -> Data:
    with np.load(path) as raw:
        missing = [key for key in KEYS if key not in raw.files]
        if missing:
            raise DataError(f"'{path}' lacks the key(s) "
                            f"{', '.join(missing)}; copy it again")
        x = torch.from_numpy(raw['node_features']).float()
        y = torch.from_numpy(raw['node_labels']).long()
        edge_index = torch.from_numpy(raw['edges']).t().contiguous().long()
        masks = {key: torch.from_numpy(raw[f'{key}s']).t().contiguous().bool()
                 for key in ('train_mask', 'val_mask', 'test_mask')}
    edge_index = to_undirected(edge_index, num_nodes=x.size(0))
    return Data(x=x, edge_index=edge_index, y=y, **masks)


def num_splits(data: Data) -> int:
    r"""The number of fixed splits of :obj:`data` (masks of shape
    :obj:`(N, S)`), or :obj:`0` for a graph with one split (masks of shape
    :obj:`(N,)`)."""
    mask = data.train_mask
    return mask.size(1) if mask.dim() == 2 else 0


def select_split(data: Data, index: int) -> Data:
    r"""A shallow copy of :obj:`data` whose masks are those of its fixed
    split :obj:`index` (shape :obj:`(N,)`); :obj:`data` itself if it has
    one split only. Raises :class:`ValueError` beyond the last split."""
    splits = num_splits(data)
    if splits == 0:
        return data
    if not 0 <= index < splits:
        raise ValueError(f"run {index + 1} needs split {index}, but the data "
                         f"set has {splits} fixed splits: use at most "
                         f"--runs {splits}")
    data = copy.copy(data)
    for key in ('train_mask', 'val_mask', 'test_mask'):
        data[key] = data[key][:, index].contiguous()
    return data
