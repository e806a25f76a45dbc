r"""The models: the two-layer GAT of PyG's `examples/gat.py` for Planetoid
and the GAT of DGL's ogbn-arxiv leaderboard example, with plain, aligned or
peer attention layers."""
from functools import partial
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, ModuleList

from torch_geometric.nn import (
    GATConv,
    GATv2Conv,
    SuperGATConv,
    TransformerConv,
)

from align_gnn.conv import (
    AlignedGATConv,
    AlignedGATv2Conv,
    AlignedTransformerConv,
    NormalizedGATConv,
    adversary_parameters,  # noqa: F401 (re-exported)
    quiet_sparse_csr,
)
from align_gnn.divergences import DIVERGENCES

METHODS = ('none', *DIVERGENCES, 'gatv2', 'supergat')
# The attention layer (plain, aligned) of each `conv` choice:
CONVS = {
    'gat': (GATConv, AlignedGATConv),
    'gatv2': (GATv2Conv, AlignedGATv2Conv),
    'transformer': (TransformerConv, AlignedTransformerConv),
}


def dropout_features(x: Tensor, p: float, training: bool) -> Tensor:
    r""":func:`torch.nn.functional.dropout` of a dense or sparse CSR matrix
    (in the latter case, of its stored values: zeros stay zeros either
    way)."""
    if x.layout != torch.sparse_csr:
        return F.dropout(x, p=p, training=training)
    with quiet_sparse_csr():
        return torch.sparse_csr_tensor(
            x.crow_indices(), x.col_indices(),
            F.dropout(x.values(), p=p, training=training), x.size(),
            check_invariants=False)


class GAT(torch.nn.Module):
    r"""The two-layer graph attention network of PyG's `examples/gat.py`:
    dropout, a multi-head layer with ELU, dropout, and an output layer whose
    heads are averaged.

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Number of classes.
        conv (callable): Builds a layer from
            :obj:`(in_channels, out_channels, heads=, concat=, dropout=)`,
            e.g. :class:`~torch_geometric.nn.conv.GATConv`.
        hidden_channels (int, optional): Channels per hidden head.
            (default: :obj:`8`)
        heads (int, optional): Number of hidden heads. (default: :obj:`8`)
        output_heads (int, optional): Number of output heads.
            (default: :obj:`1`)
        dropout (float, optional): Dropout probability of the features and
            of the attention coefficients. (default: :obj:`0.6`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` (dense or
          sparse CSR),
          edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** logits :math:`(|\mathcal{V}|, F_{out})`
    """
    def __init__(self, in_channels: int, out_channels: int, conv: Callable,
                 hidden_channels: int = 8, heads: int = 8,
                 output_heads: int = 1, dropout: float = 0.6):
        super().__init__()
        self.dropout = dropout
        self.conv1 = conv(in_channels, hidden_channels, heads=heads,
                          dropout=dropout)
        self.conv2 = conv(hidden_channels * heads, out_channels,
                          heads=output_heads, concat=False, dropout=dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = dropout_features(x, self.dropout, self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, p=self.dropout, training=self.training)
        return self.conv2(x, edge_index)


def layer_factory(method: str, num_samples: int = 256, rho: float = 0.5,
                  conv: str = 'gat', adversary_channels: int = 32,
                  align_over: str = 'nodes') -> Callable:
    r"""The attention layer of :obj:`method`: :obj:`"none"` (the plain
    :obj:`conv` layer: :obj:`"gat"`
    :class:`~torch_geometric.nn.conv.GATConv`, :obj:`"gatv2"`
    :class:`~torch_geometric.nn.conv.GATv2Conv` or :obj:`"transformer"`
    :class:`~torch_geometric.nn.conv.TransformerConv`), an alignment
    divergence (:obj:`"ct"`, :obj:`"adversarial"`, :obj:`"sinkhorn"`,
    :obj:`"mmd"`: the aligned :obj:`conv` layer, e.g.
    :class:`~align_gnn.AlignedGATConv`), or a peer whatever :obj:`conv`:
    :obj:`"gatv2"` (:class:`~torch_geometric.nn.conv.GATv2Conv`) or
    :obj:`"supergat"` (:class:`~torch_geometric.nn.conv.SuperGATConv` as in
    PyG's `examples/super_gat.py`)."""
    if conv not in CONVS:
        raise ValueError(f"Unknown layer type {conv!r} (choose from "
                         f"{', '.join(CONVS)})")
    plain, aligned = CONVS[conv]
    if method == 'none':
        return plain
    if method in DIVERGENCES:
        return partial(aligned, divergence=method, num_samples=num_samples,
                       rho=rho, adversary_channels=adversary_channels,
                       align_over=align_over)
    if method == 'gatv2':
        return GATv2Conv
    if method == 'supergat':
        return partial(SuperGATConv, attention_type='MX',
                       edge_sample_ratio=0.8, is_undirected=True)
    raise ValueError(f"Unknown method {method!r} (choose from "
                     f"{', '.join(METHODS)})")


def build_model(method: str, in_channels: int, out_channels: int,
                output_heads: int = 1, num_samples: int = 256,
                rho: float = 0.5, conv: str = 'gat',
                adversary_channels: int = 32, align_over: str = 'nodes') -> GAT:
    r"""The :class:`GAT` with the layers of :obj:`method` and :obj:`conv`
    (see :func:`layer_factory`); :obj:`"supergat"` always has 8 output
    heads, as in PyG's `examples/super_gat.py`."""
    layer = layer_factory(method, num_samples, rho, conv, adversary_channels,
                          align_over)
    if method == 'supergat':
        output_heads = 8
    return GAT(in_channels, out_channels, layer, output_heads=output_heads)


def num_parameters(model: torch.nn.Module) -> int:
    r"""The number of trained parameters, adversaries included."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class ArxivGAT(torch.nn.Module):
    r"""The GAT of DGL's ogbn-arxiv example
    (`examples/pytorch/ogb/ogbn-arxiv/gat.py`, the "GAT (norm. adj.)"
    entries of the OGB leaderboard): input dropout, then :obj:`num_layers`
    attention layers, each with a bias-free linear residual connection;
    between layers batch normalization, ReLU and dropout. Hidden layers
    concatenate :obj:`heads` heads, the last has one head and a bias per
    class. With 128 features plus 40 label columns and 40 classes, and
    :class:`~align_gnn.conv.NormalizedGATConv` without :math:`\mathbf{a}_t`,
    it has DGL's 1,441,580 parameters.

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Number of classes.
        conv (callable): Builds a layer from
            :obj:`(in_channels, out_channels, heads=, concat=, bias=)`,
            e.g. :class:`~align_gnn.conv.NormalizedGATConv`.
        hidden_channels (int, optional): Channels per hidden head.
            (default: :obj:`250`)
        heads (int, optional): Number of heads of the hidden layers.
            (default: :obj:`3`)
        num_layers (int, optional): Number of attention layers.
            (default: :obj:`3`)
        dropout (float, optional): Dropout probability between layers.
            (default: :obj:`0.75`)
        input_dropout (float, optional): Dropout probability of the input
            features. (default: :obj:`0.1`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** logits :math:`(|\mathcal{V}|, F_{out})`
    """
    def __init__(self, in_channels: int, out_channels: int, conv: Callable,
                 hidden_channels: int = 250, heads: int = 3,
                 num_layers: int = 3, dropout: float = 0.75,
                 input_dropout: float = 0.1):
        super().__init__()
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.convs, self.skips = ModuleList(), ModuleList()
        self.norms = ModuleList()
        width = hidden_channels * heads
        for i in range(num_layers):
            last = i == num_layers - 1
            in_size = in_channels if i == 0 else width
            self.convs.append(
                conv(in_size, out_channels if last else hidden_channels,
                     heads=1 if last else heads, concat=not last, bias=last))
            self.skips.append(
                Linear(in_size, out_channels if last else width, bias=False))
            if not last:
                self.norms.append(BatchNorm1d(width))
        self.reset_parameters()

    def reset_parameters(self):
        r"""Resets the layers; the residual weights as DGL's (Xavier
        normal, gain :math:`\sqrt{2}`)."""
        for module in (*self.convs, *self.norms):
            module.reset_parameters()
        for skip in self.skips:
            torch.nn.init.xavier_normal_(
                skip.weight, gain=torch.nn.init.calculate_gain('relu'))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = dropout_features(x, self.input_dropout, self.training)
        for i, (conv, skip) in enumerate(zip(self.convs, self.skips)):
            x = conv(x, edge_index) + skip(x)
            if i < len(self.norms):
                x = F.relu(self.norms[i](x))
                x = F.dropout(x, p=self.dropout, training=self.training)
        return x


def build_arxiv_model(method: str, in_channels: int, out_channels: int,
                      num_samples: int = 256, rho: float = 0.5,
                      conv: str = 'gat', adversary_channels: int = 32,
                      align_over: str = 'nodes',
                      att_dst: Optional[bool] = None,
                      edge_dropout: float = 0.1, normalize: bool = True,
                      **kwargs) -> ArxivGAT:
    r"""The :class:`ArxivGAT` of :obj:`method`: for :obj:`"none"` and the
    divergences with :obj:`conv="gat"`,
    :class:`~align_gnn.conv.NormalizedGATConv` layers with
    :obj:`edge_dropout` and :obj:`normalize`, aligned with the divergence
    :obj:`method`; :obj:`att_dst` unset, without the target attention
    vector for :obj:`"none"` (DGL's recipe) and with it for the
    divergences (the query that alignment needs). Other methods and layers
    are those of :func:`layer_factory`. :obj:`kwargs` go to
    :class:`ArxivGAT`."""
    if conv != 'gat' or method not in ('none', *DIVERGENCES):
        layer = layer_factory(method, num_samples, rho, conv,
                              adversary_channels, align_over)
    else:
        aligned = method in DIVERGENCES
        layer = partial(NormalizedGATConv,
                        att_dst=aligned if att_dst is None else att_dst,
                        edge_dropout=edge_dropout, normalize=normalize,
                        divergence=method if aligned else None,
                        num_samples=num_samples, rho=rho,
                        adversary_channels=adversary_channels,
                        align_over=align_over)
    return ArxivGAT(in_channels, out_channels, layer, **kwargs)


def num_layers(model: torch.nn.Module) -> int:
    r"""The number of message passing layers of :obj:`model` (the depth of
    a neighbour sample)."""
    return sum(isinstance(module, (GATConv, GATv2Conv, SuperGATConv,
                                   TransformerConv))
               for module in model.modules())
