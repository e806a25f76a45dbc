import warnings
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from torch_geometric.typing import Adj, OptPairTensor

from align_gnn import arguments
from align_gnn.across_heads import across_heads_loss
from align_gnn.arguments import Choice, Either, Instance
from align_gnn.conv.utils import sample_rows, select_rows
from align_gnn.divergences import resolve_divergence
from align_gnn.divergences.resolver import DIVERGENCE

ALIGN_OVER = ('nodes', 'heads')
# The specs of the aligned layers' named arguments (see align_gnn.arguments):
ARGUMENTS = dict(
    arguments.ARGUMENTS,
    divergence=Either(DIVERGENCE, Instance(Module, 'a torch.nn.Module'),
                      None),
    align_over=Choice(*ALIGN_OVER),
)
# Those that convert() passes on (their defaults are the layers'):
ALIGNMENT_ARGUMENTS = ('divergence', 'num_samples', 'rho',
                       'adversary_channels', 'align_over')


class AlignedAttention:
    r"""What the aligned attention layers share (a mixin before the PyG
    layer in the bases): the divergence and its arguments, the checks of
    the inputs, the samples of keys and queries kept by each training
    forward pass and :meth:`get_alignment_loss`. A layer provides
    :meth:`key_query` and :meth:`_input_linears` (the linear layers that
    read the source and target features), and checks its constructor's
    arguments with :obj:`@checked(ARGUMENTS)`."""
    divergence: Optional[Module]
    check_finite = True  # see `_warn_non_finite`
    check_finite_every = 8  # training passes between two checks

    @staticmethod
    def _resolve(divergence: Union[str, Module, None], heads: int,
                 channels: int, rho: float, adversary_channels: int,
                 align_over: str) -> Optional[Module]:
        # The divergence module (the arguments are checked already):
        if align_over == 'heads':
            if heads < 2:  # one head: nothing to align across heads
                return None
            heads = 1  # one adversary shared by all nodes (see across_heads)
        if divergence is None or isinstance(divergence, Module):
            return divergence
        return resolve_divergence(divergence, heads, channels, rho,
                                  adversary_channels)

    def _init_alignment(self, module: Optional[Module],
                        divergence: Union[str, Module, None],
                        num_samples: int, rho: float,
                        adversary_channels: int, align_over: str):
        self.divergence = module
        self.align_over = align_over
        self.num_samples = num_samples
        self.rho = rho
        self.adversary_channels = adversary_channels
        # The alignment arguments as given (convert() compares them):
        self._alignment_arguments = dict(
            divergence=divergence, num_samples=num_samples, rho=rho,
            adversary_channels=adversary_channels, align_over=align_over)
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
        if self._warned_non_finite or torch.compiler.is_compiling() or (
                torch.cuda.is_available()
                and torch.cuda.is_current_stream_capturing()):
            return  # a captured graph would replay no Python
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
            self._check_dtype(name, value, channels > 0 and (
                lin_src if name != 'x[1]' else lin_dst).weight.dtype)
            if channels > 0 and value.size(-1) != channels:
                raise ValueError(
                    f"{self}: expected '{name}' to have {channels} channels "
                    f"(in_channels) in its last dimension (got "
                    f"{value.size(-1)}, shape {tuple(value.shape)}); the "
                    f"previous layer's output size must match this layer's "
                    f"in_channels")

    def _check_dtype(self, name: str, value: Tensor, dtype):
        # Floating-point features of the parameters' dtype (:obj:`dtype`,
        # False for a lazy layer); under autocast, any floating type.
        if not value.is_floating_point():
            raise ValueError(f"{self}: expected '{name}' to hold "
                             f"floating-point features (got {value.dtype}); "
                             f"convert them, e.g. 'x.float()'")
        if (dtype and value.dtype != dtype
                and not torch.is_autocast_enabled(value.device.type)):
            raise ValueError(
                f"{self}: expected '{name}' of the parameters' dtype {dtype} "
                f"(got {value.dtype}); convert the features (e.g. "
                f"'x.to({dtype})') or the layer (e.g. 'layer.to("
                f"{value.dtype})')")

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
            return across_heads_loss(self.divergence, query, key)
        return self.divergence(query.transpose(0, 1),
                               key.transpose(0, 1)).mean()

    def __getstate__(self):
        # The samples hold autograd graphs, which cannot be copied or pickled:
        state = self.__dict__.copy()
        state['_key_sample'] = state['_query_sample'] = None
        return state
