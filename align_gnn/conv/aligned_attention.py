import warnings
from contextlib import contextmanager
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module, Parameter

from torch_geometric.nn import GATConv, GATv2Conv, TransformerConv
from torch_geometric.typing import Adj, OptPairTensor, OptTensor, Size
from torch_geometric.utils import add_self_loops, degree, remove_self_loops

from align_gnn.divergences import _check_rho, resolve_divergence


PERMUTATION_MAX_ROWS = 1 << 16
ALIGN_OVER = ('nodes', 'heads')


def sample_rows(num_rows: int, num_samples: int,
                device: torch.device) -> Optional[Tensor]:
    r"""Indices of a uniform sample without replacement of
    :obj:`min(num_rows, num_samples)` rows, or :obj:`None` for all rows.

    Up to :obj:`max(65536, 4 * num_samples)` rows, the head of a random
    permutation. Beyond, the first distinct values among
    :obj:`2 * num_samples` uniform draws, in order of appearance (a uniform
    sample without replacement): :math:`O(m \log m)` time, no tensor of
    size :obj:`num_rows` and no host synchronization. Fewer than
    :obj:`num_samples` distinct draws (probability below :math:`10^{-14}`)
    would let some rows repeat."""
    if num_rows <= num_samples:
        return None
    if num_rows <= max(PERMUTATION_MAX_ROWS, 4 * num_samples):
        return torch.randperm(num_rows, device=device)[:num_samples]
    draws = torch.randint(num_rows, (2 * num_samples, ), device=device)
    sorted_draws, position = torch.sort(draws, stable=True)
    repeat = torch.zeros_like(sorted_draws, dtype=torch.bool)
    repeat[1:] = sorted_draws[1:] == sorted_draws[:-1]
    # First occurrences ranked by position, repeats after all of them:
    rank = position + repeat * draws.numel()
    return sorted_draws[rank.argsort()[:num_samples]]


def select_rows(x: Tensor, index: Tensor) -> Tensor:
    r"""The rows :obj:`index` of a dense, sparse COO or sparse CSR matrix
    :obj:`x`, in the same layout."""
    if x.layout == torch.sparse_coo:
        return x.index_select(0, index)
    if x.layout != torch.sparse_csr:
        return x[index]
    crow, col, value = x.crow_indices(), x.col_indices(), x.values()
    start, count = crow[index], crow[index + 1] - crow[index]
    new_crow = torch.cat([crow.new_zeros(1), count.cumsum(0)])
    position = torch.arange(int(new_crow[-1]), device=x.device)
    position += (start - new_crow[:-1]).repeat_interleave(count)
    with quiet_sparse_csr():
        return torch.sparse_csr_tensor(new_crow, col[position],
                                       value[position],
                                       (index.numel(), x.size(1)),
                                       check_invariants=False)


@contextmanager
def quiet_sparse_csr():
    r"""Silences PyTorch's warning that sparse CSR support is in beta."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'Sparse CSR tensor support')
        yield


class AlignedAttention:
    r"""What the aligned attention layers share (a mixin before the PyG
    layer in the bases): the divergence and its arguments, the checks of
    the inputs, the samples of keys and queries kept by each training
    forward pass and :meth:`get_alignment_loss`. A layer provides
    :meth:`key_query` and :meth:`_input_linears` (the linear layers that
    read the source and target features)."""
    divergence: Optional[Module]
    check_finite = True  # see `_warn_non_finite`
    check_finite_every = 8  # training passes between two checks

    @staticmethod
    def _resolve(divergence: Union[str, Module, None], heads: int,
                 channels: int, num_samples: int, rho: float,
                 adversary_channels: int,
                 align_over: str = 'nodes') -> Optional[Module]:
        if not isinstance(heads, int) or heads <= 0:
            raise ValueError(f"'heads' must be a positive integer "
                             f"(got {heads!r})")
        if align_over not in ALIGN_OVER:
            raise ValueError(f"'align_over' must be one of {ALIGN_OVER} "
                             f"(got {align_over!r})")
        if align_over == 'heads':
            if heads < 2:  # one head: nothing to align across heads
                return None
            heads = 1  # one adversary shared by all nodes (see across_heads)
        if not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f"'num_samples' must be an integer >= 2 "
                             f"(got {num_samples!r})")
        _check_rho(rho)
        if divergence is None or isinstance(divergence, Module):
            return divergence
        return resolve_divergence(divergence, heads, channels, rho,
                                  adversary_channels)

    def _init_alignment(self, divergence: Optional[Module], num_samples: int,
                        rho: float, align_over: str = 'nodes'):
        self.divergence = divergence
        self.align_over = align_over
        self.num_samples = num_samples
        self.rho = rho
        self._key_sample: Optional[Tensor] = None
        self._query_sample: Optional[Tensor] = None
        self._warned_non_finite = False
        self._finite_pending = None  # CUDA: (pinned flag, event)
        self._finite_calls = 0

    def reset_parameters(self):
        super().reset_parameters()
        if getattr(self, 'divergence', None) is not None and hasattr(
                self.divergence, 'reset_parameters'):
            self.divergence.reset_parameters()

    def key_query(
        self,
        x: Union[Tensor, OptPairTensor],
    ) -> Tuple[Tensor, Optional[Tensor]]:
        raise NotImplementedError

    def _input_linears(self) -> Tuple[Module, Module]:
        raise NotImplementedError

    def _check_inputs(self, x: Union[Tensor, OptPairTensor],
                      edge_index: Adj):
        r"""Raises :class:`ValueError` for node features that are not 2-D or
        whose number of channels differs from the layer's, and for a dense
        :obj:`edge_index` that is not an integer tensor of shape
        :obj:`(2, E)` (shape and dtype checks only: no host
        synchronization)."""
        self._check_features(x)
        self._check_edge_index(edge_index)

    def _aligned_forward(self, x: Union[Tensor, OptPairTensor],
                         edge_index: Adj, *args):
        # The PyG layer's forward between the input checks and the samples:
        self._check_inputs(x, edge_index)
        if self.training and self.check_finite:
            self._warn_non_finite(x)
        out = super().forward(x, edge_index, *args)
        self._keep_samples(x)
        return out

    def _warn_non_finite(self, x: Union[Tensor, OptPairTensor]):
        # In training mode, a RuntimeWarning (once per layer) if the input
        # holds NaN or inf, which would reach the loss and the parameters,
        # checked on the first training pass and every `check_finite_every`
        # passes after (a pass over the input costs about 1 % of a Cora
        # layer's step: measured in benchmarks/bench_layer.py). On CPU a
        # read of the input (no device to wait for); on CUDA the flag is
        # copied without blocking and read at a later forward pass once it
        # is there (no host synchronization).
        if self._warned_non_finite or torch.compiler.is_compiling():
            return
        pending = self._finite_pending
        if pending is not None and pending[1].query():
            self._finite_pending = None
            if not bool(pending[0]):
                return self._non_finite_warning()
        self._finite_calls += 1
        if (self._finite_calls - 1) % self.check_finite_every:
            return
        values = [x] if isinstance(x, Tensor) else [v for v in x
                                                    if v is not None]
        for value in values:
            if value.layout == torch.sparse_coo:
                value = value._values()
            elif value.layout != torch.strided:
                value = value.values()
            if value.device.type != 'cuda':
                # A sum is finite when every entry is (one read), unless it
                # overflows: then the entries decide.
                if not (bool(value.sum().isfinite())
                        or bool(torch.isfinite(value).all())):
                    return self._non_finite_warning()
            elif self._finite_pending is None:
                finite = torch.isfinite(value).all()
                host = torch.empty((), dtype=torch.bool, pin_memory=True)
                host.copy_(finite, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                self._finite_pending = (host, event)

    def _non_finite_warning(self):
        self._warned_non_finite = True
        warnings.warn(f"{self}: the input 'x' holds NaN or inf in training "
                      f"mode; the loss and the parameters will become NaN "
                      f"(check the data or the previous layer)",
                      RuntimeWarning, stacklevel=4)

    def _keep_samples(self, x: Union[Tensor, OptPairTensor]):
        # In training mode with a divergence, a sample of keys and queries
        # for `get_alignment_loss`; else nothing held.
        if self.training and self.divergence is not None:
            self._sample_key_query(x)
        else:
            self._key_sample = self._query_sample = None

    def _check_features(self, x: Union[Tensor, OptPairTensor]):
        # The linear layers know the sizes, lazy ones after their first call:
        lin_src, lin_dst = self._input_linears()
        in_src, in_dst = lin_src.in_channels, lin_dst.in_channels
        if isinstance(x, Tensor):
            pairs = [('x', x, in_src)]
        else:
            pairs = [('x[0]', x[0], in_src), ('x[1]', x[1], in_dst)]
        for name, value, channels in pairs:
            if value is None:
                continue
            if value.dim() != 2:
                raise ValueError(
                    f"{self}: expected '{name}' to be a 2-D tensor of shape "
                    f"(num_nodes, in_channels) (got shape "
                    f"{tuple(value.shape)})")
            if channels > 0 and value.size(-1) != channels:
                raise ValueError(
                    f"{self}: expected '{name}' to have {channels} channels "
                    f"(in_channels) in its last dimension (got "
                    f"{value.size(-1)}, shape {tuple(value.shape)}); the "
                    f"previous layer's output size must match this layer's "
                    f"in_channels")

    @staticmethod
    def _check_edge_index(edge_index: Adj):
        # Sparse adjacency matrices (torch.sparse, SparseTensor) are checked
        # by MessagePassing; GATConv's self-loop handling would otherwise
        # fail on a malformed dense edge_index with an unrelated message.
        if not isinstance(edge_index, Tensor) or (edge_index.layout !=
                                                  torch.strided):
            return
        if edge_index.is_floating_point() or edge_index.is_complex() or (
                edge_index.dtype == torch.bool):
            raise ValueError(f"Expected 'edge_index' to be of integer type "
                             f"(torch.long) (got '{edge_index.dtype}')")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            hint = ("; for a (num_edges, 2) list of pairs pass "
                    "'edge_index.t()'" if edge_index.dim() == 2
                    and edge_index.size(1) == 2 else '')
            raise ValueError(f"Expected 'edge_index' of shape (2, num_edges) "
                             f"(got shape {tuple(edge_index.shape)}){hint}")

    def _sample_key_query(self, x: Union[Tensor, OptPairTensor]):
        # When sources and targets are the same nodes, one node sample gives
        # both the keys and the queries (as all tokens do in the paper):
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        src_sample = self._sample_rows(x_src)
        if x_dst is x_src:
            dst_sample = src_sample
        else:
            dst_sample = None if x_dst is None else self._sample_rows(x_dst)
        # Projecting only the sampled rows costs O(m) and holds O(H * m * C):
        self._key_sample, self._query_sample = self.key_query(
            (src_sample, dst_sample))

    def _sample_rows(self, x: Tensor) -> Tensor:
        index = sample_rows(x.size(0), self.num_samples, x.device)
        return x if index is None else select_rows(x, index)

    def get_alignment_loss(self) -> Tensor:
        r"""The divergence between the query and key samples of the last
        training forward pass, averaged over heads (0-dim). :obj:`0.` in
        evaluation mode, with :obj:`divergence=None`, or when the last forward
        pass had no queries or no keys."""
        key, query = self._key_sample, self._query_sample
        if (not self.training or self.divergence is None or key is None
                or query is None or key.size(0) == 0 or query.size(0) == 0):
            return next(self.parameters()).new_zeros(())
        if getattr(self, 'align_over', 'nodes') == 'heads':
            from align_gnn.across_heads import across_heads_loss
            return across_heads_loss(self.divergence, query, key)
        return self.divergence(query.transpose(0, 1),
                               key.transpose(0, 1)).mean()

    def __getstate__(self):
        # The samples hold autograd graphs, which cannot be copied or pickled:
        state = self.__dict__.copy()
        state['_key_sample'] = state['_query_sample'] = None
        return state


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
        divergence = self._resolve(divergence, heads, out_channels,
                                   num_samples, rho, adversary_channels,
                                   align_over)
        super().__init__(in_channels, out_channels, heads, concat,
                         negative_slope, dropout, add_self_loops, edge_dim,
                         fill_value, bias, residual, **kwargs)
        self._init_alignment(divergence, num_samples, rho, align_over)

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


class AttentionSum(torch.autograd.Function):
    r"""The attention-weighted sum of messages,
    :math:`\mathbf{x}^{\prime}_{i,h} = \sum_{e = (j, i)} \alpha_{e,h}
    \mathbf{x}_{j,h}`, for :obj:`alpha` :math:`(E, H)` and :obj:`x`
    :math:`(N, H, C)`, computed (forward and backward) over chunks of at
    most :obj:`CHUNK_ELEMENTS / (H * C)` edges, so that no tensor of shape
    :math:`(E, H, C)` is ever held: on ogbn-arxiv's 2.5 M edges at
    :math:`H \cdot C = 750`, PyG's message passing would hold two of 7.4 GB
    per layer. Call it as :obj:`AttentionSum.apply(alpha, x, edge_index,
    num_nodes)`."""
    CHUNK_ELEMENTS = 1 << 25

    @staticmethod
    def _sum(weight: Tensor, x: Tensor, gather: Tensor, scatter: Tensor,
             num_nodes: int) -> Tensor:
        out = x.new_zeros(num_nodes, *x.shape[1:])
        step = max(1, AttentionSum.CHUNK_ELEMENTS // x[0].numel())
        for start in range(0, gather.numel(), step):
            part = slice(start, start + step)
            out.index_add_(0, scatter[part],
                           weight[part].unsqueeze(-1) * x[gather[part]])
        return out

    @staticmethod
    def forward(ctx, alpha: Tensor, x: Tensor, edge_index: Tensor,
                num_nodes: int) -> Tensor:
        ctx.save_for_backward(alpha, x, edge_index)
        return AttentionSum._sum(alpha, x, edge_index[0], edge_index[1],
                                 num_nodes)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        alpha, x, edge_index = ctx.saved_tensors
        src, dst = edge_index
        grad_alpha = grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = AttentionSum._sum(alpha, grad_out, dst, src, x.size(0))
        if ctx.needs_input_grad[0]:
            grad_alpha = torch.empty_like(alpha)
            step = max(1, AttentionSum.CHUNK_ELEMENTS // x[0].numel())
            for start in range(0, src.numel(), step):
                part = slice(start, start + step)
                grad_alpha[part] = (grad_out[dst[part]] *
                                    x[src[part]]).sum(dim=-1)
        return grad_alpha, grad_x, None, None


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
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(f"'in_channels' must be a positive integer "
                             f"(got {in_channels!r})")
        if not 0 <= edge_dropout < 1:
            raise ValueError(f"'edge_dropout' must be in [0, 1) (got "
                             f"{edge_dropout!r})")
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
        divergence = self._resolve(divergence, heads, out_channels,
                                   num_samples, rho, adversary_channels,
                                   align_over)
        super().__init__(in_channels, out_channels, heads, concat,
                         negative_slope, dropout, add_self_loops, edge_dim,
                         fill_value, bias, share_weights, residual, **kwargs)
        self._init_alignment(divergence, num_samples, rho, align_over)

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
        divergence = self._resolve(divergence, heads, out_channels,
                                   num_samples, rho, adversary_channels,
                                   align_over)
        super().__init__(in_channels, out_channels, heads, concat, beta,
                         dropout, edge_dim, bias, root_weight, **kwargs)
        self._init_alignment(divergence, num_samples, rho, align_over)

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


def alignment_loss(model: Module) -> Tensor:
    r"""The sum of :meth:`~AlignedAttention.get_alignment_loss` over every
    aligned layer in :obj:`model` (0-dim; :obj:`0.` if there is none)."""
    losses = [
        module.get_alignment_loss() for module in model.modules()
        if isinstance(module, AlignedAttention)
    ]
    if not losses:
        param = next(model.parameters(), None)
        return torch.zeros((), device=None if param is None else param.device)
    return torch.stack(losses).sum()


def adversary_parameters(model: Module) -> List[Parameter]:
    r"""The trained parameters of the adversaries of the aligned layers in
    :obj:`model`: conditional transport's critic and navigator, the
    discriminator of :obj:`"adversarial"` (:obj:`"sinkhorn"` and
    :obj:`"mmd"` have none). They are new parameters of the aligned layers
    (:func:`~align_gnn.convert` creates them), so give them to the
    optimizer, e.g. as a parameter group with their own learning rate:

    .. code-block:: python

        optimizer = torch.optim.Adam([
            dict(params=model_parameters(model)),
            dict(params=adversary_parameters(model), lr=0.3 * 0.005),
        ], lr=0.005, weight_decay=5e-4)

    A single :meth:`optimizer.step` then descends on the model and ascends
    on the adversaries (their gradients are reversed in the backward
    pass)."""
    return [
        p for module in model.modules()
        if isinstance(module, AlignedAttention)
        and module.divergence is not None
        for p in module.divergence.parameters() if p.requires_grad
    ]


def model_parameters(model: Module) -> List[Parameter]:
    r"""The trained parameters of :obj:`model` other than its adversaries'
    (see :func:`adversary_parameters`): :obj:`model.parameters()` less
    :obj:`adversary_parameters(model)`, in the same order."""
    adversary = {id(p) for p in adversary_parameters(model)}
    return [p for p in model.parameters()
            if p.requires_grad and id(p) not in adversary]
