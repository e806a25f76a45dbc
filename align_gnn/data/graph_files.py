r"""Node classification data sets from graph files that networkx reads
(GraphML, GML, edge lists with a CSV file of node attributes), with a
stratified random split."""
import logging
import math
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

import torch_geometric.transforms as T
from torch_geometric.data import Data

from align_gnn.data.utils import DataError, _require, library_message

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
    _check_file(path, 'graph file')
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
                        f"({library_message(err)})") from err
    graph = nx.Graph(graph)  # undirected, no parallel edges
    if node_attributes is not None:
        _read_node_attributes(graph, node_attributes)
    return graph


def _read_node_attributes(graph, path: str):
    import pandas as pd

    _check_file(path, 'CSV file of node attributes')
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:
        raise DataError(f"'{path}': not a readable CSV file of node "
                        f"attributes ({library_message(err)})") from err
    node_column, *columns = table.columns
    repeated = table[node_column].duplicated(keep=False)
    if repeated.any():
        node = table[node_column][repeated].iloc[0]
        rows = [i + 2 for i in (table[node_column] == node).to_numpy()
                .nonzero()[0]]  # the header is line 1
        raise DataError(f"'{path}': node {node!r} has {len(rows)} rows "
                        f"(lines {', '.join(map(str, rows))}); give each "
                        f"node one row")
    for row in table.itertuples(index=False):
        node, *values = row
        if node not in graph:  # an isolated node
            graph.add_node(node)
        graph.nodes[node].update(
            {column: _number_or_text(value)
             for column, value in zip(columns, values) if value != ''})


def _check_file(path: str, kind: str):
    if osp.isdir(path):
        raise DataError(f"'{path}' is a directory, not a {kind}; give the "
                        f"path of the file")
    if not osp.isfile(path):
        raise DataError(f"'{path}': no such {kind}")


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
    :func:`torch_geometric.utils.from_networkx`, as
    :func:`~align_gnn.data.load_dataset` returns it.

    Args:
        path (str): The graph file.
        label_attr (str, optional): The node attribute holding the class
            (any values; classes are its distinct values in sorted order).
            Nodes without it, or with an empty value, are unlabelled (a
            note says how many); a NaN or infinite value raises
            :class:`DataError`, as do duplicate rows in
            :obj:`node_attributes`. (default: :obj:`"label"`)
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
    _check_labels(graph, nodes, label_attr, path)
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
    data.x = _node_features(graph, nodes, feature_attr, data, path,
                            node_attributes or path)
    data.y = y
    if len(labelled) < len(nodes):
        log.info(f"'{path}': {len(nodes) - len(labelled)} of {len(nodes)} "
                 f"nodes have no {label_attr!r}: they are unlabelled")
    data.train_mask, data.val_mask, data.test_mask = stratified_split(
        y, split, seed, path)
    data.num_classes = len(classes)
    return data


def _check_labels(graph, nodes: List, label_attr: str, path: str):
    # An empty label marks an unlabelled node (like a missing one); a label
    # that reads as NaN or inf would become a class of its own: an error.
    for node in nodes:
        attributes = graph.nodes[node]
        value = attributes.get(label_attr)
        if isinstance(value, str) and not value.strip():
            del attributes[label_attr]
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(number):
            raise DataError(
                f"'{path}': node {node!r} has the label {value!r} (not "
                f"finite) in {label_attr!r}; give a class, or leave it "
                f"empty to mark the node unlabelled")


def _node_features(graph, nodes: List, feature_attr: Optional[Sequence[str]],
                   data: Data, path: str, source: str) -> Tensor:
    # `source`: the file that holds the features (a node CSV, or `path`).
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
            raise DataError(f"'{source}': node {node!r} has no feature "
                            f"attribute {missing[0]!r} (its attributes: "
                            f"{found}); name them with --feature-attr")
        try:
            rows.append([float(value) for name in feature_attr
                         for value in _vector(attributes[name])])
        except ValueError as err:
            raise DataError(f"'{source}': the features of node {node!r} are "
                            f"not numbers ({err})") from err
    if len({len(row) for row in rows}) > 1:
        raise DataError(f"'{source}': the nodes' feature vectors differ in "
                        f"length ({min(map(len, rows))} to "
                        f"{max(map(len, rows))})")
    x = torch.tensor(rows, dtype=torch.float)
    bad = (~torch.isfinite(x)).any(dim=-1).nonzero().view(-1)
    if bad.numel():
        raise DataError(f"'{source}': the features of {bad.numel()} node(s) "
                        f"are NaN or inf (first: node {nodes[bad[0]]!r}, "
                        f"attribute(s) {', '.join(feature_attr)}); give "
                        f"finite numbers")
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
