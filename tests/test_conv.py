import copy

import pytest
import torch
import torch.nn.functional as F

import torch_geometric.typing
from torch_geometric.nn import GAT, GATConv
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor

from align_gnn import AlignedGATConv, alignment_loss, convert
from align_gnn.conv import sample_rows

DIVERGENCES = ['ct', 'adversarial', 'sinkhorn', 'mmd']

edge_index = torch.tensor([[0, 1, 0, 2, 3, 3, 1], [1, 0, 2, 0, 0, 1, 3]])


def _pair(gat: GATConv, **kwargs) -> AlignedGATConv:
    r"""An aligned layer with :obj:`gat`'s configuration and weights."""
    aligned = AlignedGATConv(gat.in_channels, gat.out_channels, gat.heads,
                             gat.concat, edge_dim=gat.edge_dim,
                             residual=gat.res is not None, **kwargs)
    missing, unexpected = aligned.load_state_dict(gat.state_dict(),
                                                  strict=False)
    assert unexpected == []
    assert all(key.startswith('divergence.') for key in missing)
    return aligned


def _assert_same(out1, out2):
    if isinstance(out1, tuple):
        assert len(out1) == len(out2)
        for a, b in zip(out1, out2):
            _assert_same(a, b)
    elif isinstance(out1, SparseTensor):
        assert torch.allclose(out1.to_dense(), out2.to_dense(), atol=1e-6)
    elif out1.is_sparse or out1.layout != torch.strided:
        assert torch.allclose(out1.to_dense(), out2.to_dense(), atol=1e-6)
    else:
        assert out1.shape == out2.shape
        assert torch.allclose(out1, out2, atol=1e-6)


@pytest.mark.parametrize('divergence', DIVERGENCES + [None])
@pytest.mark.parametrize('heads', [1, 2])
@pytest.mark.parametrize('concat', [True, False])
@pytest.mark.parametrize('residual', [False, True])
@pytest.mark.parametrize('edge_dim', [None, 3])
@pytest.mark.parametrize('training', [True, False])
def test_equals_gat_conv(divergence, heads, concat, residual, edge_dim,
                         training):
    x = torch.randn(4, 8)
    edge_attr = None if edge_dim is None else torch.randn(7, edge_dim)
    gat = GATConv(8, 16, heads, concat, edge_dim=edge_dim,
                  residual=residual).train(training)
    conv = _pair(gat, divergence=divergence).train(training)

    assert isinstance(conv, GATConv)
    _assert_same(conv(x, edge_index, edge_attr), gat(x, edge_index,
                                                     edge_attr))
    _assert_same(
        conv(x, edge_index, edge_attr, return_attention_weights=True),
        gat(x, edge_index, edge_attr, return_attention_weights=True))

    loss = conv.get_alignment_loss()
    assert loss.dim() == 0 and torch.isfinite(loss)
    if not training or divergence is None:
        assert float(loss) == 0.0


@pytest.mark.parametrize('layout', ['csc', 'coo', 'sparse_tensor'])
@pytest.mark.parametrize('training', [True, False])
def test_sparse_adjacency(layout, training):
    x = torch.randn(4, 8)
    if layout == 'csc':
        adj = to_torch_csc_tensor(edge_index, size=(4, 4)).t()
    elif layout == 'coo':
        adj = to_torch_coo_tensor(edge_index, size=(4, 4)).t()
    else:
        assert torch_geometric.typing.WITH_TORCH_SPARSE, (
            "SparseTensor needs torch-sparse: pip install --no-build-isolation"
            " -e '.[scale]'")
        adj = SparseTensor.from_edge_index(edge_index,
                                           sparse_sizes=(4, 4)).t()
    gat = GATConv(8, 16, heads=2).train(training)
    conv = _pair(gat).train(training)
    expected = gat(x, edge_index)
    assert torch.allclose(conv(x, adj), expected, atol=1e-6)
    _assert_same(conv(x, adj, return_attention_weights=True),
                 gat(x, adj, return_attention_weights=True))
    if training:
        assert conv.get_alignment_loss() > 0


@pytest.mark.parametrize('shared_lin', [True, False])
@pytest.mark.parametrize('residual', [False, True])
def test_bipartite(shared_lin, residual):
    x1, x2 = torch.randn(4, 8), torch.randn(2, 8 if shared_lin else 16)
    edge_index_b = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    in_channels = 8 if shared_lin else (8, 16)
    gat = GATConv(in_channels, 32, heads=2, residual=residual)
    conv = _pair(gat)

    out = conv((x1, x2), edge_index_b)
    assert out.size() == (2, 64)
    assert torch.allclose(out, gat((x1, x2), edge_index_b), atol=1e-6)
    assert torch.allclose(conv((x1, x2), edge_index_b, size=(4, 2)),
                          gat((x1, x2), edge_index_b, size=(4, 2)), atol=1e-6)
    _assert_same(conv((x1, x2), edge_index_b, return_attention_weights=True),
                 gat((x1, x2), edge_index_b, return_attention_weights=True))
    assert conv.get_alignment_loss() > 0

    key, query = conv.key_query((x1, x2))
    assert key.size() == (4, 2, 32) and query.size() == (2, 2, 32)

    if not residual:  # GATConv needs `x_dst` for the residual connection.
        out = conv((x1, None), edge_index_b, size=(4, 2))
        assert torch.allclose(out, gat((x1, None), edge_index_b, size=(4, 2)),
                              atol=1e-6)
        # Without target features there are no queries to align:
        assert float(conv.get_alignment_loss()) == 0.0
        key, query = conv.key_query((x1, None))
        assert key.size() == (4, 2, 32) and query is None


def test_lazy_in_channels():
    x = torch.randn(4, 8)
    gat = GATConv(-1, 16, heads=2)
    gat(x, edge_index)
    conv = AlignedGATConv(-1, 16, heads=2)
    conv.load_state_dict(gat.state_dict(), strict=False)
    assert torch.allclose(conv(x, edge_index), gat(x, edge_index), atol=1e-6)
    assert conv.lin.weight.size() == (32, 8)


def test_empty_graph():
    gat = GATConv(8, 16, heads=2)
    conv = _pair(gat)
    x = torch.randn(4, 8)
    empty = torch.empty(2, 0, dtype=torch.long)
    assert torch.allclose(conv(x, empty), gat(x, empty), atol=1e-6)
    assert torch.isfinite(conv.get_alignment_loss())

    no_nodes = torch.empty(0, 8)
    out = conv(no_nodes, empty)
    assert out.size() == (0, 32)
    assert float(conv.get_alignment_loss()) == 0.0


def test_key_query_are_the_logit_halves():
    x = torch.randn(5, 8)
    conv = AlignedGATConv(8, 4, heads=3)
    key, query = conv.key_query(x)
    assert key.size() == query.size() == (5, 3, 4)
    projected = conv.lin(x).view(-1, 3, 4)
    assert torch.allclose(key, projected * conv.att_src)
    assert torch.allclose(query, projected * conv.att_dst)

    # Their sums over channels give GATConv's pre-softmax edge scores:
    conv.add_self_loops = False
    _, (ei, alpha) = conv(x, edge_index, return_attention_weights=True)
    logits = F.leaky_relu(key.sum(-1)[ei[0]] + query.sum(-1)[ei[1]], 0.2)
    for i in ei[1].unique():
        mask = ei[1] == i
        assert torch.allclose(alpha[mask], logits[mask].softmax(0), atol=1e-6)


def test_sample_rows():
    assert sample_rows(10, 16, torch.device('cpu')) is None
    index = sample_rows(1000, 64, torch.device('cpu'))
    assert index.numel() == 64 and index.unique().numel() == 64
    assert int(index.min()) >= 0 and int(index.max()) < 1000
    # Uniform: every row is drawn about equally often.
    counts = torch.zeros(100)
    for _ in range(2000):
        counts[sample_rows(100, 10, torch.device('cpu'))] += 1
    assert counts.min() > 100 and counts.max() < 300  # expected: 200


def test_sample_rows_of_huge_graphs():
    # Beyond 65,536 rows no permutation of all rows is built (10^12 rows
    # would take terabytes):
    index = sample_rows(10**12, 256, torch.device('cpu'))
    assert index.numel() == 256 and index.unique().numel() == 256
    assert int(index.min()) >= 0 and int(index.max()) < 10**12
    # Uniform over rows: each tenth of the rows gets a tenth of the draws.
    draws = torch.cat([
        sample_rows(100_000, 16, torch.device('cpu')) for _ in range(2000)
    ])
    counts = torch.bincount(draws // 10_000, minlength=10)
    assert counts.min() > 2900 and counts.max() < 3500  # expected: 3200
    for _ in range(200):  # without replacement
        index = sample_rows(100_000, 500, torch.device('cpu'))
        assert index.unique().numel() == 500


@pytest.mark.parametrize('num_samples', [16, 64])
def test_held_memory(num_samples):
    heads, channels = 4, 8
    x = torch.randn(10_000, 16)
    ei = torch.randint(0, 10_000, (2, 50_000))
    conv = AlignedGATConv(16, channels, heads=heads, num_samples=num_samples)
    conv(x, ei)
    held = conv._key_sample.numel() + conv._query_sample.numel()
    assert held <= 2 * heads * num_samples * channels
    assert conv._key_sample.size() == (num_samples, heads, channels)

    conv.eval()
    conv(x, ei)
    assert conv._key_sample is None and conv._query_sample is None


def test_one_node_sample_for_keys_and_queries():
    # Non-bipartite: the keys and queries are those of the same nodes.
    conv = AlignedGATConv(8, 4, heads=2, num_samples=16)
    x = torch.randn(100, 8)
    torch.manual_seed(1)
    conv(x, torch.randint(0, 100, (2, 300)))
    h = conv.lin(x).view(-1, 2, 4)
    key, query = conv._key_sample, conv._query_sample
    rows = [int((h * conv.att_src - k).abs().sum((1, 2)).argmin())
            for k in key]
    assert len(set(rows)) == 16
    assert torch.allclose(query, h[rows] * conv.att_dst, atol=1e-6)


@pytest.mark.parametrize('layout', [torch.sparse_csr, torch.sparse_coo])
def test_sparse_features(layout):
    x = (torch.rand(50, 30) < 0.1).float()
    ei = torch.randint(0, 50, (2, 200))
    conv = AlignedGATConv(30, 4, heads=2, num_samples=8)
    sparse = x.to_sparse_csr() if layout == torch.sparse_csr else x.to_sparse()
    torch.manual_seed(0)
    out = conv(x, ei)
    key, query = conv._key_sample, conv._query_sample
    torch.manual_seed(0)
    assert torch.allclose(conv(sparse, ei), out, atol=1e-6)
    assert torch.allclose(conv._key_sample, key, atol=1e-6)
    assert torch.allclose(conv._query_sample, query, atol=1e-6)
    conv.get_alignment_loss().backward()
    assert conv.lin.weight.grad.abs().sum() > 0


def test_num_samples_larger_than_graph():
    conv = AlignedGATConv(8, 4, heads=2, num_samples=1000)
    conv(torch.randn(4, 8), edge_index)
    assert conv._key_sample.size() == (4, 2, 4)
    assert torch.isfinite(conv.get_alignment_loss())


@pytest.mark.parametrize('divergence', DIVERGENCES)
def test_gradients_reach_attention_parameters(divergence):
    conv = AlignedGATConv(8, 4, heads=2, divergence=divergence)
    conv(torch.randn(30, 8), torch.randint(0, 30, (2, 60)))
    conv.get_alignment_loss().backward()
    for param in (conv.lin.weight, conv.att_src, conv.att_dst):
        assert param.grad is not None
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def _gat_parameters(conv):
    return [conv.lin.weight, conv.att_src, conv.att_dst]


@pytest.mark.parametrize('divergence', DIVERGENCES)
def test_model_minimises_adversary_maximises(divergence):
    torch.manual_seed(12345)
    x, ei = torch.randn(40, 8), torch.randint(0, 40, (2, 100))
    conv = AlignedGATConv(8, 4, heads=2, divergence=divergence,
                          num_samples=64)  # all 40 rows: no sampling noise

    def divergence_value():
        conv(x, ei)
        return conv.get_alignment_loss()

    # The model's step lowers the divergence (adversary frozen):
    before = divergence_value()
    before.backward()
    with torch.no_grad():
        for param in _gat_parameters(conv):
            param -= 0.05 * param.grad
    assert divergence_value() < before

    # The adversary's step (same loss, same SGD rule) raises it:
    adversary = list(conv.divergence.parameters())
    assert (len(adversary) > 0) == (divergence in ['ct', 'adversarial'])
    if divergence == 'ct':  # The navigator minimises, like the model.
        adversary = list(conv.divergence.critic.parameters())
    if adversary:
        conv.zero_grad()
        before = divergence_value()
        before.backward()
        with torch.no_grad():
            for param in adversary:
                param -= 0.05 * param.grad
        assert divergence_value() > before


def test_gradient_reversal_through_one_optimizer():
    torch.manual_seed(0)
    conv = AlignedGATConv(8, 4, heads=2, divergence='adversarial')
    x, ei = torch.randn(40, 8), torch.randint(0, 40, (2, 100))
    optimizer = torch.optim.SGD(conv.parameters(), lr=0.1)
    disc = conv.divergence.discriminator
    start = disc.weight2.detach().clone()
    conv(x, ei)
    loss = conv.get_alignment_loss()
    loss.backward()
    grad = disc.weight2.grad.clone()
    # The discriminator's gradient is the negated gradient of the value ...
    value_grad = torch.autograd.functional.jacobian(
        lambda w: _value_with_weight(conv, x, w), start)
    assert torch.allclose(grad, -value_grad, atol=1e-6)
    # ... so that the optimizer's descent step is an ascent on the value:
    optimizer.step()
    assert torch.allclose(disc.weight2, start + 0.1 * value_grad)


def _value_with_weight(conv, x, weight2):
    disc = conv.divergence.discriminator
    key, query = conv.key_query(x)
    key, query = key.detach().transpose(0, 1), query.detach().transpose(0, 1)

    def logits(z):
        h = F.leaky_relu(torch.baddbmm(disc.bias1, z, disc.weight1), 0.2)
        return torch.baddbmm(disc.bias2, h, weight2)

    bce = 0.5 * (F.softplus(-logits(key)).mean((1, 2)) +
                 F.softplus(logits(query)).mean((1, 2)))
    return (torch.log(torch.tensor(2.0)) - bce).mean()


@pytest.mark.parametrize('divergence', DIVERGENCES)
def test_zero_in_eval_and_when_off(divergence):
    conv = AlignedGATConv(8, 4, heads=2, divergence=divergence)
    conv(torch.randn(10, 8), edge_index)
    assert conv.get_alignment_loss() != 0
    conv.eval()
    assert float(conv.get_alignment_loss()) == 0.0
    conv.train()
    conv(torch.randn(10, 8), edge_index)
    conv.divergence = None
    assert float(conv.get_alignment_loss()) == 0.0


def test_deepcopy_after_training_forward():
    conv = AlignedGATConv(8, 4, heads=2)
    conv(torch.randn(10, 8), edge_index)
    clone = copy.deepcopy(conv)
    assert clone._key_sample is None
    assert conv._key_sample is not None


class PlanetoidGAT(torch.nn.Module):
    r"""The GAT of PyG's ``examples/gat.py``."""
    def __init__(self, in_channels, hidden_channels, out_channels, heads):
        super().__init__()
        self.conv1 = GATConv(in_channels, hidden_channels, heads, dropout=0.6)
        self.conv2 = GATConv(hidden_channels * heads, out_channels, heads=1,
                             concat=False, dropout=0.6)

    def forward(self, x, edge_index):
        x = F.dropout(x, p=0.6, training=self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.6, training=self.training)
        return self.conv2(x, edge_index)


@pytest.mark.parametrize('dtype', [torch.float, torch.double])
def test_convert(dtype):
    x = torch.randn(20, 16, dtype=dtype)
    ei = torch.randint(0, 20, (2, 60))
    model = PlanetoidGAT(16, 8, 3, heads=8).to(dtype).eval()
    expected = model(x, ei)
    original = copy.deepcopy(model)

    converted = convert(model, divergence='mmd', num_samples=32)
    assert converted is model
    assert isinstance(model.conv1, AlignedGATConv)
    assert isinstance(model.conv2, AlignedGATConv)
    assert not any(type(m) is GATConv for m in model.modules())
    assert isinstance(model.conv1.divergence, torch.nn.Module)
    assert model.conv1.num_samples == 32
    assert model.conv2.dropout == 0.6 and not model.conv2.concat
    assert model.conv1.att_src.dtype == dtype and not model.training
    assert torch.allclose(model(x, ei), expected, atol=1e-6)
    for (name, p1), (_, p2) in zip(original.named_parameters(),
                                   model.named_parameters()):
        assert torch.equal(p1, p2), name

    model.train()
    model(x, ei)
    loss = alignment_loss(model)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    assert torch.allclose(
        loss, model.conv1.get_alignment_loss() +
        model.conv2.get_alignment_loss())


def test_convert_pyg_models():
    x, ei = torch.randn(20, 16), torch.randint(0, 20, (2, 60))
    model = GAT(16, 32, num_layers=3, out_channels=4, heads=4).eval()
    expected = model(x, ei)
    convert(model)
    assert all(isinstance(conv, AlignedGATConv) for conv in model.convs)
    assert torch.allclose(model(x, ei), expected, atol=1e-6)

    conv = convert(GATConv(16, 8, heads=2))
    assert type(conv) is AlignedGATConv
    assert repr(conv) == 'AlignedGATConv(16, 8, heads=2)'


def test_alignment_loss_without_aligned_layers():
    loss = alignment_loss(PlanetoidGAT(16, 8, 3, heads=2))
    assert loss.dim() == 0 and float(loss) == 0.0


@pytest.mark.parametrize('divergence', ['ct', None])
def test_compile(divergence):
    torch.manual_seed(0)
    x, ei = torch.randn(50, 16), torch.randint(0, 50, (2, 200))
    model = convert(PlanetoidGAT(16, 8, 3, heads=2), divergence=divergence)
    compiled = torch.compile(model)

    loss = compiled(x, ei).sum() + alignment_loss(model)
    loss.backward()
    assert torch.isfinite(loss)
    if divergence is not None:
        assert alignment_loss(model) > 0

    model.eval()
    assert torch.allclose(compiled(x, ei), model(x, ei), atol=1e-5)
    assert float(alignment_loss(model)) == 0.0


@pytest.mark.parametrize('kwargs, match', [
    (dict(divergence='foo'), "'divergence' must be one of 'ct', 'advers"),
    (dict(num_samples=1), "'num_samples' must be an integer >= 2"),
    (dict(rho=1.5), r"'rho' must be a number in \[0, 1\]"),
    (dict(rho=-0.1), r"'rho' must be a number in \[0, 1\]"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AlignedGATConv(8, 4, **kwargs)


def test_bad_heads():
    with pytest.raises(ValueError, match="'heads' must be a positive"):
        AlignedGATConv(8, 4, heads=0)


@pytest.mark.parametrize('bad, match', [
    (edge_index.float(), r"'edge_index' to be of integer type .*float32"),
    (edge_index.t(), r"'edge_index' of shape \(2, num_edges\) \(got shape "
     r"\(7, 2\)\); for a \(num_edges, 2\) list of pairs pass"),
    (edge_index[0], r"'edge_index' of shape \(2, num_edges\) \(got shape "
     r"\(7,\)\)$"),
    (torch.cat([edge_index, edge_index[:1]]),
     r"'edge_index' of shape \(2, num_edges\) \(got shape \(3, 7\)\)"),
])
@pytest.mark.parametrize('add_self_loops', [True, False])
def test_bad_edge_index(bad, match, add_self_loops):
    # GATConv's own check is clear only without self-loops: adding them to
    # a malformed edge_index fails in torch.cat with an unrelated message.
    conv = AlignedGATConv(8, 4, heads=2, add_self_loops=add_self_loops)
    with pytest.raises(ValueError, match=match):
        conv(torch.randn(4, 8), bad)
    # Any integer type passes, as in GATConv:
    assert conv(torch.randn(4, 8), edge_index.int()).size() == (4, 8)


def test_channel_mismatch():
    conv1 = AlignedGATConv(8, 4, heads=2)  # outputs 8 channels
    conv2 = AlignedGATConv(6, 4)
    h = conv1(torch.randn(4, 8), edge_index)
    with pytest.raises(ValueError, match=r"^AlignedGATConv\(6, 4, heads=1\): "
                       r"expected 'x' to have 6 channels \(in_channels\) in "
                       r"its last dimension \(got 8, shape \(4, 8\)\)"):
        conv2(h, edge_index)
    with pytest.raises(ValueError, match=r"expected 'x' to be a 2-D tensor "
                       r"of shape \(num_nodes, in_channels\) \(got shape "
                       r"\(8,\)\)"):
        conv1(torch.randn(8), edge_index)

    bipartite = AlignedGATConv((8, 6), 4, heads=2)
    edge_index_b = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"'x\[1\]' to have 6 channels .*"
                       r"got 5"):
        bipartite((torch.randn(4, 8), torch.randn(2, 5)), edge_index_b)
    with pytest.raises(ValueError, match=r"'x\[0\]' to have 8 channels .*"
                       r"got 6"):
        bipartite((torch.randn(4, 6), torch.randn(2, 6)), edge_index_b)
    bipartite((torch.randn(4, 8), None), edge_index_b, size=(4, 2))

    # Lazy layers check against the size of their first input:
    lazy = AlignedGATConv(-1, 4, heads=2)
    lazy(torch.randn(4, 5), edge_index)
    with pytest.raises(ValueError, match=r"AlignedGATConv\(-1, 4, heads=2\): "
                       r"expected 'x' to have 5 channels"):
        lazy(torch.randn(4, 6), edge_index)
