r"""Data sets: Planetoid (Cora, CiteSeer, PubMed; public split) and OGB's
ogbn-arxiv (time split, made undirected), read by PyG's and OGB's own loaders
from the data root, with one-line :class:`DataError` messages for what is
missing or damaged."""
import copy
import gzip
import logging
import os
import os.path as osp
import socket
import zlib
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import torch
from torch import Tensor

import torch_geometric.transforms as T
from torch_geometric.data import Data
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage
from torch_geometric.datasets import Planetoid
from torch_geometric.utils import index_to_mask

from align_gnn.conv import quiet_sparse_csr

DATASETS = {
    'cora': 'Cora',
    'citeseer': 'CiteSeer',
    'pubmed': 'PubMed',
    'ogbn-arxiv': 'ogbn-arxiv',
}
PLANETOID = ('cora', 'citeseer', 'pubmed')
FEATURES = ('dense', 'sparse')
RAW_NAMES = ('x', 'y', 'tx', 'ty', 'allx', 'ally', 'graph', 'test.index')
ARXIV_FILES = (
    'raw/edge.csv.gz', 'raw/node-feat.csv.gz', 'raw/node-label.csv.gz',
    'raw/node_year.csv.gz', 'raw/num-node-list.csv.gz',
    'raw/num-edge-list.csv.gz', 'split/time/train.csv.gz',
    'split/time/valid.csv.gz', 'split/time/test.csv.gz')
ARXIV_RELEASE = 'RELEASE_v1.txt'
ARXIV_URL = 'http://snap.stanford.edu/ogb/data/nodeproppred/arxiv.zip'
DOWNLOAD_TIMEOUT = 5.0  # seconds to wait for the download host to answer

# ogb 1.3.6 reads its processed file with a plain `torch.load`, which
# torch >= 2.6 restricts to allow-listed classes; allow PyG's data classes
# (and nothing else):
torch.serialization.add_safe_globals(
    [DataEdgeAttr, DataTensorAttr, GlobalStorage])


class DataError(ValueError):
    r"""Raised when a data set is neither on disk nor downloadable."""


# Data ########################################################################


def data_root(root: Optional[str] = None) -> str:
    r"""The data root: :obj:`root`, else the environment variable
    :obj:`ALIGN_GNN_DATA`, else :obj:`"datasets"` (relative to the current
    directory)."""
    return root or os.environ.get('ALIGN_GNN_DATA') or 'datasets'


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
        if all(osp.isfile(path) for path in paths):
            raise DataError(_unreadable_message(name, paths, err)) from err
        raise DataError(_missing_message(name, paths, missing, err)) from err
    _check_finite(name, dataset._data.x, osp.dirname(paths[0]))
    return dataset


def _check_finite(name: str, x: Tensor, raw_dir: str):
    if not torch.isfinite(x).all():
        rows = (~torch.isfinite(x)).any(dim=-1).nonzero().view(-1)
        raise DataError(
            f"{name}: the features of {rows.numel()} node(s) contain NaN or "
            f"inf (first: node {int(rows[0])}); the raw files in "
            f"'{raw_dir}' are damaged: copy them again")


def _require(condition: bool, name: str, requirement: str, value):
    if not condition:
        raise ValueError(f"'{name}' must be {requirement} (got {value!r})")


def _planetoid_name(name: str) -> str:
    if name.lower() not in PLANETOID:
        raise ValueError(f"Unknown Planetoid data set {name!r} (choose from "
                         f"{', '.join(PLANETOID)})")
    return DATASETS[name.lower()]


def dataset_name(name: str) -> str:
    r"""The display name of a data set of :data:`DATASETS` (e.g.
    :obj:`"Cora"`) or the path of a graph file (see :func:`is_graph_file`);
    raises :class:`ValueError` for anything else."""
    if is_graph_file(name):
        return name
    if name.lower() not in DATASETS:
        raise ValueError(f"Unknown data set {name!r} (choose from "
                         f"{', '.join(DATASETS)}, or give the path of a "
                         f"GraphML, GML or edge list file)")
    return DATASETS[name.lower()]


def _check_download_host(url: str, message: Callable[[Exception], str]):
    # Downloads wait minutes on a silent network; fail fast instead:
    url = urlparse(url)
    port = url.port or (443 if url.scheme == 'https' else 80)
    try:
        socket.create_connection((url.hostname, port),
                                 timeout=DOWNLOAD_TIMEOUT).close()
    except OSError as err:
        raise DataError(message(err)) from err


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


def prepare_data(data: Data, features: str = 'sparse') -> Data:
    r"""A shallow copy of :obj:`data` whose node features are a dense tensor
    (:obj:`"dense"`) or a sparse CSR tensor (:obj:`"sparse"`; Planetoid's
    bag-of-words features are 98-99% zeros)."""
    _require(features in FEATURES, 'features', f'one of {FEATURES}',
             features)
    data = copy.copy(data)
    if features == 'sparse':
        with quiet_sparse_csr():
            data.x = data.x.to_sparse_csr()
    return data


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


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [''])[0]


def load_dataset(name: str, root: Optional[str] = None,
                 **graph_file_kwargs) -> Data:
    r"""The graph of the data set :obj:`name` (see :data:`DATASETS`;
    case-insensitive) or of a graph file (see :func:`load_graph_file`, which
    gets :obj:`graph_file_kwargs`) with :obj:`x`, :obj:`edge_index`, labels
    :obj:`y` of shape :obj:`(N,)` (:obj:`-1`: unlabelled), boolean
    :obj:`train_mask`, :obj:`val_mask`, :obj:`test_mask` and the number of
    classes as :obj:`num_classes`."""
    if is_graph_file(name):
        return load_graph_file(name, **graph_file_kwargs)
    if dataset_name(name) == 'ogbn-arxiv':
        data, num_classes = load_ogbn_arxiv(root)
    else:
        dataset = load_planetoid(name, root)
        data, num_classes = dataset[0], dataset.num_classes
    data.num_classes = num_classes
    return data


# Graph files (networkx) ######################################################

GRAPH_READERS = {
    '.graphml': 'graphml',
    '.xml': 'graphml',
    '.gml': 'gml',
    '.edgelist': 'edgelist',
    '.edges': 'edgelist',
    '.txt': 'edgelist',
    '.tsv': 'edgelist',
    '.csv': 'edgelist',
}
IDENTITY_MAX_NODES = 5000  # beyond, missing features become degree features
MAX_DEGREE_FEATURE = 64
log = logging.getLogger('align_gnn')


def is_graph_file(name: str) -> bool:
    r"""Whether :obj:`name` names a graph file rather than a data set of
    :data:`DATASETS` (a known extension, or a path that exists)."""
    return name.lower() not in DATASETS and (
        osp.splitext(name)[1].lower() in GRAPH_READERS or osp.exists(name))


def read_graph(path: str, node_attributes: Optional[str] = None):
    r"""Reads a GraphML, GML or edge list file (by its extension) with
    networkx as an undirected graph (GML nodes are named by their
    :obj:`id`; GML's :obj:`label` is the node's name, so classes belong in
    another attribute there); for an edge list, node attributes come
    from :obj:`node_attributes`, a CSV file with a header whose first
    column is the node (as in the edge list) and whose other columns are
    attributes."""
    import networkx as nx

    kind = GRAPH_READERS.get(osp.splitext(path)[1].lower())
    if kind is None:
        raise DataError(f"'{path}': unknown graph file type (use one of "
                        f"{', '.join(sorted(GRAPH_READERS))})")
    if not osp.isfile(path):
        raise DataError(f"'{path}': no such graph file")
    try:
        if kind == 'graphml':
            graph = nx.read_graphml(path)
        elif kind == 'gml':  # nodes by id: GML's 'label' is a node name
            graph = nx.read_gml(path, label='id')
        else:
            graph = nx.read_edgelist(
                path, delimiter=',' if path.endswith('.csv') else None,
                data=False, comments='#')
    except Exception as err:
        raise DataError(f"'{path}': not a readable {kind} file "
                        f"({type(err).__name__}: {_first_line(err)})") from err
    graph = nx.Graph(graph)  # undirected, no parallel edges
    if node_attributes is not None:
        _read_node_attributes(graph, node_attributes)
    return graph


def _read_node_attributes(graph, path: str):
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:
        raise DataError(f"'{path}': not a readable CSV file of node "
                        f"attributes ({type(err).__name__}: "
                        f"{_first_line(err)})") from err
    node_column, *columns = table.columns
    for row in table.itertuples(index=False):
        node, *values = row
        if node not in graph:  # an isolated node
            graph.add_node(node)
        graph.nodes[node].update(
            {column: _number_or_text(value)
             for column, value in zip(columns, values) if value != ''})


def _number_or_text(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def load_graph_file(path: str, label_attr: str = 'label',
                    feature_attr: Optional[Sequence[str]] = None,
                    node_attributes: Optional[str] = None,
                    split: Sequence[float] = (0.6, 0.2, 0.2),
                    seed: int = 0) -> Data:
    r"""A node classification data set from a graph file (see
    :func:`read_graph`), converted with
    :func:`torch_geometric.utils.from_networkx`, as :func:`load_dataset`
    returns it.

    Args:
        path (str): The graph file.
        label_attr (str, optional): The node attribute holding the class
            (any values; classes are its distinct values in sorted order).
            Nodes without it are unlabelled. (default: :obj:`"label"`)
        feature_attr (list of str, optional): The node attributes holding
            the features: one attribute whose values are vectors (lists, or
            strings of numbers separated by spaces or commas), or several
            numeric attributes. Unset: identity features up to 5,000 nodes,
            one-hot degrees (capped at 64) beyond; a message says which.
            (default: :obj:`None`)
        node_attributes (str, optional): A CSV file of node attributes for
            an edge list (see :func:`read_graph`). (default: :obj:`None`)
        split (list of float, optional): Fractions of the labelled nodes
            for training, validation and test, stratified by class and drawn
            with :obj:`seed`. (default: :obj:`(0.6, 0.2, 0.2)`)
        seed (int, optional): The seed of the split. (default: :obj:`0`)
    """
    from torch_geometric.utils import from_networkx

    graph = read_graph(path, node_attributes)
    nodes = list(graph.nodes)
    if not nodes:
        raise DataError(f"'{path}': the graph has no nodes")
    labelled = [node for node in nodes if label_attr in graph.nodes[node]]
    if not labelled:
        found = sorted({key for node in nodes for key in graph.nodes[node]})
        raise DataError(
            f"'{path}': no node has the label attribute {label_attr!r} "
            f"(node attributes found: {', '.join(found) or 'none'}); name "
            f"it with --label-attr")
    classes = sorted({graph.nodes[node][label_attr] for node in labelled},
                     key=str)
    if len(classes) < 2:
        raise DataError(f"'{path}': the label attribute {label_attr!r} has "
                        f"a single value ({classes[0]!r}); node "
                        f"classification needs two classes or more")
    index = {label: i for i, label in enumerate(classes)}
    y = torch.full((len(nodes), ), -1, dtype=torch.long)
    for i, node in enumerate(nodes):
        if label_attr in graph.nodes[node]:
            y[i] = index[graph.nodes[node][label_attr]]

    structure = graph.__class__()
    structure.add_nodes_from(nodes)
    structure.add_edges_from(graph.edges)
    data = from_networkx(structure)
    data.x = _node_features(graph, nodes, feature_attr, data, path)
    data.y = y
    if len(labelled) < len(nodes):
        log.info(f"'{path}': {len(nodes) - len(labelled)} of {len(nodes)} "
                 f"nodes have no {label_attr!r}: they are unlabelled")
    data.train_mask, data.val_mask, data.test_mask = stratified_split(
        y, split, seed, path)
    data.num_classes = len(classes)
    return data


def _node_features(graph, nodes: List, feature_attr: Optional[Sequence[str]],
                   data: Data, path: str) -> Tensor:
    if not feature_attr:
        if len(nodes) <= IDENTITY_MAX_NODES:
            log.info(f"'{path}': no --feature-attr: identity features (one "
                     f"channel per node)")
            return torch.eye(len(nodes))
        log.info(f"'{path}': no --feature-attr: one-hot degree features "
                 f"(degrees above {MAX_DEGREE_FEATURE} share the last)")
        return T.OneHotDegree(MAX_DEGREE_FEATURE)(
            Data(edge_index=data.edge_index, num_nodes=len(nodes))).x
    rows = []
    for node in nodes:
        attributes = graph.nodes[node]
        missing = [name for name in feature_attr if name not in attributes]
        if missing:
            found = ', '.join(sorted(attributes)) or 'none'
            raise DataError(f"'{path}': node {node!r} has no feature "
                            f"attribute {missing[0]!r} (its attributes: "
                            f"{found}); name them with --feature-attr")
        try:
            rows.append([float(value) for name in feature_attr
                         for value in _vector(attributes[name])])
        except ValueError as err:
            raise DataError(f"'{path}': the features of node {node!r} are "
                            f"not numbers ({err})") from err
    if len({len(row) for row in rows}) > 1:
        raise DataError(f"'{path}': the nodes' feature vectors differ in "
                        f"length ({min(map(len, rows))} to "
                        f"{max(map(len, rows))})")
    x = torch.tensor(rows, dtype=torch.float)
    _check_finite(path, x, osp.dirname(path) or '.')
    return x


def _vector(value) -> List:
    if isinstance(value, str):
        return value.replace(',', ' ').split()
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def stratified_split(y: Tensor, split: Sequence[float], seed: int,
                     name: str = 'graph') -> Tuple[Tensor, Tensor, Tensor]:
    r"""Boolean train, validation and test masks holding the fractions
    :obj:`split` of each class's labelled nodes (:obj:`y >= 0`), drawn at
    random with :obj:`seed` (rounded per class; the test set gets the
    rest of the fractions' sum)."""
    _require(len(split) == 3 and all(f >= 0 for f in split)
             and 0 < sum(split) <= 1 + 1e-9, 'split',
             'three fractions >= 0 with a sum in (0, 1]', list(split))
    generator = torch.Generator().manual_seed(seed)
    masks = [torch.zeros_like(y, dtype=torch.bool) for _ in range(3)]
    for label in y[y >= 0].unique():
        nodes = (y == label).nonzero().view(-1)
        nodes = nodes[torch.randperm(nodes.numel(), generator=generator)]
        counts = [round(f * nodes.numel()) for f in split[:2]]
        counts.append(min(round(sum(split) * nodes.numel()),
                          nodes.numel()) - sum(counts))
        for mask, part in zip(masks, nodes.split([*counts, nodes.numel() -
                                                  sum(counts)])):
            mask[part] = True
    for mask, part in zip(masks, ('training', 'validation', 'test')):
        if not mask.any():
            raise DataError(f"'{name}': the {part} split is empty (split "
                            f"{list(split)} of {int((y >= 0).sum())} "
                            f"labelled nodes); give larger fractions")
    return tuple(masks)
