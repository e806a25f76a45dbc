r"""The models of the `"A Critical Look at the Evaluation of GNNs under
Heterophily" <https://arxiv.org/abs/2302.11640>`_ paper (Platonov et al.,
yandex-research/heterophilous-graphs, :file:`model.py`, :file:`modules.py`),
built from PyG's (or this project's aligned) attention layers:

    input Linear -> Dropout -> GELU
    -> L times: x = x + Block(LayerNorm(x))   (GT: + a feed-forward block)
    -> LayerNorm -> output Linear

- GAT block: the attention layer (its linear map plays the paper's input
  linear, self-loops added), then the feed-forward module
  Linear -> Dropout -> GELU -> Linear -> Dropout.
- GAT-sep: no self-loops; the node's own (linearly mapped) representation
  and the attention aggregate of its neighbours are concatenated before the
  feed-forward module (input width 2d).
- GT block: multi-head dot-product attention (TransformerConv without root
  weight, self-loops added), output Linear, Dropout; GT-sep concatenates the
  node's representation and the aggregate before the output Linear. Each GT
  block is followed by a residual feed-forward block.

The paper's defaults: hidden width 512, 8 heads, dropout 0.2, Adam lr 3e-5
without weight decay, 1000 steps, 1-5 blocks chosen on validation."""
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Dropout, GELU, LayerNorm, Linear, ModuleList, Sequential

from torch_geometric.nn import GATConv, GATv2Conv
from torch_geometric.utils import add_self_loops, remove_self_loops

from align_gnn.models import layer_factory

PLATONOV_MODELS = ('platonov-gat', 'platonov-gat-sep', 'platonov-gt',
                   'platonov-gt-sep')
PLATONOV_DEFAULTS = dict(hidden=512, heads=8, layers=5, dropout=0.2)


def feed_forward(dim: int, dropout: float, in_multiplier: int = 1):
    r"""The paper's feed-forward module: Linear, Dropout, GELU, Linear,
    Dropout."""
    return Sequential(Linear(in_multiplier * dim, dim), Dropout(dropout),
                      GELU(), Linear(dim, dim), Dropout(dropout))


def _check_heads(dim: int, heads: int):
    if dim % heads != 0:
        raise ValueError(f"'hidden' ({dim}) must be a multiple of 'heads' "
                         f"({heads})")


class GATBlock(torch.nn.Module):
    r"""Attention aggregation with a GAT-style layer (:obj:`conv` builds it
    from :obj:`(in, out, heads=, add_self_loops=)`), then
    :func:`feed_forward`; with :obj:`sep`, the node's own mapped
    representation is concatenated with the aggregate (no self-loops)."""
    def __init__(self, dim: int, heads: int, dropout: float, conv: Callable,
                 sep: bool = False):
        super().__init__()
        _check_heads(dim, heads)
        self.sep = sep
        self.conv = conv(dim, dim // heads, heads=heads,
                         add_self_loops=not sep)
        self.ff = feed_forward(dim, dropout, 2 if sep else 1)

    def own(self, x: Tensor) -> Tensor:
        conv = self.conv
        if isinstance(conv, GATConv):
            return (conv.lin if conv.lin is not None else conv.lin_dst)(x)
        if isinstance(conv, GATv2Conv):
            return conv.lin_r(x)
        raise TypeError(f'no own representation for {conv}')

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        message = self.conv(x, edge_index)
        if self.sep:
            message = torch.cat([self.own(x), message], dim=-1)
        return self.ff(message)


class GTBlock(torch.nn.Module):
    r"""Multi-head dot-product attention (:obj:`conv` builds a
    :class:`~torch_geometric.nn.conv.TransformerConv`-like layer from
    :obj:`(in, out, heads=, root_weight=)`), output Linear and Dropout; with
    :obj:`sep`, the input is concatenated with the aggregate before the
    output Linear."""
    def __init__(self, dim: int, heads: int, dropout: float, conv: Callable,
                 sep: bool = False):
        super().__init__()
        _check_heads(dim, heads)
        self.sep = sep
        self.conv = conv(dim, dim // heads, heads=heads, root_weight=False)
        self.out = Linear(2 * dim if sep else dim, dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        message = self.conv(x, edge_index)
        if self.sep:
            message = torch.cat([x, message], dim=-1)
        return self.dropout(self.out(message))


class FeedForwardBlock(torch.nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.ff = feed_forward(dim, dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.ff(x)


class PlatonovGNN(torch.nn.Module):
    r"""The residual model of Platonov et al. (see the module's
    description).

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Number of classes.
        model (str): One of :data:`PLATONOV_MODELS`.
        conv (callable): Builds the attention layer: GATConv- or
            GATv2Conv-like for :obj:`"platonov-gat[-sep]"`,
            TransformerConv-like for :obj:`"platonov-gt[-sep]"` (plain or
            aligned).
        hidden (int): Width :math:`d`. (default: :obj:`512`)
        heads (int): Attention heads (dividing :math:`d`).
            (default: :obj:`8`)
        layers (int): Number of attention blocks. (default: :obj:`5`)
        dropout (float): Dropout probability. (default: :obj:`0.2`)
    """
    def __init__(self, in_channels: int, out_channels: int, model: str,
                 conv: Callable, hidden: int = 512, heads: int = 8,
                 layers: int = 5, dropout: float = 0.2):
        super().__init__()
        if model not in PLATONOV_MODELS:
            raise ValueError(f"Unknown model {model!r} (choose from "
                             f"{', '.join(PLATONOV_MODELS)})")
        self.model = model
        self.sep = model.endswith('-sep')
        self.transformer = model.startswith('platonov-gt')
        # As GATConv's: the GT adds self-loops (GATConv adds its own):
        self.add_self_loops = self.transformer and not self.sep
        self.input = Linear(in_channels, hidden)
        self.dropout = Dropout(dropout)
        self.blocks, self.norms = ModuleList(), ModuleList()
        for _ in range(layers):
            if self.transformer:
                self._add(GTBlock(hidden, heads, dropout, conv, self.sep),
                          hidden)
                self._add(FeedForwardBlock(hidden, dropout), hidden)
            else:
                self._add(GATBlock(hidden, heads, dropout, conv, self.sep),
                          hidden)
        self.output_norm = LayerNorm(hidden)
        self.output = Linear(hidden, out_channels)

    def _add(self, block: torch.nn.Module, dim: int):
        self.blocks.append(block)
        self.norms.append(LayerNorm(dim))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        if self.add_self_loops:
            edge_index, _ = remove_self_loops(edge_index)
            edge_index, _ = add_self_loops(edge_index, num_nodes=x.size(0))
        x = F.gelu(self.dropout(self.input(x)))
        for block, norm in zip(self.blocks, self.norms):
            x = x + block(norm(x), edge_index)
        return self.output(self.output_norm(x))


def build_platonov_model(model: str, method: str, in_channels: int,
                         out_channels: int, num_samples: int = 256,
                         rho: float = 0.5, conv: str = 'gat',
                         adversary_channels: int = 32, hidden: int = 512,
                         heads: int = 8, layers: int = 5,
                         dropout: float = 0.2, **align_kwargs) -> PlatonovGNN:
    r"""The :class:`PlatonovGNN` :obj:`model` whose attention layers are
    those of :obj:`method` (see :func:`~align_gnn.models.layer_factory`):
    the :obj:`conv` layer (:obj:`"gat"` or :obj:`"gatv2"`) for the GAT
    models, :obj:`"transformer"` for the GT models; :obj:`align_kwargs`
    (e.g. :obj:`align_over`) go to the aligned layers."""
    if model.startswith('platonov-gt'):
        if method in ('gatv2', 'supergat'):
            raise ValueError(f"method {method!r} has no transformer layer "
                             f"(use it with platonov-gat)")
        conv = 'transformer'
    elif conv == 'transformer':
        raise ValueError(f"{model} takes --conv gat or gatv2; use "
                         f"platonov-gt for transformer attention")
    if method == 'supergat':
        raise ValueError('supergat is not offered in the Platonov models')
    layer = layer_factory(method, num_samples, rho, conv, adversary_channels,
                          **align_kwargs)
    return PlatonovGNN(in_channels, out_channels, model, layer, hidden,
                       heads, layers, dropout)
