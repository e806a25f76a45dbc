r"""The attention check (`align_gnn.attention_check`, `train_gat.py
--check-attention`): on DictionaryLookup, where attention is the task,
uniform attention costs nearly everything; on Cora attention is uniform and
the check finds nothing to act on; the model checked is left as it was;
bad input gets one-line errors."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GATConv, GATv2Conv, GCNConv, TransformerConv

from align_gnn import AttentionCheck, attention_check
from align_gnn import experiment, training
from align_gnn.config import Config
from align_gnn.data import load_dataset, select_split
from align_gnn.diagnostics import (
    attention_entropy,
    attention_layers,
    make_uniform,
)
from align_gnn.hetero_models import build_platonov_model
from align_gnn.metrics import roc_auc
from conftest import HANG_SECONDS

REPO = Path(__file__).resolve().parents[1]
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def test_dictionary_lookup_attention_matters():
    # The GATv2 paper's model (one GATv2 layer, one head, no dropout, lr
    # 1e-3; the study's DictionaryLookup cell, there at k = 6) fits the
    # task, and uniform attention leaves a query nothing but its own key:
    # near chance (20 %). k = 5 keeps it fast (4 s); seed 1 fits it by
    # epoch 384 (some seeds need more than 1,000 epochs at this rate).
    config = Config(dataset='dictionary-lookup', methods=['none'], runs=1,
                    seed=1, epochs=600, patience=100, k=5,
                    model='platonov-gat', conv='gatv2', layers=1, heads=1,
                    hidden=64, dropout=0.0, lr=1e-3, device='cpu')
    results, check = experiment.check_attention(config)
    run, = results['runs']
    assert run['val_acc'] == 1.0
    assert check.score == run['val_acc']  # the validation nodes, scored
    assert check.metric == 'acc' and check.nodes == 'validation'
    assert [layer.layer for layer in check.layers] == ['GATv2Conv']
    assert check.uniform_score <= 0.5 and check.cost >= 0.5
    assert check.matters
    assert check.verdict.startswith('attention matters here')
    assert results['attention_check'] == check.to_dict()


@pytest.fixture(scope='module')
def cora_model(data_root):
    data = load_dataset('cora', str(data_root))
    config = Config(dataset='cora', methods=['none'], epochs=200,
                    patience=100, device='cpu')
    torch.manual_seed(0)
    model = training.make_model('none', data, config)
    result = training.fit(model, data, 'none', 0, config)
    return model, data, result


def test_cora_attention_is_uniform(cora_model):
    model, data, result = cora_model
    check = attention_check(model, data)
    assert [layer.name for layer in check.layers] == ['conv1', 'conv2']
    assert all(layer.entropy > 0.98 for layer in check.layers)
    assert check.num_nodes == int(data.val_mask.sum()) == 500
    assert check.score == pytest.approx(result.val_acc, abs=0.0021)
    assert abs(check.cost) <= 0.01
    assert not check.matters
    assert check.verdict.startswith('nothing for alignment to act on')
    assert 'docs/attention.md#check-your-own-graph' in check.verdict
    text = str(check)
    assert text.splitlines()[-1] == check.verdict
    assert 'conv1' in text and 'GATConv' in text

    test = attention_check(model, data, nodes='test')
    assert test.nodes == 'test' and test.num_nodes == 1000
    assert test.score == pytest.approx(result.test_acc, abs=0.0011)


def test_model_left_unchanged(cora_model):
    model, data, _ = cora_model
    model = copy.deepcopy(model)
    model.train()
    model.conv2.eval()  # mixed flags stay as they were
    state = {k: v.clone() for k, v in model.state_dict().items()}
    attention_check(model, data)
    assert model.training and model.conv1.training
    assert not model.conv2.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_layer_scores_match_a_uniform_copy(cora_model):
    # Each layer's score is the model's with that layer alone uniform; the
    # overall one with both; the nodes may be an index.
    model, data, _ = cora_model
    nodes = torch.arange(200, 400)
    check = attention_check(model, data, nodes=nodes)
    assert check.nodes == 'given' and check.num_nodes == 200

    def accuracy(net):
        net.eval()
        with torch.no_grad():
            pred = net(data.x, data.edge_index).argmax(-1)
        return float((pred[nodes] == data.y[nodes]).float().mean())

    for i, (name, conv) in enumerate(attention_layers(model)):
        uniform = copy.deepcopy(model)
        make_uniform(uniform, [attention_layers(uniform)[i]])
        assert check.layers[i].uniform_score == pytest.approx(
            accuracy(uniform))
    assert check.uniform_score == pytest.approx(
        accuracy(make_uniform(copy.deepcopy(model))))
    assert check.score == pytest.approx(accuracy(copy.deepcopy(model)))


def test_cli_end_to_end(data_root, tmp_path):
    out = tmp_path / 'cora.json'
    result = subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), '--root', str(data_root),
         '--dataset', 'cora', '--check-attention', '--epochs', '30',
         '--seed', '3', '--out', str(out), '--quiet'],
        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stderr

    def strict(value):
        raise ValueError(f'{value} is not JSON')

    results = json.loads(out.read_text(), parse_constant=strict)
    run, = results['runs']
    assert run['method'] == 'none' and run['seed'] == 3
    assert results['config']['methods'] == ['none']
    check = results['attention_check']
    assert check['verdict'] in result.stdout.splitlines()
    assert check['score'] == pytest.approx(run['val_acc'], abs=0.0021)
    assert [layer['name'] for layer in check['layers']] == ['conv1', 'conv2']
    assert all(0.9 < layer['entropy'] <= 1 + 1e-6
               for layer in check['layers'])
    assert check['matters'] is False


@pytest.mark.parametrize('model,conv,method', [
    ('platonov-gat', 'gat', 'none'), ('platonov-gat', 'gatv2', 'none'),
    ('platonov-gt', 'gat', 'none'), ('platonov-gat', 'gatv2', 'ct'),
    ('platonov-gt', 'gat', 'mmd')])
def test_make_uniform_any_layer(hetero_root, model, conv, method):
    # Zeroing the attention parameters makes every layer's attention
    # exactly uniform (entropy 1), for GAT, GATv2 and Transformer layers,
    # plain or aligned, inside Platonov et al.'s models (which add
    # self-loops); the check needs one split of the fixed ones.
    graph = load_dataset('chameleon-filtered', str(hetero_root))
    data = select_split(graph, 0)
    torch.manual_seed(0)
    net = build_platonov_model(model, method, data.num_features,
                               graph.num_classes,
                               conv=conv, hidden=8, heads=2, layers=2)
    for p in net.parameters():  # not uniform to begin with
        torch.nn.init.normal_(p, std=1.0)
    check = attention_check(net, data)
    assert isinstance(check, AttentionCheck) and check.metric == 'acc'
    assert len(check.layers) == 2
    assert max(layer.entropy for layer in check.layers) < 0.99
    net.eval()
    uniform = attention_check(make_uniform(net), data)
    assert [layer.entropy for layer in uniform.layers] == pytest.approx(
        [1.0, 1.0], abs=1e-5)
    assert uniform.uniform_score == uniform.score
    with pytest.raises(ValueError, match='several splits'):
        attention_check(net, graph)


@pytest.mark.parametrize('device', DEVICES)
def test_edge_features_and_devices(device):
    # GAT's edge term and a Transformer layer's queries are zeroed; the
    # model's device is used, whatever the data's; the data's metric, here
    # ROC-AUC of the logit difference.
    torch.manual_seed(0)
    x, edge_index = torch.randn(40, 6), torch.randint(40, (2, 160))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = GATConv(6, 4, heads=2, edge_dim=3)
            self.out = TransformerConv(8, 2, heads=1)
            self.register_buffer('edge_attr', torch.randn(160, 3))

        def forward(self, x, edge_index):
            x = self.conv(x, edge_index, edge_attr=self.edge_attr).relu()
            return self.out(x, edge_index)

    net = Net().to(device)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=2.0)
    data = Data(x=x, edge_index=edge_index, y=torch.randint(2, (40,)),
                val_mask=torch.rand(40) < 0.5, metric='roc_auc')
    check = attention_check(net, data)
    assert check.metric == 'roc_auc'
    with torch.no_grad():
        out = net.eval()(x.to(device), edge_index.to(device)).cpu()
    mask = data.val_mask
    assert check.score == pytest.approx(
        roc_auc((out[:, 1] - out[:, 0])[mask], data.y[mask]))
    assert all(layer.entropy < 0.99 for layer in check.layers)
    uniform = attention_check(make_uniform(net), data)
    assert [layer.entropy for layer in uniform.layers] == pytest.approx(
        [1.0, 1.0], abs=1e-5)


@pytest.mark.filterwarnings('ignore:Sparse invariant checks')  # PyG's own
def test_sparse_adjacency():
    # A sparse adjacency (transposed, as PyG takes it) gives the entropy of
    # the same edges as indices.
    torch.manual_seed(0)
    x, edge_index = torch.randn(40, 6), torch.randint(40, (2, 160))
    conv = GATv2Conv(6, 4, heads=2)
    for p in conv.parameters():
        torch.nn.init.normal_(p, std=2.0)
    adj = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(160),
                                  (40, 40), check_invariants=True).coalesce()
    entropy = attention_entropy(conv, x, adj.indices().flip(0))
    assert entropy < 0.99
    assert attention_entropy(conv, x, adj.to_sparse_csr()) == pytest.approx(
        entropy, abs=1e-5)


def test_errors(cora_model):
    model, data, _ = cora_model
    gcn = torch.nn.ModuleList([GCNConv(4, 2)])
    with pytest.raises(ValueError, match='has no attention layer'):
        attention_check(gcn, data)
    no_val = Data(x=data.x, edge_index=data.edge_index, y=data.y)
    with pytest.raises(ValueError, match="no 'val_mask': pass the nodes"):
        attention_check(model, no_val)
    with pytest.raises(ValueError, match='No given nodes to score'):
        attention_check(model, data, nodes=torch.zeros(data.num_nodes,
                                                       dtype=torch.bool))
    with pytest.raises(ValueError, match=r'in \[0, 2708\)'):
        attention_check(model, data, nodes=torch.tensor([0, 2708]))
    with pytest.raises(ValueError, match=r'shape \(2708,\)'):
        attention_check(model, data, nodes=torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="'nodes' must be one of"):
        attention_check(model, data, nodes='validation')
    with pytest.raises(ValueError, match='ROC-AUC needs two classes'):
        attention_check(model, data, metric='roc_auc')
    with pytest.raises(ValueError, match="'metric' must be one of"):
        attention_check(model, data, metric='f1')


@pytest.mark.parametrize('flags,message', [
    (['--compare', 'none,ct'], 'argument --compare: not with --check-att'),
    (['--checkpoint', 'ckpt'], 'argument --checkpoint: not with --check-att'),
])
def test_cli_refuses(tmp_path, flags, message):
    result = subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), '--check-attention',
         *flags], capture_output=True, text=True, timeout=HANG_SECONDS,
        cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1
    assert message in result.stderr
