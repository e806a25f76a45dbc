r"""Full-batch training kept on the device (issue 27): the inputs made static
once (self-loops added, the split masks as indices), an epoch (training
step, evaluation, model selection, early stopping, the weights kept and the
history) that never asks the host, replayed as one CUDA graph on a GPU. The
host reads the run's status every :data:`READ_EVERY` epochs on CUDA and
every epoch on the CPU, where a read costs nothing, and takes the decisions
of the epoch loop of :mod:`align_gnn.training` (on the CPU bit for bit; on
CUDA the optimizer is the capturable one, the same up to float rounding).
:func:`align_gnn.training.fit` runs it where :func:`unsupported` finds
nothing in the way."""
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

import torch
from torch import Tensor
from torch.nn import Module

from torch_geometric.data import Data
from torch_geometric.nn import MessagePassing, SuperGATConv
from torch_geometric.utils import add_self_loops, remove_self_loops

from align_gnn.conv import alignment_loss
from align_gnn.failures import CaptureFailed
from align_gnn.metrics import roc_auc_tensor
from align_gnn.selection import DeviceSelection

READ_EVERY = 25  # epochs between reads of the status on CUDA
WARMUP = 3  # eager epochs before a capture (undone after it)


def unsupported(model: Module, x: Tensor, full_batch: bool, labels: bool,
                processes: int, checkpoint: bool) -> Optional[str]:
    r"""Why the run of :obj:`model` on features :obj:`x` cannot be kept on
    the device, or :obj:`None`: it needs full-batch training, one process,
    no checkpoint (the epoch loop saves them), no labels as input (their
    random mask changes the shapes), dense features on CUDA (sampling rows
    of sparse ones asks the host), no
    :class:`~torch_geometric.nn.conv.SuperGATConv`
    (its negative sampling asks the host), and, where a layer adds
    self-loops itself, every layer doing so (see :func:`self_loops`)."""
    if not full_batch:
        return 'neighbour sampling'
    if processes > 1:
        return 'several processes'
    if checkpoint:
        return 'a checkpoint'
    if labels:
        return 'labels as input'
    if x.is_cuda and x.layout != torch.strided:
        return 'sparse features on CUDA'
    if any(isinstance(module, SuperGATConv) for module in model.modules()):
        return 'SuperGATConv'
    layers = [module for module in model.modules()
              if isinstance(module, MessagePassing)]
    if any(module.add_self_loops for module in _loop_modules(model)
           if module in layers) and not all(
               getattr(layer, 'add_self_loops', False) is True
               for layer in layers):
        return 'layers that disagree on self-loops'
    return None


def _loop_modules(model: Module) -> List[Module]:
    # Modules that remove and add self-loops in their forward pass when
    # `add_self_loops` is set (GATConv, GATv2Conv, PlatonovGNN, ...):
    return [module for module in model.modules()
            if isinstance(getattr(module, 'add_self_loops', None), bool)]


@contextmanager
def self_loops(model: Module, edge_index: Tensor,
               num_nodes: int) -> Iterator[Tensor]:
    r"""Yields :obj:`edge_index` as :obj:`model`'s modules see it: with its
    self-loops removed and one added per node, as
    :class:`~torch_geometric.nn.conv.GATConv` does in every forward pass,
    if they add self-loops; meanwhile they do not (nothing in a step
    changes shape or asks the host)."""
    modules = [module for module in _loop_modules(model)
               if module.add_self_loops]
    if modules:
        edge_index, _ = remove_self_loops(edge_index)
        edge_index, _ = add_self_loops(edge_index, num_nodes=num_nodes)
    try:
        for module in modules:
            module.add_self_loops = False
        yield edge_index
    finally:
        for module in modules:
            module.add_self_loops = True


class DeviceLoop:
    r"""The epochs of a full-batch run of :obj:`model` on :obj:`data`
    (prepared, on the model's device, with :obj:`edge_index` from
    :func:`self_loops`). Each :meth:`epoch` is a training step on
    :obj:`loss_fn` of the training nodes plus :obj:`weight` times the
    alignment loss, then an evaluation on the validation nodes that
    :obj:`selection` decides on; the weights of the epoch kept are copied
    on the device. With :obj:`graphs` (CUDA), the epoch is captured as a
    CUDA graph after :data:`WARMUP` eager epochs, whose effects (weights,
    optimizer state, random generators, selection) are undone; a capture
    that fails raises :class:`~align_gnn.failures.CaptureFailed`.

    Attributes:
        weight (Tensor): The alignment weight of the next epoch (0-dim).
        curves (Tensor): Training and alignment loss per epoch counted
            :math:`(E, 2)`.
        scores (Tensor): Validation score per epoch counted :math:`(E,)`
            (float64: the accuracy or the ROC-AUC).
        failed (Tensor): The first epoch with a non-finite loss or
            parameter (int64, :obj:`0`: none).
    """
    def __init__(self, model: Module, data: Data, edge_index: Tensor,
                 optimizer: torch.optim.Optimizer, loss_fn: Callable,
                 selection: DeviceSelection, epochs: int,
                 graphs: bool = False):
        self.model, self.optimizer = model, optimizer
        self.loss_fn, self.selection = loss_fn, selection
        self.x, self.edge_index = data.x, edge_index
        train = data.train_mask.nonzero().view(-1)
        val = data.val_mask.nonzero().view(-1)
        self.train_idx, self.train_y = train, data.y[train]
        self.val_idx, self.val_y = val, data.y[val]
        self.roc_auc = getattr(data, 'metric', 'acc') == 'roc_auc'
        self.state = list(model.state_dict().values())  # aliases
        self.best = [value.clone() for value in self.state]
        device = self.x.device
        self.weight = torch.zeros((), device=device)
        self.curves = torch.zeros(epochs, 2, device=device)
        self.scores = torch.zeros(epochs, dtype=torch.float64, device=device)
        self.failed = torch.zeros((), dtype=torch.long, device=device)
        self.status = torch.zeros(3, dtype=torch.long, device=device)
        self.graph = None
        if graphs:
            try:
                self.graph = self._capture()
            except torch.cuda.OutOfMemoryError:
                raise
            except RuntimeError as err:  # one line, and the way around it
                raise CaptureFailed(str(err).strip().splitlines()[0]
                                    if str(err).strip() else
                                    type(err).__name__) from err

    def epoch(self):
        r"""Runs the next epoch (a graph replay with :obj:`graphs`)."""
        if self.graph is None:
            self._epoch()
        else:
            self.graph.replay()

    def read(self) -> List[int]:
        r"""The epochs counted, whether the selection stopped the run, and
        :attr:`failed` (one read of the device)."""
        return self.status.tolist()

    def best_state(self) -> dict:
        r"""The kept weights as a state dict of :obj:`model`."""
        return dict(zip(self.model.state_dict().keys(), self.best))

    def _epoch(self):
        selection = self.selection
        row = selection.epoch.clamp(max=self.scores.numel() - 1).view(1)
        running = ~selection.stopped & (self.failed == 0)
        losses, finite = self._train_step()
        failed = running & ~finite
        self.failed.copy_(torch.where(failed, selection.epoch + 1,
                                      self.failed))
        score, val_loss = self._evaluate()
        keep = selection.step(score, val_loss, running & finite)
        with torch.no_grad():
            for best, value in zip(self.best, self.state):
                best.copy_(torch.where(keep, value, best))
            self.curves.index_copy_(0, row, torch.where(
                running, losses, self.curves.index_select(0, row)[0])[None])
            self.scores.index_copy_(0, row, torch.where(
                running, score, self.scores.index_select(0, row)[0])[None])
            self.status.copy_(torch.stack([selection.epoch,
                                           selection.stopped.long(),
                                           self.failed]))

    def _train_step(self):
        # As align_gnn.loops.train_epoch: the losses (detached) and whether
        # they and every parameter are finite (align_gnn.loops.non_finite).
        model = self.model
        model.train()
        self.optimizer.zero_grad()
        out = model(self.x, self.edge_index)
        align = alignment_loss(model)
        loss = self.loss_fn(out.index_select(0, self.train_idx),
                            self.train_y)
        loss = loss + self.weight * align
        loss.backward()
        self.optimizer.step()
        losses = torch.stack([loss.detach(), align.detach()])
        finite = torch.stack([torch.isfinite(losses).all(), *[
            torch.isfinite(param).all() for param in model.parameters()]])
        return losses, finite.all()

    @torch.no_grad()
    def _evaluate(self):
        # As align_gnn.loops.evaluate, on the validation nodes only.
        self.model.eval()
        out = self.model(self.x, self.edge_index).float()  # bf16 autocast
        logits, y = out.index_select(0, self.val_idx), self.val_y
        if self.roc_auc:
            score = roc_auc_tensor(logits[:, 1] - logits[:, 0], y)
        else:
            score = logits.argmax(-1).eq(y).sum().double() / y.numel()
        return score, self.loss_fn(logits, y)

    def _capture(self) -> 'torch.cuda.CUDAGraph':
        device = self.x.device
        saved = [value.clone() for value in self.state]
        rng = torch.cuda.get_rng_state(device), torch.get_rng_state()
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):  # lazy state, cuBLAS workspaces
            for _ in range(WARMUP):
                self._epoch()
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._epoch()
        with torch.no_grad():  # undo the warm-up epochs
            for value, start in zip(self.state, saved):
                value.copy_(start)
            for best, start in zip(self.best, saved):
                best.copy_(start)
            for state in self.optimizer.state.values():
                for value in state.values():  # all start at zero (Adam,
                    if isinstance(value, Tensor):  # RMSprop)
                        value.zero_()
        self.selection.reset_()
        self.failed.zero_()
        torch.cuda.set_rng_state(rng[0], device)
        torch.set_rng_state(rng[1])
        return graph
