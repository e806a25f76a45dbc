from typing import Optional, Tuple, Union

from torch import Tensor
from torch.nn import Module

from torch_geometric.nn import GATv2Conv
from torch_geometric.typing import Adj, OptPairTensor, OptTensor

from align_gnn.arguments import checked
from align_gnn.conv.aligned_attention import ARGUMENTS, AlignedAttention


class AlignedGATv2Conv(AlignedAttention, GATv2Conv):
    r"""The GATv2 operator from the `"How Attentive are Graph Attention
    Networks?" <https://arxiv.org/abs/2105.14491>`_ paper with alignment
    attention (see :class:`AlignedGATConv`).

    The forward pass is exactly :class:`~torch_geometric.nn.conv.GATv2Conv`'s,
    which scores an edge :math:`j \rightarrow i` in head :math:`h` as
    :math:`\mathbf{a}^{h\top} \mathrm{LeakyReLU}(\mathbf{k}^h_j +
    \mathbf{q}^h_i)` with the per-head source and target transforms as key
    and query:

    .. math::
        \mathbf{k}^h_j = \mathbf{\Theta}^h_{s} \mathbf{x}_j, \qquad
        \mathbf{q}^h_i = \mathbf{\Theta}^h_{t} \mathbf{x}_i.

    With :obj:`share_weights=True` both use the same transform, so on a graph
    whose keys and queries are sampled from the same nodes the divergence
    is zero: alignment is only meaningful with separate weights (the
    default) or bipartite inputs.

    Args:
        in_channels, out_channels, heads, concat, negative_slope, dropout,
        add_self_loops, edge_dim, fill_value, bias, share_weights, residual:
            As in :class:`~torch_geometric.nn.conv.GATv2Conv`.
        divergence (str or torch.nn.Module, optional): The divergence between
            queries and keys, as in :class:`AlignedGATConv`.
            (default: :obj:`"ct"`)
        num_samples (int, optional): Maximum number of keys and of queries
            sampled per forward pass. (default: :obj:`256`)
        rho (float, optional): Weight of the forward (query-to-key) transport
            of :obj:`"ct"`. (default: :obj:`0.5`)
        adversary_channels (int, optional): Width of the adversary of
            :obj:`"ct"` or :obj:`"adversarial"`. (default: :obj:`32`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        As :class:`~torch_geometric.nn.conv.GATv2Conv`; the alignment loss
        is 0-dim.
    """
    @checked(ARGUMENTS)
    def __init__(
        self,
        in_channels: Union[int, Tuple[int, int]],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        edge_dim: Optional[int] = None,
        fill_value: Union[float, Tensor, str] = 'mean',
        bias: bool = True,
        share_weights: bool = False,
        residual: bool = False,
        *,
        divergence: Union[str, Module, None] = 'ct',
        num_samples: int = 256,
        rho: float = 0.5,
        adversary_channels: int = 32,
        align_over: str = 'nodes',
        **kwargs,
    ):
        module = self._resolve(divergence, heads, out_channels, rho,
                               adversary_channels, align_over)
        super().__init__(in_channels, out_channels, heads, concat,
                         negative_slope, dropout, add_self_loops, edge_dim,
                         fill_value, bias, share_weights, residual, **kwargs)
        self._init_alignment(module, divergence, num_samples, rho,
                             adversary_channels, align_over)

    def key_query(
        self,
        x: Union[Tensor, OptPairTensor],
    ) -> Tuple[Tensor, Optional[Tensor]]:
        r"""Returns the per-head keys :math:`\mathbf{\Theta}_s
        \mathbf{x}_j` of shape :math:`(|\mathcal{V}_s|, H, C)` and queries
        :math:`\mathbf{\Theta}_t \mathbf{x}_i` of shape
        :math:`(|\mathcal{V}_t|, H, C)` (:obj:`None` without target
        features)."""
        H, C = self.heads, self.out_channels
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        key = self.lin_l(x_src).view(-1, H, C)
        if x_dst is None:
            return key, None
        if x_dst is x_src and self.share_weights:
            return key, key
        return key, self.lin_r(x_dst).view(-1, H, C)

    def _input_linears(self) -> Tuple[Module, Module]:
        return self.lin_l, self.lin_r

    def forward(
        self,
        x: Union[Tensor, OptPairTensor],
        edge_index: Adj,
        edge_attr: OptTensor = None,
        return_attention_weights: Optional[bool] = None,
    ):
        r"""Runs :meth:`GATv2Conv.forward` and keeps the samples of keys and
        queries, with the checks of :meth:`AlignedGATConv.forward`."""
        return self._aligned_forward(x, edge_index, edge_attr,
                                     return_attention_weights)
