r"""The epoch loops of node classification: a full-batch training step or
a pass over neighbour-sampled subgraphs (PyG's
:class:`~torch_geometric.loader.NeighborLoader`), with the alignment and
SuperGAT losses, the check that a step stayed finite, and the evaluation on
the full graph. :mod:`align_gnn.training` drives them over the epochs of
a run."""
import math
import warnings
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from ogb.nodeproppred import Evaluator

from torch_geometric.data import Data
from torch_geometric.nn import SuperGATConv

from align_gnn.config import SUPERGAT_LOSS_WEIGHT, require_neighbor_sampling
from align_gnn.conv import alignment_loss
from align_gnn.metrics import bins_ece, reliability_bins, roc_auc
from align_gnn.recipe import LabelInput


def non_finite(losses: Tensor, model: torch.nn.Module) -> Optional[str]:
    r"""What is not finite after a training step: the training loss or the
    alignment loss (:obj:`losses`, see :func:`train_epoch`) or a parameter of
    :obj:`model` (named); :obj:`None` if all are finite. Reads one boolean
    from the device (the epoch's evaluation waits for it anyway)."""
    params = [p for p in model.parameters()]
    checks = torch.stack([torch.isfinite(losses).all(),
                          *[torch.isfinite(p).all() for p in params]])
    if bool(checks.all()):
        return None
    for name, value in zip(('training loss', 'alignment loss'),
                           losses.tolist()):
        if not math.isfinite(value):
            return f'the {name} became {value}'
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            return f"the parameter '{name}' became non-finite (NaN or inf)"
    return 'a value became non-finite'


def auxiliary_loss(model: torch.nn.Module, align_weight: float) -> Tensor:
    r""":obj:`align_weight` times :func:`~align_gnn.alignment_loss` plus
    :obj:`4.0` times the self-supervised attention losses of
    :class:`~torch_geometric.nn.conv.SuperGATConv` layers (0-dim)."""
    return align_weight * alignment_loss(model) + _supergat_loss(model)


def _supergat_loss(model: torch.nn.Module) -> Tensor:
    losses = [SUPERGAT_LOSS_WEIGHT * module.get_attention_loss()
              for module in model.modules()
              if isinstance(module, SuperGATConv)]
    return sum(losses) if losses else 0.0


def train_epoch(model: torch.nn.Module, data: Data,
                optimizer: torch.optim.Optimizer, align_weight: float,
                labels: Optional[LabelInput] = None,
                loss_fn=F.cross_entropy) -> Tuple[Tensor, Tensor]:
    r"""One full-batch step on :obj:`loss_fn` (cross-entropy) of the
    training nodes (with :obj:`labels` as input, of those whose labels are
    not input) plus :func:`auxiliary_loss`; returns the loss and the
    (unweighted) alignment loss, detached 0-dim tensors (reading them is
    left to the caller, as it waits for the device)."""
    model.train()
    if labels is None:
        def forward():
            return model(data.x, data.edge_index), data.train_mask
    else:
        def forward():
            return labels.train_forward(model, data)
    return _step(model, optimizer, forward, data.y, align_weight, loss_fn)


def train_epoch_minibatch(
    model: torch.nn.Module,
    loader: Iterable[Data],
    optimizer: torch.optim.Optimizer,
    align_weight: float,
    device: torch.device,
    loss_fn=F.cross_entropy,
) -> Tuple[Tensor, Tensor]:
    r"""One pass over the neighbour-sampled subgraphs of :obj:`loader` (see
    :func:`neighbor_loader`), a step per subgraph on :obj:`loss_fn`
    (cross-entropy) of its :obj:`batch_size` seed nodes plus
    :func:`auxiliary_loss` of its
    aligned layers; returns the mean loss and alignment loss over steps, as
    :func:`train_epoch`."""
    model.train()
    total = torch.zeros(2, device=device)
    for steps, batch in enumerate(loader, start=1):
        batch = batch.to(device)
        total += torch.stack(_step(
            model, optimizer, lambda: (model(batch.x, batch.edge_index),
                                       slice(0, batch.batch_size)),
            batch.y, align_weight, loss_fn))
    loss, align = total / steps
    return loss, align


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
          forward: Callable[[], Tuple[Tensor, Union[Tensor, slice]]],
          y: Tensor, align_weight: float,
          loss_fn: Callable) -> Tuple[Tensor, Tensor]:
    # `forward()`: the logits and the nodes of the loss.
    optimizer.zero_grad()
    out, target = forward()
    align = alignment_loss(model)
    loss = loss_fn(out[target], y[target])
    loss = loss + align_weight * align + _supergat_loss(model)
    loss.backward()
    optimizer.step()
    return loss.detach(), align.detach()


def neighbor_loader(data: Data, input_nodes: Tensor, fanout: Sequence[int],
                    batch_size: int) -> Iterable[Data]:
    r"""PyG's :class:`~torch_geometric.loader.NeighborLoader` over the
    shuffled :obj:`input_nodes` of :obj:`data`, sampling :obj:`fanout[l]`
    neighbours per node at hop :obj:`l` (:obj:`-1`: all)."""
    require_neighbor_sampling()
    from torch_geometric.loader import NeighborLoader
    data = Data(x=data.x, edge_index=data.edge_index, y=data.y,
                num_nodes=data.num_nodes)
    with warnings.catch_warnings():  # torch-sparse's sampler is deprecated
        warnings.filterwarnings('ignore', "Using 'NeighborSampler' without")
        return NeighborLoader(data, num_neighbors=list(fanout),
                              input_nodes=input_nodes, batch_size=batch_size,
                              shuffle=True)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Data,
             evaluator: Optional[Evaluator] = None,
             labels: Optional[LabelInput] = None,
             loss_fn: Callable = F.cross_entropy) -> Dict[str, float]:
    r"""Accuracy, mean negative log-likelihood and :obj:`loss_fn` on the
    train, validation and test nodes (keys :obj:`"train_acc"`,
    :obj:`"train_nll"`, :obj:`"train_loss"`, ...) and the test expected
    calibration error (:obj:`"test_ece"`), from one full-graph forward pass
    (with :obj:`labels`, the training labels as input, see
    :meth:`~align_gnn.recipe.LabelInput.eval_forward`). Accuracies are
    :obj:`evaluator`'s, if given
    (e.g. :class:`ogb.nodeproppred.Evaluator`). On a graph whose
    :obj:`metric` is :obj:`"roc_auc"` (two classes), the :obj:`"*_acc"`
    entries hold the ROC-AUC of the logit difference instead (see
    :func:`~align_gnn.metrics.roc_auc`)."""
    model.eval()
    out = (model(data.x, data.edge_index) if labels is None else
           labels.eval_forward(model, data)).float()  # bf16 autocast
    metrics = {}
    for split in ('train', 'val', 'test'):
        mask = data[f'{split}_mask']
        logits, y = out[mask], data.y[mask]
        pred = logits.argmax(-1)
        if getattr(data, 'metric', 'acc') == 'roc_auc':
            acc = roc_auc(logits[:, 1] - logits[:, 0], y)
        elif evaluator is None:
            acc = int(pred.eq(y).sum()) / len(y)
        else:
            acc = float(evaluator.eval({'y_true': y.view(-1, 1),
                                        'y_pred': pred.view(-1, 1)})['acc'])
        metrics[f'{split}_acc'] = acc
        metrics[f'{split}_nll'] = float(F.cross_entropy(logits, y))
        metrics[f'{split}_loss'] = float(loss_fn(logits, y))
    bins = reliability_bins(out[data.test_mask].softmax(dim=-1),
                            data.y[data.test_mask])
    metrics['test_ece'], metrics['test_bins'] = bins_ece(bins), bins
    return metrics
