from typing import Union

import torch
from torch import Tensor
from torch.nn import Module

from torch_geometric.utils import add_self_loops, degree, remove_self_loops

from align_gnn.arguments import POSITIVE, checked
from align_gnn.conv.aligned_attention import ARGUMENTS
from align_gnn.conv.aligned_gat_conv import AlignedGATConv
from align_gnn.conv.attention_sum import AttentionSum


class NormalizedGATConv(AlignedGATConv):
    r"""The graph attentional operator of DGL's ogbn-arxiv example
    (`examples/pytorch/ogb/ogbn-arxiv/gat.py`, the "GAT (norm. adj.)"
    entries of the OGB leaderboard): :class:`AlignedGATConv` with three
    options, each off in :class:`~torch_geometric.nn.conv.GATConv`.

    With :obj:`normalize=True` the source features are scaled by
    :math:`d^{\textrm{out}}_j{}^{-1/2}` before the attention and the
    aggregation, and the aggregate by :math:`d^{\textrm{in}}_i{}^{1/2}`
    (degrees of the full graph, self-loops included, at least :obj:`1`):

    .. math::
        \mathbf{x}^{\prime}_i = \sqrt{d^{\textrm{in}}_i}
        \sum_{j \in \mathcal{N}(i)} \alpha_{i,j}
        \frac{\mathbf{\Theta}\mathbf{x}_j}{\sqrt{d^{\textrm{out}}_j}}
        + \mathbf{W}_{\textrm{res}} \mathbf{x}_i,
        \qquad
        \alpha_{i,j} = \mathrm{softmax}_{j \in \mathcal{N}(i)}\,
        \mathrm{LeakyReLU}\left(\frac{\mathbf{a}_s^{\top}\mathbf{\Theta}
        \mathbf{x}_j}{\sqrt{d^{\textrm{out}}_j}} +
        \mathbf{a}_t^{\top}\mathbf{\Theta}\mathbf{x}_i\right).

    With :obj:`att_dst=False` the layer has no :math:`\mathbf{a}_t` (the
    logit is the source term alone: no query, so no alignment). In
    training mode, :obj:`edge_dropout` leaves a random fraction of the
    edges (:obj:`int(p * E)` of them) out of the softmax and the
    aggregation, drawn anew in every forward pass. The weights are
    initialized as DGL does (Xavier normal, gain :math:`\sqrt{2}`). The
    aggregation is :class:`AttentionSum` (no tensor of a message per edge,
    unlike :meth:`propagate`).

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Size of each output sample.
        heads, concat, negative_slope, dropout, bias, residual: As in
            :class:`~torch_geometric.nn.conv.GATConv`.
        add_self_loops (bool, optional): Remove the graph's self-loops and
            add one per node, before the degrees and the edge dropout.
            (default: :obj:`True`)
        att_dst (bool, optional): Learn the target attention vector
            :math:`\mathbf{a}_t`. (default: :obj:`True`)
        edge_dropout (float, optional): Fraction of the edges dropped in
            each training forward pass. (default: :obj:`0.`)
        normalize (bool, optional): The symmetric degree normalization
            above. (default: :obj:`True`)
        divergence, num_samples, rho, adversary_channels, align_over: As in
            :class:`AlignedGATConv`; :obj:`divergence` needs
            :obj:`att_dst=True`. (default: :obj:`None`, no alignment)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** node features :math:`(|\mathcal{V}|, H * F_{out})`
          or :math:`(|\mathcal{V}|, F_{out})` if :obj:`concat=False`
        - **alignment loss:** :math:`()`
    """
    @checked(dict(ARGUMENTS, in_channels=POSITIVE))
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        bias: bool = True,
        residual: bool = False,
        *,
        att_dst: bool = True,
        edge_dropout: float = 0.0,
        normalize: bool = True,
        divergence: Union[str, Module, None] = None,
        num_samples: int = 256,
        rho: float = 0.5,
        adversary_channels: int = 32,
        align_over: str = 'nodes',
    ):
        if divergence is not None and not att_dst:
            raise ValueError("Alignment needs queries: 'att_dst' must be "
                             "True when 'divergence' is set")
        super().__init__(in_channels, out_channels, heads, concat,
                         negative_slope, dropout, add_self_loops, bias=bias,
                         residual=residual, divergence=divergence,
                         num_samples=num_samples, rho=rho,
                         adversary_channels=adversary_channels,
                         align_over=align_over)
        self.edge_dropout, self.normalize = edge_dropout, normalize
        if not att_dst:
            self.att_dst = None

    def reset_parameters(self):
        super().reset_parameters()
        gain = torch.nn.init.calculate_gain('relu')
        for weight in (self.lin.weight, self.att_src, self.att_dst,
                       None if self.res is None else self.res.weight):
            if weight is not None:
                torch.nn.init.xavier_normal_(weight, gain=gain)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        r"""Runs the layer (see the class docstring) and, in training mode
        with a divergence, keeps a sample of keys
        :math:`\mathbf{a}_s \odot \mathbf{\Theta}\mathbf{x}_j /
        \sqrt{d^{\textrm{out}}_j}` and queries for
        :meth:`get_alignment_loss`."""
        self._check_inputs(x, edge_index)
        if self.training and self.check_finite:
            self._warn_non_finite(x)
        H, C, N = self.heads, self.out_channels, x.size(0)
        if self.add_self_loops:
            edge_index, _ = remove_self_loops(edge_index)
            edge_index, _ = add_self_loops(edge_index, num_nodes=N)
        x_src = x
        if self.normalize:
            src_scale = degree(edge_index[0], N).clamp(min=1).pow(-0.5)
            dst_scale = degree(edge_index[1], N).clamp(min=1).sqrt()
            x_src = x * src_scale.view(-1, 1)  # Theta is linear, no bias
        if self.training and self.edge_dropout > 0:
            num_edges = edge_index.size(1)
            keep = torch.randperm(num_edges, device=edge_index.device)
            keep = keep[int(num_edges * self.edge_dropout):].sort().values
            edge_index = edge_index[:, keep]

        h = self.lin(x).view(-1, H, C)
        h_src = h * src_scale.view(-1, 1, 1) if self.normalize else h
        alpha_src = (h_src * self.att_src).sum(dim=-1)
        alpha_dst = None if self.att_dst is None else (h *
                                                       self.att_dst).sum(-1)
        alpha = self.edge_updater(edge_index, alpha=(alpha_src, alpha_dst),
                                  edge_attr=None, size=(N, N))
        out = AttentionSum.apply(alpha, h_src, edge_index, N)
        if self.normalize:
            out = out * dst_scale.view(-1, 1, 1)
        out = out.view(-1, H * C) if self.concat else out.mean(dim=1)
        if self.res is not None:
            out = out + self.res(x)
        if self.bias is not None:
            out = out + self.bias
        self._keep_samples((x_src, x))
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, heads={self.heads}, '
                f'att_dst={self.att_dst is not None}, '
                f'edge_dropout={self.edge_dropout}, '
                f'normalize={self.normalize})')
