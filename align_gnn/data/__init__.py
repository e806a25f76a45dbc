r"""Data sets: Planetoid (Cora, CiteSeer, PubMed; public split,
:mod:`~align_gnn.data.planetoid`), OGB's ogbn-arxiv (time split, made
undirected, :mod:`~align_gnn.data.ogb`) and graph files
(:mod:`~align_gnn.data.graph_files`), read by PyG's, OGB's and networkx's
own loaders from the data root, with one-line :class:`DataError` messages
for what is missing or damaged.

A source of named data sets is a module with :obj:`NAMES` (lower-case name
to display name), :obj:`load_graph(name, root)`, :obj:`raw_files(name,
root)` (the files it reads) and :obj:`processed_dir(name, root)` (where its
library stores what it derives from them, checked against them by
:func:`~align_gnn.data.utils.load_processed`; :obj:`None` if nothing is
stored), listed in :data:`SOURCES`."""
import copy
import os.path as osp
from typing import Optional

from torch_geometric.data import Data

from align_gnn.conv import quiet_sparse_csr
from align_gnn.data import dictionary_lookup, heterophilous, ogb, planetoid
from align_gnn.data.graph_files import (
    GRAPH_READERS,
    load_graph_file,
    read_graph,
    stratified_split,
)
from align_gnn.data.ogb import arxiv_folder, load_ogbn_arxiv
from align_gnn.data.planetoid import (
    PLANETOID,
    RAW_NAMES,
    load_planetoid,
    raw_paths,
)
from align_gnn.data.heterophilous import num_splits, select_split
from align_gnn.data.utils import (
    DataError,
    _require,
    add_edge_noise,
    data_root,
)

SOURCES = (planetoid, ogb, heterophilous, dictionary_lookup)
DATASETS = {name: display for source in SOURCES
            for name, display in source.NAMES.items()}
FEATURES = ('dense', 'sparse')

__all__ = [
    'DATASETS',
    'FEATURES',
    'PLANETOID',
    'RAW_NAMES',
    'GRAPH_READERS',
    'DataError',
    'data_root',
    'dataset_name',
    'is_graph_file',
    'load_dataset',
    'prepare_data',
    'load_planetoid',
    'raw_paths',
    'load_ogbn_arxiv',
    'arxiv_folder',
    'load_graph_file',
    'read_graph',
    'stratified_split',
    'add_edge_noise',
    'num_splits',
    'select_split',
]


def load_dataset(name: str, root: Optional[str] = None,
                 **graph_file_kwargs) -> Data:
    r"""The graph of the data set :obj:`name` (see :data:`DATASETS`;
    case-insensitive) or of a graph file (see :func:`load_graph_file`, which
    gets :obj:`graph_file_kwargs`) with :obj:`x`, :obj:`edge_index`, labels
    :obj:`y` of shape :obj:`(N,)` (:obj:`-1`: unlabelled), boolean
    :obj:`train_mask`, :obj:`val_mask`, :obj:`test_mask` and the number of
    classes as :obj:`num_classes`. The heterophilous sets hold ten fixed
    splits (masks of shape :obj:`(N, 10)`, see
    :func:`~align_gnn.data.heterophilous.select_split`); generated tasks
    (:obj:`"dictionary-lookup"`) get :obj:`graph_file_kwargs` (e.g.
    :obj:`k`, :obj:`seed`)."""
    if is_graph_file(name):
        return load_graph_file(name, **graph_file_kwargs)
    dataset_name(name)  # a ValueError naming the choices
    source = next(source for source in SOURCES
                  if name.lower() in source.NAMES)
    if source is dictionary_lookup:
        return source.load_graph(name, root, **graph_file_kwargs)
    return source.load_graph(name, root)


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


def is_graph_file(name: str) -> bool:
    r"""Whether :obj:`name` names a graph file rather than a data set of
    :data:`DATASETS` (a known extension, or a path that exists)."""
    return name.lower() not in DATASETS and (
        osp.splitext(name)[1].lower() in GRAPH_READERS or osp.exists(name))


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
