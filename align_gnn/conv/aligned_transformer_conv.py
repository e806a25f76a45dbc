from typing import Optional, Tuple, Union

from torch import Tensor
from torch.nn import Module

from torch_geometric.nn import TransformerConv
from torch_geometric.typing import Adj, OptPairTensor, OptTensor

from align_gnn.arguments import checked
from align_gnn.conv.aligned_attention import ARGUMENTS, AlignedAttention


class AlignedTransformerConv(AlignedAttention, TransformerConv):
    r"""The graph transformer operator from the `"Masked Label Prediction:
    Unified Message Passing Model for Semi-Supervised Classification"
    <https://arxiv.org/abs/2009.03509>`_ paper with alignment attention (see
    :class:`AlignedGATConv`).

    The forward pass is exactly
    :class:`~torch_geometric.nn.conv.TransformerConv`'s, which scores an edge
    :math:`j \rightarrow i` in head :math:`h` as
    :math:`\langle \mathbf{q}^h_i, \mathbf{k}^h_j \rangle / \sqrt{C}`
    with its own query and key projections:

    .. math::
        \mathbf{k}^h_j = \mathbf{W}^h_{\textrm{key}} \mathbf{x}_j,
        \qquad
        \mathbf{q}^h_i = \mathbf{W}^h_{\textrm{query}} \mathbf{x}_i.

    Args:
        in_channels, out_channels, heads, concat, beta, dropout, edge_dim,
        bias, root_weight: As in
            :class:`~torch_geometric.nn.conv.TransformerConv`.
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
        As :class:`~torch_geometric.nn.conv.TransformerConv`; the alignment
        loss is 0-dim.
    """
    @checked(ARGUMENTS)
    def __init__(
        self,
        in_channels: Union[int, Tuple[int, int]],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        beta: bool = False,
        dropout: float = 0.,
        edge_dim: Optional[int] = None,
        bias: bool = True,
        root_weight: bool = True,
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
        super().__init__(in_channels, out_channels, heads, concat, beta,
                         dropout, edge_dim, bias, root_weight, **kwargs)
        self._init_alignment(module, divergence, num_samples, rho,
                             adversary_channels, align_over)

    def key_query(
        self,
        x: Union[Tensor, OptPairTensor],
    ) -> Tuple[Tensor, Optional[Tensor]]:
        r"""Returns the per-head keys :math:`\mathbf{W}_{\textrm{key}}
        \mathbf{x}_j` of shape :math:`(|\mathcal{V}_s|, H, C)` and queries
        :math:`\mathbf{W}_{\textrm{query}} \mathbf{x}_i` of shape
        :math:`(|\mathcal{V}_t|, H, C)` (:obj:`None` without target
        features)."""
        H, C = self.heads, self.out_channels
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        key = self.lin_key(x_src).view(-1, H, C)
        if x_dst is None:
            return key, None
        return key, self.lin_query(x_dst).view(-1, H, C)

    def _input_linears(self) -> Tuple[Module, Module]:
        return self.lin_key, self.lin_query

    def forward(
        self,
        x: Union[Tensor, OptPairTensor],
        edge_index: Adj,
        edge_attr: OptTensor = None,
        return_attention_weights: Optional[bool] = None,
    ):
        r"""Runs :meth:`TransformerConv.forward` and keeps the samples of
        keys and queries, with the checks of :meth:`AlignedGATConv.forward`.
        """
        return self._aligned_forward(x, edge_index, edge_attr,
                                     return_attention_weights)
