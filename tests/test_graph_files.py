import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

from align_gnn.data import DataError, graph_files, load_dataset
from align_gnn.models import build_model
from conftest import HANG_SECONDS

REPO = Path(__file__).resolve().parents[1]


def sbm(num_classes=3, size=40, features=6, seed=0) -> nx.Graph:
    rng = np.random.default_rng(seed)
    probs = np.full((num_classes, num_classes), 0.02)
    np.fill_diagonal(probs, 0.2)
    graph = nx.stochastic_block_model([size] * num_classes, probs.tolist(),
                                      seed=seed)
    means = 2 * rng.normal(size=(num_classes, features))
    for node, attributes in graph.nodes(data=True):
        label = attributes.pop('block')
        x = means[label] + rng.normal(size=features)
        attributes.update(label=f'class-{label}',
                          x=' '.join(f'{v:.3f}' for v in x))
    graph.graph.clear()
    return graph


@pytest.fixture
def graphml(tmp_path) -> Path:
    path = tmp_path / 'sbm.graphml'
    nx.write_graphml(sbm(), path)
    return path


def test_graphml_end_to_end(graphml, tmp_path):
    out = tmp_path / 'r.json'
    result = subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), '--dataset',
         str(graphml), '--feature-attr', 'x', '--compare', 'none,ct',
         '--runs', '2', '--epochs', '100', '--quiet', '--out', str(out)],
        capture_output=True, text=True, timeout=HANG_SECONDS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    assert results['dataset'] == str(graphml)
    assert results['summary']['none']['test_acc_mean'] > 0.8
    assert f'{graphml}, 2 run(s) from seed 0:' in result.stdout


def test_graph_file_data(graphml):
    graph = load_dataset(str(graphml), feature_attr=['x'],
                         split=[0.5, 0.25, 0.25], seed=3)
    assert graph.num_nodes == 120 and graph.num_classes == 3
    assert graph.x.shape == (120, 6) and graph.is_undirected()
    assert graph.num_edges == 2 * nx.read_graphml(graphml).number_of_edges()
    masks = torch.stack([graph.train_mask, graph.val_mask, graph.test_mask])
    assert masks.sum(0).max() == 1 and int(masks.sum()) == 120
    for label in range(3):  # stratified: 20, 10, 10 of each class of 40
        assert masks[:, graph.y == label].sum(1).tolist() == [20, 10, 10]
    again = load_dataset(str(graphml), feature_attr=['x'],
                         split=[0.5, 0.25, 0.25], seed=3)
    other = load_dataset(str(graphml), feature_attr=['x'],
                         split=[0.5, 0.25, 0.25], seed=4)
    assert torch.equal(again.train_mask, graph.train_mask)
    assert not torch.equal(other.train_mask, graph.train_mask)


def test_gml_and_missing_features(tmp_path, caplog, monkeypatch):
    path = tmp_path / 'g.gml'
    graph = sbm()
    for _, attributes in graph.nodes(data=True):  # GML's label: node names
        attributes['community'] = attributes.pop('label')
    nx.write_gml(graph, path)
    with caplog.at_level('INFO', logger='align_gnn'):
        loaded = load_dataset(str(path), label_attr='community')
    assert loaded.num_classes == 3
    assert torch.equal(loaded.x, torch.eye(120))
    assert 'identity features' in caplog.text
    caplog.clear()
    monkeypatch.setattr(graph_files, 'IDENTITY_MAX_NODES', 100)
    with caplog.at_level('INFO', logger='align_gnn'):
        loaded = load_dataset(str(path), label_attr='community')
    assert loaded.x.shape == (120, graph_files.MAX_DEGREE_FEATURE + 1)
    degree = torch.tensor([d for _, d in graph.degree()])
    assert torch.equal(loaded.x.argmax(-1), degree.clamp(max=64))
    assert 'one-hot degree features' in caplog.text


def test_edge_list_with_node_attributes(tmp_path):
    graph = sbm()
    nx.write_edgelist(graph, tmp_path / 'g.edgelist', data=False)
    with open(tmp_path / 'nodes.csv', 'w') as f:
        f.write('node,label,a,b\n')
        for node, attributes in graph.nodes(data=True):
            values = attributes['x'].split()
            f.write(f'{node},{attributes["label"]},{values[0]},{values[1]}\n')
    loaded = load_dataset(
        str(tmp_path / 'g.edgelist'), feature_attr=['a', 'b'],
        node_attributes=str(tmp_path / 'nodes.csv'))
    assert loaded.num_nodes == 120 and loaded.x.shape == (120, 2)
    assert loaded.num_classes == 3


def test_unlabelled_nodes(tmp_path):
    graph = sbm()
    for node in list(graph)[:10]:
        del graph.nodes[node]['label']
    nx.write_graphml(graph, tmp_path / 'g.graphml')
    loaded = load_dataset(str(tmp_path / 'g.graphml'),
                          feature_attr=['x'])
    assert (loaded.y == -1).sum() == 10
    masks = loaded.train_mask | loaded.val_mask | loaded.test_mask
    assert not masks[loaded.y == -1].any() and int(masks.sum()) == 110


def write(tmp_path, graph, name='g.graphml') -> str:
    path = tmp_path / name
    nx.write_graphml(graph, path)
    return str(path)


def test_errors(tmp_path):
    no_labels = sbm()
    for _, attributes in no_labels.nodes(data=True):
        del attributes['label']
    one_class = sbm(num_classes=1)
    bad_features = sbm()
    bad_features.nodes[5]['x'] = 'one two'
    short_features = sbm()
    short_features.nodes[5]['x'] = '1 2'
    cases = [
        (write(tmp_path, nx.Graph(), 'empty.graphml'), {}, 'has no nodes'),
        (write(tmp_path, no_labels, 'nolabel.graphml'), {},
         "no node has the label attribute 'label' (node attributes found: "
         "x); name it with --label-attr"),
        (write(tmp_path, sbm(), 'g.graphml'), dict(label_attr='class'),
         "no node has the label attribute 'class'"),
        (write(tmp_path, sbm(), 'g.graphml'), dict(feature_attr=['y']),
         "node '0' has no feature attribute 'y' (its attributes: label, x)"),
        (write(tmp_path, one_class, 'one.graphml'), {},
         "has a single value ('class-0')"),
        (write(tmp_path, bad_features, 'bad.graphml'),
         dict(feature_attr=['x']), "the features of node '5' are not "
         "numbers"),
        (write(tmp_path, short_features, 'short.graphml'),
         dict(feature_attr=['x']), 'feature vectors differ in length'),
        (str(tmp_path / 'missing.graphml'), {}, 'no such graph file'),
        (write(tmp_path, sbm(), 'g.graphml'), dict(split=[0.9, 0.1, 0.0]),
         'the test split is empty'),
    ]
    (tmp_path / 'broken.gml').write_text('graph [ node [ id 0 ')
    cases.append((str(tmp_path / 'broken.gml'), {},
                  'not a readable gml file'))
    for path, kwargs, message in cases:
        with pytest.raises(DataError) as info:
            load_dataset(path, **kwargs)
        assert message in str(info.value), (path, str(info.value))
        assert str(info.value).startswith(f"'{path}'")


@pytest.mark.parametrize('argv,message', [
    (['--dataset', 'nowhere.graphml'], "no such graph file 'nowhere"),
    (['--dataset', 'reddit'], 'or give the path of a GraphML'),
    (['--dataset', '{graphml}', '--split', '0.6,0.6,0.2'],
     'argument --split: must be three fractions'),
    (['--dataset', '{graphml}', '--label-attr', 'kind'],
     "no node has the label attribute 'kind'"),
])
def test_cli_errors(graphml, tmp_path, argv, message):
    argv = [a.format(graphml=graphml) for a in argv]
    result = subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), *argv, '--out',
         str(tmp_path / 'r.json')], capture_output=True, text=True,
        timeout=HANG_SECONDS, cwd=tmp_path)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.count('\n') == 1 and message in result.stderr


@pytest.mark.parametrize('conv', ['gatv2', 'transformer'])
def test_cli_conv(graphml, tmp_path, conv):
    out = tmp_path / 'r.json'
    result = subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), '--dataset',
         str(graphml), '--feature-attr', 'x', '--conv', conv, '--compare',
         'none,mmd', '--runs', '1', '--epochs', '30', '--quiet', '--out',
         str(out)], capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    assert results['config']['conv'] == conv
    assert results['summary']['mmd']['test_acc_mean'] > 0.6
    model = build_model('mmd', 6, 3, conv=conv)
    assert type(model.conv1).__name__ == {
        'gatv2': 'AlignedGATv2Conv', 'transformer': 'AlignedTransformerConv'
    }[conv]
    assert results['summary']['mmd']['params'] == sum(
        p.numel() for p in model.parameters())
