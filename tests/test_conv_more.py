r"""AlignedGATv2Conv and AlignedTransformerConv: the contract of
AlignedGATConv (tests/test_conv.py) for GATv2Conv and TransformerConv."""
import pytest
import torch

from torch_geometric.nn import GATConv, GATv2Conv, TransformerConv
from torch_geometric.utils import softmax

from align_gnn import (
    AlignedGATConv,
    AlignedGATv2Conv,
    AlignedTransformerConv,
    alignment_loss,
    convert,
)

edge_index = torch.tensor([[0, 1, 0, 2, 3, 3, 1], [1, 0, 2, 0, 0, 1, 3]])


def _pair(plain, aligned_type, **kwargs):
    torch.manual_seed(1)
    aligned = aligned_type(**kwargs)
    missing, unexpected = aligned.load_state_dict(plain.state_dict(),
                                                  strict=False)
    assert unexpected == []
    assert all(key.startswith('divergence.') for key in missing)
    return aligned.train(plain.training)


def _same(out1, out2):
    if isinstance(out1, tuple):
        for a, b in zip(out1, out2):
            _same(a, b)
    else:
        assert out1.shape == out2.shape
        assert torch.allclose(out1, out2, atol=1e-6)


GATV2 = [dict(heads=h, concat=c, share_weights=s, residual=r, edge_dim=e)
         for h in (1, 2) for c in (True, False) for s in (False, True)
         for r in (False, True) for e in (None, 3)]
TRANSFORMER = [dict(heads=h, concat=c, beta=b, root_weight=w, edge_dim=e)
               for h in (1, 2) for c in (True, False) for b in (False, True)
               for w in (True, False) for e in (None, 3)]


@pytest.mark.parametrize('divergence', ['ct', 'mmd', None])
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('plain_type,aligned_type,kwargs', [
    *[(GATv2Conv, AlignedGATv2Conv, kwargs) for kwargs in GATV2],
    *[(TransformerConv, AlignedTransformerConv, kwargs)
      for kwargs in TRANSFORMER],
])
def test_equals_pyg_layer(plain_type, aligned_type, kwargs, divergence,
                          training):
    torch.manual_seed(0)
    x = torch.randn(4, 8)
    edge_attr = None if kwargs['edge_dim'] is None else torch.randn(
        7, kwargs['edge_dim'])
    plain = plain_type(8, 16, **kwargs).train(training)
    conv = _pair(plain, aligned_type, in_channels=8, out_channels=16,
                 divergence=divergence, num_samples=3, **kwargs)
    assert isinstance(conv, plain_type)
    torch.manual_seed(2)  # attention dropout off; same draws anyway
    _same(conv(x, edge_index, edge_attr), plain(x, edge_index, edge_attr))
    _same(conv(x, edge_index, edge_attr, return_attention_weights=True),
          plain(x, edge_index, edge_attr, return_attention_weights=True))
    loss = conv.get_alignment_loss()
    assert loss.dim() == 0 and torch.isfinite(loss)
    if not training or divergence is None:
        assert float(loss) == 0.0
    elif not kwargs.get('share_weights'):
        assert float(loss.detach()) != 0.0
        loss.backward()
        lin = conv.lin_l if aligned_type is AlignedGATv2Conv else (
            conv.lin_query)
        assert lin.weight.grad.abs().sum() > 0
    assert repr(conv) == repr(plain).replace(plain_type.__name__,
                                             aligned_type.__name__)


@pytest.mark.parametrize('aligned_type', [AlignedGATv2Conv,
                                          AlignedTransformerConv])
def test_bipartite(aligned_type):
    x = (torch.randn(5, 8), torch.randn(3, 6))
    bipartite = torch.tensor([[0, 1, 4, 2], [0, 1, 2, 2]])
    kwargs = dict(add_self_loops=False) if (
        aligned_type is AlignedGATv2Conv) else {}
    conv = aligned_type((8, 6), 4, heads=2, num_samples=3, **kwargs).train()
    assert conv(x, bipartite).shape == (3, 8)
    key, query = conv._key_sample, conv._query_sample
    assert key.shape == (3, 2, 4) and query.shape == (3, 2, 4)
    assert torch.isfinite(conv.get_alignment_loss())
    with pytest.raises(ValueError, match=r"expected 'x\[1\]' to have 6"):
        conv((x[0], torch.randn(3, 5)), bipartite)


def test_transformer_key_query_give_the_scores():
    torch.manual_seed(0)
    conv = AlignedTransformerConv(8, 4, heads=2).eval()
    x = torch.randn(4, 8)
    _, (index, alpha) = conv(x, edge_index, return_attention_weights=True)
    key, query = conv.key_query(x)
    logits = (query[index[1]] * key[index[0]]).sum(-1) / 2.0  # sqrt(C)
    assert torch.allclose(softmax(logits, index[1]), alpha, atol=1e-6)


def test_gatv2_key_query_give_the_scores():
    torch.manual_seed(0)
    conv = AlignedGATv2Conv(8, 4, heads=2, add_self_loops=False).eval()
    x = torch.randn(4, 8)
    _, (index, alpha) = conv(x, edge_index, return_attention_weights=True)
    key, query = conv.key_query(x)
    hidden = torch.nn.functional.leaky_relu(key[index[0]] + query[index[1]],
                                            0.2)
    logits = (hidden * conv.att).sum(-1)
    assert torch.allclose(softmax(logits, index[1]), alpha, atol=1e-6)


def test_shared_weights_give_equal_keys_and_queries():
    conv = AlignedGATv2Conv(8, 4, heads=2, share_weights=True,
                            divergence='mmd').train()
    conv(torch.randn(5, 8), edge_index)
    assert torch.equal(conv._key_sample, conv._query_sample)
    assert float(conv.get_alignment_loss().detach()) == pytest.approx(
        0.0, abs=1e-6)


class Mixed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gat = GATConv(8, 4, heads=2)
        self.gatv2 = GATv2Conv(8, 4, heads=2, edge_dim=3, residual=True)
        self.transformer = TransformerConv(16, 3, heads=2, concat=False,
                                           beta=True)

    def forward(self, x, edge_index, edge_attr):
        h = torch.cat([self.gat(x, edge_index),
                       self.gatv2(x, edge_index, edge_attr)], dim=-1)
        return self.transformer(h.relu(), edge_index)


@pytest.mark.parametrize('training', [True, False])
def test_convert_mixed_model(training):
    torch.manual_seed(0)
    model = Mixed().train(training)
    x, edge_attr = torch.randn(4, 8), torch.randn(7, 3)
    expected = model(x, edge_index, edge_attr)
    converted = convert(model, divergence='ct', num_samples=3, rho=0.3)
    assert [type(m) for m in (converted.gat, converted.gatv2,
                              converted.transformer)] == [
        AlignedGATConv, AlignedGATv2Conv, AlignedTransformerConv]
    assert converted.gatv2.res is not None and converted.transformer.beta
    assert converted.transformer.divergence.rho == 0.3
    assert torch.allclose(converted(x, edge_index, edge_attr), expected,
                          atol=1e-6)
    loss = alignment_loss(converted)
    assert (float(loss.detach()) != 0.0) == training
    assert convert(converted, divergence='ct', num_samples=3,
                   rho=0.3) is converted  # aligned layers stay
