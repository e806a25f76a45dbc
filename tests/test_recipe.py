r"""DGL's ogbn-arxiv GAT recipe in PyG: each piece against a direct
computation on tiny graphs (the layer's normalization, edge dropout and
missing target attention, labels as input and label reuse, the loss, the
warm-up, the selection), the parameter count at ogbn-arxiv's shapes, and
the leaderboard report of the command line on the generated OGB-layout
graph."""
import json
import math
import subprocess
import sys
from pathlib import Path

import ogb
import pytest
import torch
import torch.nn.functional as F

from torch_geometric.data import Data
from torch_geometric.utils import scatter

from align_gnn import alignment_loss, training
from align_gnn.config import Config
from align_gnn.conv import (
    AttentionSum,
    NormalizedGATConv,
    adversary_parameters,
)
from align_gnn.models import ArxivGAT, build_arxiv_model, num_parameters
from align_gnn.recipe import (
    EPSILON,
    LabelInput,
    add_label_features,
    log_ce_loss,
)
from align_gnn.schedule import learning_rate
from align_gnn.selection import LowestLoss
from conftest import HANG_SECONDS
from fakes import write_fake_arxiv

REPO = Path(__file__).resolve().parents[1]
X = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0, 2, 4, 4, 1],
                           [1, 0, 1, 2, 3, 3, 0, 4, 4]])  # a self-loop 4->4


def direct(conv: NormalizedGATConv, x: torch.Tensor, src: torch.Tensor,
           dst: torch.Tensor, degree_edges=None) -> torch.Tensor:
    r"""The layer's output by hand: per node and head, a softmax over the
    incoming edges (:obj:`src`, :obj:`dst`), with the degrees of
    :obj:`degree_edges` (default: these edges)."""
    H, C, N = conv.heads, conv.out_channels, x.size(0)
    d_src, d_dst = degree_edges if degree_edges is not None else (src, dst)
    d_out = torch.bincount(d_src, minlength=N).float().clamp(min=1)
    d_in = torch.bincount(d_dst, minlength=N).float().clamp(min=1)
    out = torch.zeros(N, H, C)
    for h in range(H):
        hx = x @ conv.lin.weight.view(H, C, -1)[h].t()
        for i in range(N):
            js = src[dst == i]
            if js.numel() == 0:
                continue
            value = hx[js]
            if conv.normalize:
                value = value / d_out[js].sqrt().unsqueeze(-1)
            logit = value @ conv.att_src[0, h]
            if conv.att_dst is not None:
                logit = logit + hx[i] @ conv.att_dst[0, h]
            alpha = torch.softmax(F.leaky_relu(logit, 0.2), dim=0)
            out[i, h] = (alpha.unsqueeze(-1) * value).sum(0)
            if conv.normalize:
                out[i, h] *= d_in[i].sqrt()
    out = out.view(N, H * C) if conv.concat else out.mean(1)
    if conv.res is not None:
        out = out + conv.res(x)
    return out if conv.bias is None else out + conv.bias


def with_loops(edge_index: torch.Tensor, num_nodes: int):
    keep = edge_index[0] != edge_index[1]
    loops = torch.arange(num_nodes)
    return (torch.cat([edge_index[0, keep], loops]),
            torch.cat([edge_index[1, keep], loops]))


@pytest.mark.parametrize('att_dst', [False, True])
@pytest.mark.parametrize('normalize', [False, True])
@pytest.mark.parametrize('heads,concat', [(1, True), (2, True), (2, False)])
@pytest.mark.parametrize('residual,bias', [(False, True), (True, False)])
def test_normalized_gat_conv_direct(att_dst, normalize, heads, concat,
                                    residual, bias):
    torch.manual_seed(1)
    conv = NormalizedGATConv(3, 4, heads=heads, concat=concat,
                             residual=residual, bias=bias, att_dst=att_dst,
                             normalize=normalize)
    torch.nn.init.normal_(conv.bias) if bias else None
    out = conv(X, EDGE_INDEX)
    assert out.shape == (5, heads * 4 if concat else 4)
    assert torch.allclose(out, direct(conv, X, *with_loops(EDGE_INDEX, 5)),
                          atol=1e-6)


def test_normalized_gat_conv_without_self_loops():
    conv = NormalizedGATConv(3, 4, heads=2, add_self_loops=False)
    out = conv(X, EDGE_INDEX)
    assert torch.allclose(out, direct(conv, X, *EDGE_INDEX), atol=1e-6)


def test_no_target_attention():
    conv = NormalizedGATConv(3, 4, heads=2, att_dst=False)
    names = {name for name, _ in conv.named_parameters()}
    assert 'att_dst' not in names and 'att_src' in names
    assert conv.att_dst is None
    conv.reset_parameters()  # no target vector to initialize
    assert 'att_dst=False' in repr(conv)
    with pytest.raises(ValueError, match="'att_dst' must be True"):
        NormalizedGATConv(3, 4, att_dst=False, divergence='ct')


def test_edge_dropout_leaves_edges_out_of_the_softmax():
    conv = NormalizedGATConv(3, 4, heads=2, edge_dropout=0.4)
    src, dst = with_loops(EDGE_INDEX, 5)  # 13 edges, 5 of them dropped
    torch.manual_seed(7)
    out = conv(X, EDGE_INDEX)
    torch.manual_seed(7)
    keep = torch.randperm(src.numel())[int(0.4 * src.numel()):]
    assert keep.numel() == 8
    # The softmax over the kept edges, the degrees of the whole graph:
    expected = direct(conv, X, src[keep], dst[keep], (src, dst))
    assert torch.allclose(out, expected, atol=1e-6)
    # A new draw in every training step, none in evaluation:
    assert not torch.allclose(conv(X, EDGE_INDEX), out)
    conv.eval()
    assert torch.allclose(conv(X, EDGE_INDEX), direct(conv, X, src, dst),
                          atol=1e-6)
    with pytest.raises(ValueError, match="'edge_dropout' must be a number in"):
        NormalizedGATConv(3, 4, edge_dropout=1.0)


def test_aligned_keys_are_the_logit_halves():
    conv = NormalizedGATConv(3, 4, heads=2, divergence='mmd',
                             num_samples=8)
    conv(X, EDGE_INDEX)
    src, _ = with_loops(EDGE_INDEX, 5)
    d_out = torch.bincount(src, minlength=5).float()
    h = (X @ conv.lin.weight.t()).view(5, 2, 4)
    # All 5 nodes sampled (num_samples >= 5), in the order of a permutation:
    key, query = conv._key_sample, conv._query_sample
    expected_key = h * conv.att_src / d_out.sqrt().view(-1, 1, 1)
    expected_query = h * conv.att_dst
    order = lambda t: sorted(t.sum(-1).flatten().tolist())  # noqa: E731
    assert order(key) == pytest.approx(order(expected_key), abs=1e-6)
    assert order(query) == pytest.approx(order(expected_query), abs=1e-6)
    assert alignment_loss(torch.nn.ModuleList([conv])) > 0


def test_recipe_parameter_count():
    # 128 features + 40 label columns, 40 classes: DGL's 1,441,580.
    model = build_arxiv_model('none', 128 + 40, 40)
    assert num_parameters(model) == 1_441_580
    config = Config(dataset='ogbn-arxiv', methods=['none'])
    data = Data(x=torch.zeros(2, 128), edge_index=EDGE_INDEX[:, :0])
    data.num_classes = 40
    assert num_parameters(training.make_model('none', data, config)) == (
        1_441_580)
    # The query vectors: 750 + 750 + 40 more; an aligned model counts its
    # adversary too.
    with_query = build_arxiv_model('none', 168, 40, att_dst=True)
    assert num_parameters(with_query) == 1_441_580 + 1_540
    ct = training.make_model('ct', data, config)
    adversary = sum(p.numel() for p in adversary_parameters(ct))
    assert adversary > 0
    assert num_parameters(ct) == 1_441_580 + 1_540 + adversary
    assert all(isinstance(conv, NormalizedGATConv) and conv.att_dst
               is not None and conv.divergence is not None
               for conv in ct.convs)


def test_recipe_model_layout():
    model = build_arxiv_model('none', 168, 40)
    convs = model.convs
    assert [(c.heads, c.out_channels, c.concat) for c in convs] == [
        (3, 250, True), (3, 250, True), (1, 40, False)]
    assert [c.bias is not None for c in convs] == [False, False, True]
    assert all(c.att_dst is None and c.normalize and c.edge_dropout == 0.1
               and c.add_self_loops and c.dropout == 0 for c in convs)
    assert all(skip.bias is None for skip in model.skips)
    assert (model.dropout, model.input_dropout) == (0.75, 0.1)
    assert len(model.norms) == 2


def test_recipe_forward_is_conv_plus_residual():
    torch.manual_seed(0)
    model = ArxivGAT(3, 2, NormalizedGATConv, hidden_channels=4, heads=2,
                     num_layers=2).eval()
    h = model.convs[0](X, EDGE_INDEX) + model.skips[0](X)
    h = F.relu(model.norms[0](h))
    expected = model.convs[1](h, EDGE_INDEX) + model.skips[1](h)
    assert torch.allclose(model(X, EDGE_INDEX), expected, atol=1e-6)


def test_log_ce_loss():
    logits = torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    ce = [float(-torch.log_softmax(logits[i], 0)[y[i]]) for i in range(6)]
    expected = sum(math.log(EPSILON + c) - math.log(EPSILON)
                   for c in ce) / 6
    assert EPSILON == pytest.approx(1 - math.log(2))
    assert float(log_ce_loss(logits, y)) == pytest.approx(expected, rel=1e-6)


def test_learning_rate_warmup():
    # DGL: epochs counted from 1, lr * epoch / 50 up to epoch 50.
    assert learning_rate(1, 0.002, 50) == pytest.approx(0.002 / 50)
    assert learning_rate(25, 0.002, 50) == pytest.approx(0.001)
    assert learning_rate(50, 0.002, 50) == learning_rate(2000, 0.002, 50) == (
        0.002)
    assert learning_rate(1, 0.002) == 0.002
    model = torch.nn.Linear(2, 2)
    config = Config(dataset='ogbn-arxiv', methods=['none'])
    optimizer = training.make_optimizer(model, config, 'none')
    assert isinstance(optimizer, torch.optim.RMSprop)
    assert optimizer.defaults['weight_decay'] == 0
    training.set_learning_rate(optimizer, 10, config.lr_warmup)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.002 * 10 / 50)


def test_lowest_loss_selection():
    rule = LowestLoss(patience=2)
    steps = [rule.step(acc, loss) for acc, loss in
             [(0.5, 1.0), (0.9, 1.1), (0.4, 0.8), (0.9, 0.9), (0.9, 0.85)]]
    assert steps == [(True, False), (False, False), (True, False),
                     (False, False), (False, True)]
    assert (rule.best_epoch, rule.best_acc) == (3, 0.4)


class Recorder(torch.nn.Module):
    # Returns fixed logits and records the inputs it sees.
    def __init__(self, logits):
        super().__init__()
        self.logits, self.inputs = logits, []

    def forward(self, x, edge_index):
        self.inputs.append(x.clone())
        return self.logits * (1 + 0 * x.sum())


def test_labels_as_input_and_reuse():
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    data = Data(x=torch.randn(6, 2), y=y, edge_index=EDGE_INDEX[:, :0],
                train_mask=torch.tensor([1, 1, 1, 1, 0, 0]).bool())
    onehot = add_label_features(data.x, y, torch.tensor([1, 3]), 3)
    assert torch.equal(onehot[:, :2], data.x)
    assert torch.equal(onehot[:, 2:], torch.tensor(
        [[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0],
         [0, 0, 0]]).float())

    logits = torch.randn(6, 3)
    model = Recorder(logits)
    torch.manual_seed(3)
    out, target = LabelInput(3).train_forward(model, data)
    torch.manual_seed(3)
    given = torch.arange(4)[torch.rand(4) < 0.5]
    assert torch.equal(target, torch.arange(4)[~torch.isin(torch.arange(4),
                                                           given)])
    assert torch.equal(model.inputs[0],
                       add_label_features(data.x, y, given, 3))
    assert torch.equal(out, logits)

    # Label reuse: the second pass sees the first pass's softmax in the
    # label columns of every node without a label input.
    model = Recorder(logits)
    out = LabelInput(3, reuse=1).eval_forward(model, data)
    first, second = model.inputs
    assert torch.equal(first, add_label_features(data.x, y, torch.arange(4),
                                                 3))
    assert torch.equal(second[:4], first[:4])
    assert torch.allclose(second[4:, 2:], logits[4:].softmax(-1))
    assert torch.equal(second[4:, :2], data.x[4:])


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, 'train_gat.py', *map(str, args)],
                          capture_output=True, text=True, cwd=REPO,
                          timeout=HANG_SECONDS)


@pytest.fixture(scope='module')
def arxiv_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('arxiv')
    write_fake_arxiv(root)
    return root


def test_cli_prints_the_leaderboard_report(arxiv_root, tmp_path):
    out = tmp_path / 'arxiv.json'
    argv = ['--dataset', 'ogbn-arxiv', '--root', arxiv_root, '--compare',
            'none,ct', '--runs', 2, '--epochs', 12, '--hidden', 8,
            '--align-samples', 16, '--quiet', '--device', 'cpu', '--out', out]
    result = cli(*argv)
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    config = results['config']
    assert (config['labels'], config['loss'], config['optimizer'],
            config['lr'], config['lr_warmup'], config['selection'],
            config['edge_drop'], config['norm_adj'], config['patience']) == (
        'input', 'log-ce', 'rmsprop', 0.002, 50, 'loss', 0.1, True, 12)
    for run in results['runs']:  # the model at the lowest validation loss
        assert run['epochs'] == 12 and 1 <= run['best_epoch'] <= 12
    entries = results['leaderboard']
    assert list(entries) == ['none', 'ct']
    for method, entry in entries.items():
        summary = results['summary'][method]
        for key in ('test_acc_mean', 'test_acc_std', 'val_acc_mean',
                    'val_acc_std', 'params'):
            assert entry[key] == summary[key]
        assert entry['seeds'] == [0, 1] and entry['runs'] == 2
        assert entry['ogb'] == ogb.__version__ and not entry['ext_data']
        assert entry['hardware'].endswith('CPU)')
        assert entry['command'] == 'python train_gat.py ' + ' '.join(
            map(str, argv))
        assert (f'  Test Accuracy        {entry["test_acc_mean"]:.4f} ± '
                f'{entry["test_acc_std"]:.4f}') in result.stdout
    none, ct = entries['none'], entries['ct']
    assert none['params'] == none['params_without_adversary']
    assert ct['params'] > ct['params_without_adversary']
    # The query vectors (8 * 3 + 8 * 3 + 40 classes) are the only other
    # difference:
    assert ct['params_without_adversary'] == none['params'] + 88
    assert (f'#Params              {ct["params"]:,} '
            f'({ct["params_without_adversary"]:,} without the adversary)'
            ) in result.stdout
    assert "each run's model at its lowest validation loss" in result.stdout
    assert f'ogb                  {ogb.__version__}' in result.stdout


def test_cli_label_reuse_and_plain_with_query(arxiv_root, tmp_path):
    out = tmp_path / 'reuse.json'
    result = cli('--dataset', 'ogbn-arxiv', '--root', arxiv_root, '--align',
                 'none', '--labels', 'reuse', '--att-dst', '--no-norm-adj',
                 '--runs', 1, '--epochs', 3, '--hidden', 8, '--quiet',
                 '--device', 'cpu', '--out', out)
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    assert (results['config']['labels'], results['config']['edge_drop'],
            results['config']['att_dst'],
            results['config']['norm_adj']) == ('reuse', 0.3, True, False)
    assert 'OGB leaderboard entry: ogbn-arxiv, method none' in result.stdout


def test_recipe_defaults_follow_the_labels():
    config = Config(dataset='ogbn-arxiv', methods=['none'], labels='reuse')
    assert config.edge_drop == 0.3
    data = Data(x=torch.zeros(2, 16), edge_index=EDGE_INDEX[:, :0])
    data.num_classes = 4
    model = training.make_model('none', data, config)
    assert model.input_dropout == 0.25
    assert model.convs[0].edge_dropout == 0.3
    assert model.convs[0].in_channels == 20
    assert Config(dataset='ogbn-arxiv', batch_size=8).labels == 'none'
    cora = Config(dataset='cora')
    assert (cora.labels, cora.loss, cora.optimizer, cora.lr_warmup,
            cora.selection, cora.patience, cora.edge_drop) == (
        'none', 'ce', 'adam', 0, 'acc', 100, None)


@pytest.mark.parametrize('argv,message', [
    (['--dataset', 'cora', '--labels', 'input'],
     "'labels' must be 'none' on cora"),
    (['--dataset', 'cora', '--edge-drop', '0.2'],
     "'edge_drop' must be unset except for the ogbn-arxiv GAT"),
    (['--dataset', 'ogbn-arxiv', '--align', 'ct', '--no-att-dst'],
     "'att_dst' must be True or unset with alignment"),
    (['--dataset', 'ogbn-arxiv', '--edge-drop', '1'],
     'argument --edge-drop: must be a number in [0, 1)'),
])
def test_cli_bad_recipe_settings(arxiv_root, tmp_path, argv, message):
    result = cli(*argv, '--root', arxiv_root, '--out', tmp_path / 'r.json')
    assert result.returncode == 2, result.stderr
    assert result.stderr.count('\n') == 1 and message in result.stderr


def test_attention_sum_against_scatter(monkeypatch):
    monkeypatch.setattr(AttentionSum, 'CHUNK_ELEMENTS', 8)  # many chunks
    gen = torch.Generator().manual_seed(0)
    alpha = torch.rand(9, 2, generator=gen, dtype=torch.double)
    x = torch.randn(5, 2, 3, generator=gen, dtype=torch.double)
    alpha.requires_grad_(), x.requires_grad_()
    out = AttentionSum.apply(alpha, x, EDGE_INDEX, 5)
    expected = scatter(alpha.unsqueeze(-1) * x[EDGE_INDEX[0]],
                       EDGE_INDEX[1], dim=0, dim_size=5, reduce='sum')
    assert torch.allclose(out, expected)
    assert torch.autograd.gradcheck(
        lambda a, v: AttentionSum.apply(a, v, EDGE_INDEX, 5), (alpha, x))
