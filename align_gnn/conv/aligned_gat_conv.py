from typing import Optional, Tuple, Union

from torch import Tensor
from torch.nn import Module

from torch_geometric.nn import GATConv
from torch_geometric.typing import Adj, OptPairTensor, OptTensor, Size

from align_gnn.arguments import checked
from align_gnn.conv.aligned_attention import ARGUMENTS, AlignedAttention


class AlignedGATConv(AlignedAttention, GATConv):
    r"""The graph attentional operator from the `"Graph Attention Networks"
    <https://arxiv.org/abs/1710.10903>`_ paper with alignment attention from
    the `"Alignment Attention by Matching Key and Query Distributions"
    <https://arxiv.org/abs/2110.12567>`_ paper.

    The forward pass is exactly :class:`~torch_geometric.nn.conv.GATConv`'s.
    Head :math:`h` scores an edge :math:`j \rightarrow i` as
    :math:`\mathrm{LeakyReLU}(\mathbf{1}^{\top}\mathbf{k}^h_j +
    \mathbf{1}^{\top}\mathbf{q}^h_i)` with the per-head key and query

    .. math::
        \mathbf{k}^h_j = \mathbf{a}^h_{s} \odot \mathbf{\Theta}^h_{s}
        \mathbf{x}_j, \qquad
        \mathbf{q}^h_i = \mathbf{a}^h_{t} \odot \mathbf{\Theta}^h_{t}
        \mathbf{x}_i.

    In training mode, every forward pass keeps a uniform sample (without
    replacement) of at most :obj:`num_samples` keys and queries, and
    :meth:`get_alignment_loss` returns the divergence between the two
    distributions, averaged over heads:

    .. math::
        \mathcal{L}_{\textrm{align}} = \frac{1}{H} \sum_{h=1}^H
        D\left(P^h_{\textrm{query}}, P^h_{\textrm{key}}\right),

    to be added to the task loss with a weight :math:`\lambda`
    (see :func:`align_gnn.alignment_loss`).

    Args:
        in_channels (int or tuple): Size of each input sample, or :obj:`-1` to
            derive the size from the first input(s) to the forward method.
            A tuple corresponds to the sizes of source and target
            dimensionalities in case of a bipartite graph.
        out_channels (int): Size of each output sample.
        heads (int, optional): Number of multi-head-attentions.
            (default: :obj:`1`)
        concat (bool, optional): If set to :obj:`False`, the multi-head
            attentions are averaged instead of concatenated.
            (default: :obj:`True`)
        negative_slope (float, optional): LeakyReLU angle of the negative
            slope. (default: :obj:`0.2`)
        dropout (float, optional): Dropout probability of the normalized
            attention coefficients. (default: :obj:`0`)
        add_self_loops (bool, optional): If set to :obj:`False`, will not add
            self-loops to the input graph. (default: :obj:`True`)
        edge_dim (int, optional): Edge feature dimensionality (in case
            there are any). (default: :obj:`None`)
        fill_value (float or torch.Tensor or str, optional): The way to
            generate edge features of self-loops (in case
            :obj:`edge_dim != None`). (default: :obj:`"mean"`)
        bias (bool, optional): If set to :obj:`False`, the layer will not learn
            an additive bias. (default: :obj:`True`)
        residual (bool, optional): If set to :obj:`True`, the layer will add
            a learnable skip-connection. (default: :obj:`False`)
        divergence (str or torch.nn.Module, optional): The divergence between
            queries and keys: :obj:`"ct"` (conditional transport),
            :obj:`"adversarial"`, :obj:`"sinkhorn"`, :obj:`"mmd"`, a module
            mapping queries :math:`(H, M, C)` and keys :math:`(H, N, C)` to
            per-head values :math:`(H,)` (see :mod:`align_gnn.divergences`),
            or :obj:`None` to turn alignment off. (default: :obj:`"ct"`)
        num_samples (int, optional): Maximum number of keys and of queries
            sampled per forward pass. (default: :obj:`256`)
        rho (float, optional): Weight of the forward (query-to-key) transport
            of :obj:`"ct"`. (default: :obj:`0.5`)
        adversary_channels (int, optional): Width of the critic and navigator
            (:obj:`"ct"`) or the discriminator (:obj:`"adversarial"`).
            (default: :obj:`32`)
        align_over (str, optional): :obj:`"nodes"`: per head, the sampled
            nodes' queries and keys are the two samples (averaged over
            heads); :obj:`"heads"`: per sampled node, its :math:`H` queries
            and :math:`H` keys are the two samples (averaged over nodes;
            the alignment paper's code, one adversary shared by all nodes;
            see :mod:`align_gnn.across_heads`; a one-head layer then has no
            alignment loss). (default: :obj:`"nodes"`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V_s}|, F_{s}), (|\mathcal{V_t}|, F_{t}))`
          if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)`,
          edge features :math:`(|\mathcal{E}|, D)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, H * F_{out})` or
          :math:`((|\mathcal{V}_t|, H * F_{out})` if bipartite, as
          :class:`~torch_geometric.nn.conv.GATConv`
        - **alignment loss:** :math:`()`
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
                         fill_value, bias, residual, **kwargs)
        self._init_alignment(module, divergence, num_samples, rho,
                             adversary_channels, align_over)

    def key_query(
        self,
        x: Union[Tensor, OptPairTensor],
    ) -> Tuple[Tensor, Optional[Tensor]]:
        r"""Returns the per-head keys
        :math:`\mathbf{a}_s \odot \mathbf{\Theta}_s \mathbf{x}_j` of shape
        :math:`(|\mathcal{V}_s|, H, C)` and queries
        :math:`\mathbf{a}_t \odot \mathbf{\Theta}_t \mathbf{x}_i` of shape
        :math:`(|\mathcal{V}_t|, H, C)` (:obj:`None` if :obj:`x` is a pair
        whose target features are :obj:`None`). Summed over the last
        dimension, they are the two halves of the attention logits.

        Args:
            x (torch.Tensor or (torch.Tensor, torch.Tensor)): The input node
                features, in any form :meth:`forward` accepts.
        """
        H, C = self.heads, self.out_channels
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        lin_src = self.lin if self.lin is not None else self.lin_src
        lin_dst = self.lin if self.lin is not None else self.lin_dst
        h_src = lin_src(x_src).view(-1, H, C)
        if x_dst is None:
            return h_src * self.att_src, None
        if x_dst is x_src and lin_dst is lin_src:  # one projection for both
            h_dst = h_src
        else:
            h_dst = lin_dst(x_dst).view(-1, H, C)
        return h_src * self.att_src, h_dst * self.att_dst

    def _input_linears(self) -> Tuple[Module, Module]:
        if self.lin is not None:
            return self.lin, self.lin
        return self.lin_src, self.lin_dst

    def forward(
        self,
        x: Union[Tensor, OptPairTensor],
        edge_index: Adj,
        edge_attr: OptTensor = None,
        size: Size = None,
        return_attention_weights: Optional[bool] = None,
    ):
        r"""Runs :meth:`GATConv.forward` and, in training mode with a
        divergence, keeps a sample of keys and queries for
        :meth:`get_alignment_loss`.

        Raises :class:`ValueError` for node features that are not 2-D or
        whose number of channels differs from :obj:`in_channels`, and for a
        dense :obj:`edge_index` that is not an integer tensor of shape
        :obj:`(2, E)` (shape and dtype checks only: no host
        synchronization)."""
        return self._aligned_forward(x, edge_index, edge_attr, size,
                                     return_attention_weights)
