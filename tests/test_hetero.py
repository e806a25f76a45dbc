r"""Issue 16: heterophilous sets, DictionaryLookup, edge noise, ROC-AUC,
the GAT paper's model selection, alignment across heads, Platonov's
models."""
import itertools
import json
import math

import numpy as np
import pytest
import torch

from align_gnn import AlignedGATConv, AlignedGATv2Conv, AlignedTransformerConv
from align_gnn.across_heads import across_heads_loss
from align_gnn.config import Config
from align_gnn.data import DataError, load_dataset, select_split
from align_gnn.data.dictionary_lookup import dictionary_lookup
from align_gnn.data.heterophilous import raw_path
from align_gnn.data.utils import add_edge_noise
from align_gnn.hetero_models import PLATONOV_MODELS, build_platonov_model
from align_gnn.metrics import roc_auc
from align_gnn.selection import BestAccuracy, GATPaperRule
from align_gnn.experiment import experiment

SIZES = {  # nodes, undirected edges (SOURCES.md), classes, metric
    'minesweeper': (10000, 39402, 2, 'roc_auc'),
    'tolokers': (11758, 519000, 2, 'roc_auc'),
    'chameleon-filtered': (890, 8854, 5, 'acc'),
    'squirrel-filtered': (2223, 46998, 5, 'acc'),
}


# Heterophilous data sets #####################################################

@pytest.mark.parametrize('name', list(SIZES))
def test_heterophilous_loaders(hetero_root, name):
    data = load_dataset(name.upper(), str(hetero_root))
    nodes, edges, classes, metric = SIZES[name]
    assert data.num_nodes == nodes and data.num_classes == classes
    assert data.metric == metric and data.x.dtype == torch.float
    # Undirected: each stored edge in both directions.
    assert data.edge_index.size(1) == 2 * edges
    assert data.is_undirected()
    assert data.train_mask.shape == (nodes, 10)
    raw = np.load(raw_path(name, str(hetero_root)))
    assert torch.equal(data.y, torch.from_numpy(raw['node_labels']))
    for i in (0, 9):
        split = select_split(data, i)
        assert split.train_mask.shape == (nodes, )
        assert torch.equal(split.val_mask,
                           torch.from_numpy(raw['val_masks'][i]))
        assert not (split.train_mask & split.test_mask).any()
    with pytest.raises(ValueError, match='at most --runs 10'):
        select_split(data, 10)


def test_heterophilous_missing(tmp_path):
    with pytest.raises(DataError, match=r"chameleon_filtered/raw/"
                       r"chameleon_filtered.npz' is missing.*cp -r "
                       r"\.\./shared/datasets/chameleon_filtered"):
        load_dataset('chameleon-filtered', str(tmp_path))
    with pytest.raises(ValueError, match='at most 10'):
        Config(dataset='minesweeper', runs=11)


def test_heterophilous_experiment(hetero_root):
    # Runs use splits 0 and 1 (paired across methods), scored by ROC-AUC.
    config = Config(dataset='minesweeper', methods=['none', 'ct'], runs=2,
                    epochs=2, hidden=16, heads=2, layers=1, device='cpu')
    assert config.model == 'platonov-gat' and config.lr == 3e-5
    assert config.features == 'dense'
    results = experiment(config, str(hetero_root))
    assert results['metric'] == 'roc_auc'
    assert [r['seed'] for r in results['runs']] == [0, 0, 1, 1]
    assert all(0 <= r['test_acc'] <= 1 for r in results['runs'])
    json.dumps(results, allow_nan=False)


# ROC-AUC #####################################################################

def brute_force_auc(score, labels):
    pos = [s for s, y in zip(score, labels) if y == 1]
    neg = [s for s, y in zip(score, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0
               for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize('seed', range(5))
def test_roc_auc_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(2, (60, ), generator=gen)
    score = torch.randint(8, (60, ), generator=gen).float()  # many ties
    assert roc_auc(score, labels) == pytest.approx(
        brute_force_auc(score.tolist(), labels.tolist()), abs=1e-12)
    assert roc_auc(labels.float(), labels) == 1.0
    assert roc_auc(-labels.float(), labels) == 0.0
    assert math.isnan(roc_auc(score, torch.ones(60, dtype=torch.long)))


# DictionaryLookup and edge noise #############################################

@pytest.mark.parametrize('k', [3, 4, 5])
def test_dictionary_lookup_brute_force(k):
    data = dictionary_lookup(k, seed=k)
    graphs = math.factorial(k)
    assert data.num_nodes == 2 * k * graphs and data.num_classes == k
    assert data.x.shape == (2 * k * graphs, 2 * k + 1)
    key = data.x[:, :k].argmax(1)
    value = data.x[:, k:].argmax(1)  # k: empty
    edges = set(map(tuple, data.edge_index.t().tolist()))
    assert len(edges) == data.edge_index.size(1) == k * k * graphs
    labelled = data.train_mask | data.val_mask | data.test_mask
    for g in range(graphs):
        nodes = (data.graph == g).nonzero().view(-1).tolist()
        queries = [n for n in nodes if value[n] == k]
        keys = [n for n in nodes if value[n] < k]
        assert len(queries) == len(keys) == k
        assert sorted(key[keys].tolist()) == list(range(k))
        assert {(s, t) for s in keys for t in queries} == {
            e for e in edges if e[1] in queries}  # complete bipartite
        for q in queries:
            match = [n for n in keys if key[n] == key[q]]
            assert data.y[q] == value[match[0]] and labelled[q]
        assert all(data.y[n] == -1 and not labelled[n] for n in keys)
    # Every permutation once; masks disjoint; whole graphs per split.
    perms = {tuple(data.y[(data.graph == g) & (value == k)].tolist())
             for g in range(graphs)}
    assert perms == set(itertools.permutations(range(k)))
    masks = torch.stack([data.train_mask, data.val_mask, data.test_mask])
    assert (masks.sum(0) <= 1).all()
    # Unseen combinations: a held-out graph has a (position, value) pair
    # that no training graph has.
    train_pairs = {(int(key[n]), int(data.y[n]))
                   for n in data.train_mask.nonzero().view(-1)}
    for mask in (data.val_mask, data.test_mask):
        for g in data.graph[mask].unique():
            nodes = (mask & (data.graph == g)).nonzero().view(-1)
            assert any((int(key[n]), int(data.y[n])) not in train_pairs
                       for n in nodes)
    assert torch.equal(dictionary_lookup(k, seed=k).train_mask,
                       data.train_mask)


def test_dictionary_lookup_experiment():
    config = Config(dataset='dictionary-lookup', methods=['none'], k=3,
                    runs=1, epochs=3, conv='gatv2', device='cpu')
    results = experiment(config)
    assert results['config']['k'] == 3 and results['metric'] == 'acc'


@pytest.mark.parametrize('p', [0.1, 0.5, 1.0])
def test_edge_noise(p):
    data = dictionary_lookup(4)  # directed; noise is undirected
    from torch_geometric.utils import to_undirected
    data.edge_index = to_undirected(data.edge_index)
    E = data.edge_index.size(1)
    noisy = add_edge_noise(data, p, seed=1)
    added = noisy.edge_index[:, E:]
    assert torch.equal(noisy.edge_index[:, :E], data.edge_index)
    assert added.size(1) == 2 * round(p * E / 2)
    pairs = set(map(tuple, added.t().tolist()))
    old = set(map(tuple, data.edge_index.t().tolist()))
    assert len(pairs) == added.size(1)  # no duplicates
    assert not pairs & old  # no existing edges
    assert all((v, u) in pairs and u != v for u, v in pairs)  # symmetric
    assert torch.equal(add_edge_noise(data, p, seed=1).edge_index,
                       noisy.edge_index)
    assert not torch.equal(add_edge_noise(data, p, seed=2).edge_index,
                           noisy.edge_index)
    assert add_edge_noise(data, 0.0) is data


def test_edge_noise_directed_and_too_many():
    data = dictionary_lookup(3)
    noisy = add_edge_noise(data, 1.0, seed=0)
    old = set(map(tuple, data.edge_index.t().tolist()))
    for u, v in noisy.edge_index[:, data.edge_index.size(1):].t().tolist():
        assert (u, v) not in old and (v, u) not in old
    from torch_geometric.data import Data
    full = Data(edge_index=torch.tensor([[0, 1, 0, 2, 1, 2],
                                         [1, 0, 2, 0, 2, 1]]), num_nodes=3)
    with pytest.raises(ValueError, match='only 0 non-edges'):
        add_edge_noise(full, 0.5)


# Model selection #############################################################

# (val acc, val loss) per epoch, and the epoch each rule keeps / stops at:
CURVE = [(0.5, 1.0), (0.6, 0.9), (0.7, 0.95), (0.7, 0.85), (0.65, 0.8),
         (0.72, 0.82), (0.6, 0.9), (0.6, 0.9), (0.6, 0.9), (0.75, 0.7)]


def play(rule, curve):
    kept, stopped = None, None
    for epoch, (acc, loss) in enumerate(curve, start=1):
        keep, stop = rule.step(acc, loss)
        if keep:
            kept = epoch
        if stop:
            stopped = epoch
            break
    return kept, stopped


def reference_gat_paper(curve, patience):
    # PetarV-/GAT execute_cora.py's loop, transcribed.
    vacc_mx, vlss_mn, curr_step, saved = 0.0, np.inf, 0, None
    for epoch, (acc, loss) in enumerate(curve, start=1):
        if acc >= vacc_mx or loss <= vlss_mn:
            if acc >= vacc_mx and loss <= vlss_mn:
                saved = epoch
            vacc_mx, vlss_mn = max(acc, vacc_mx), min(loss, vlss_mn)
            curr_step = 0
        else:
            curr_step += 1
            if curr_step == patience:
                return saved, epoch
    return saved, None


def test_selection_rules_on_scripted_curve():
    # Ours: best accuracy (ties: lower loss) = epoch 6; 3 epochs without
    # one after it -> stop at epoch 9.
    assert play(BestAccuracy(patience=3), CURVE) == (6, 9)
    # GAT paper: epochs 4 (0.7 >= 0.7, 0.85 <= 0.9) is the last where both
    # are best before 10; epoch 5 (loss) and 6 (acc) keep it going; stops
    # after 3 epochs with neither -> epoch 9, keeping epoch 4.
    assert play(GATPaperRule(patience=3), CURVE) == (4, 9)
    assert play(GATPaperRule(patience=4), CURVE) == (10, None)
    gen = np.random.default_rng(0)
    for _ in range(200):
        curve = [(round(a, 1), round(b, 1)) for a, b in
                 gen.uniform(size=(40, 2))]
        patience = int(gen.integers(1, 6))
        assert play(GATPaperRule(patience), curve) == reference_gat_paper(
            curve, patience)


def test_selection_state_round_trip():
    rule = GATPaperRule(3)
    play(rule, CURVE[:5])
    copy = GATPaperRule(3)
    copy.load_state_dict(rule.state_dict())
    assert play(copy, CURVE[5:]) == play(rule, CURVE[5:])


def test_fit_with_gat_paper_selection():
    # The 2-layer GAT: its one-head output layer has no loss across heads.
    config = Config(dataset='dictionary-lookup', methods=['ct'], k=3,
                    runs=1, epochs=5, selection='gat-paper', device='cpu',
                    align_over='heads')
    run = experiment(config)['runs'][0]
    assert 1 <= run['best_epoch'] <= run['epochs'] <= 5


# Alignment across heads ######################################################

LAYERS = [AlignedGATConv, AlignedGATv2Conv, AlignedTransformerConv]


@pytest.mark.parametrize('layer', LAYERS)
@pytest.mark.parametrize('divergence', ['ct', 'adversarial', 'mmd'])
def test_align_over_heads(layer, divergence):
    torch.manual_seed(0)
    x = torch.randn(10, 6)
    edge_index = torch.randint(10, (2, 30))
    conv = layer(6, 4, heads=3, divergence=divergence, num_samples=8,
                 align_over='heads')
    assert conv.align_over == 'heads'
    conv(x, edge_index)
    loss = conv.get_alignment_loss()
    assert loss.shape == () and torch.isfinite(loss)
    # Equal to a direct per-node loop with the shared adversary:
    key, query = conv._key_sample, conv._query_sample
    assert key.shape == query.shape == (8, 3, 4)
    direct = torch.stack([conv.divergence(query[i:i + 1], key[i:i + 1])[0]
                          for i in range(8)]).mean()
    assert torch.allclose(loss, direct, atol=1e-6)
    # Gradients reach the layer and (for adversaries) the adversary:
    loss.backward()
    lin = conv._input_linears()[0]
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    for p in conv.divergence.parameters():
        assert p.grad is not None and p.grad.shape == p.shape
    # The default is today's (over nodes):
    assert layer(6, 4, heads=3).align_over == 'nodes'


def test_align_over_heads_checks():
    # One head: nothing to align across heads, no adversary, no loss.
    one = AlignedGATConv(6, 4, heads=1, align_over='heads')
    assert one.divergence is None
    one(torch.randn(5, 6), torch.randint(5, (2, 9)))
    assert one.get_alignment_loss() == 0
    with pytest.raises(ValueError, match="'align_over' must be"):
        AlignedGATConv(6, 4, heads=2, align_over='tokens')
    conv = AlignedGATConv(6, 4, heads=2, align_over='heads').eval()
    conv(torch.randn(5, 6), torch.randint(5, (2, 9)))
    assert conv.get_alignment_loss() == 0


def test_across_heads_unequal_counts():
    from align_gnn.divergences import MMD
    q, k = torch.randn(5, 3, 4), torch.randn(7, 3, 4)
    assert torch.allclose(across_heads_loss(MMD(), q, k),
                          MMD()(q, k[:5]).mean())


# Platonov et al.'s models ####################################################

@pytest.mark.parametrize('model', PLATONOV_MODELS)
@pytest.mark.parametrize('method', ['none', 'ct'])
def test_platonov_models(model, method):
    torch.manual_seed(0)
    net = build_platonov_model(model, method, 5, 3, num_samples=8,
                               hidden=16, heads=4, layers=2, dropout=0.2,
                               align_over='heads' if method == 'ct' else
                               'nodes')
    x, edge_index = torch.randn(12, 5), torch.randint(12, (2, 40))
    out = net(x, edge_index)
    assert out.shape == (12, 3)
    blocks = 4 if 'gt' in model else 2  # GT: attention + feed-forward
    assert len(net.blocks) == len(net.norms) == blocks
    from align_gnn import alignment_loss
    loss = out.sum() + alignment_loss(net)
    loss.backward()
    assert net.input.weight.grad is not None
    net.eval()
    assert torch.allclose(net(x, edge_index), net(x, edge_index))


def test_platonov_sep_concatenates():
    net = build_platonov_model('platonov-gat-sep', 'none', 5, 2, hidden=8,
                               heads=2, layers=1)
    block = net.blocks[0]
    assert block.ff[0].in_features == 16 and not block.conv.add_self_loops
    net = build_platonov_model('platonov-gat', 'none', 5, 2, hidden=8,
                               heads=2, layers=1)
    assert net.blocks[0].ff[0].in_features == 8
    with pytest.raises(ValueError, match='multiple'):
        build_platonov_model('platonov-gt', 'none', 5, 2, hidden=10, heads=4)
