r"""The training tricks of DGL's ogbn-arxiv GAT recipe
(`examples/pytorch/ogb/ogbn-arxiv/gat.py`) other than the layer (see
:class:`~align_gnn.conv.NormalizedGATConv`) and the learning-rate warm-up
(see :func:`~align_gnn.schedule.learning_rate`): labels as input, label
reuse, and the loss :math:`\log(\epsilon + \mathrm{CE}) - \log\epsilon`."""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from torch_geometric.data import Data

LABELS = ('none', 'input', 'reuse')
LOSSES = ('ce', 'log-ce')
MASK_RATE = 0.5  # the share of training nodes whose labels are input
EPSILON = 1 - math.log(2)


def log_ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    r"""The mean of :math:`\log(\epsilon + \mathrm{CE}_i) - \log\epsilon`
    over the nodes, :math:`\epsilon = 1 - \log 2` (0-dim): cross-entropy
    that weighs badly classified nodes less.

    Args:
        logits (torch.Tensor): :math:`(N, C)`.
        y (torch.Tensor): Classes :math:`(N,)`.
    """
    ce = F.cross_entropy(logits, y, reduction='none')
    return (torch.log(EPSILON + ce) - math.log(EPSILON)).mean()


def loss_function(name: str):
    r"""The loss :obj:`name`: :obj:`"ce"` (cross-entropy) or
    :obj:`"log-ce"` (:func:`log_ce_loss`)."""
    if name == 'ce':
        return F.cross_entropy
    if name == 'log-ce':
        return log_ce_loss
    raise ValueError(f"'loss' must be one of {LOSSES} (got {name!r})")


def add_label_features(x: Tensor, y: Tensor, index: Tensor,
                       num_classes: int) -> Tensor:
    r"""The features :obj:`x` :math:`(N, F)` with :obj:`num_classes`
    columns appended, :math:`(N, F + C)`: the one-hot labels :obj:`y` of the
    nodes :obj:`index`, zeros elsewhere."""
    onehot = x.new_zeros(x.size(0), num_classes)
    onehot[index, y[index]] = 1.0
    return torch.cat([x, onehot], dim=-1)


class LabelInput:
    r"""Labels as input, with label reuse (DGL's ogbn-arxiv recipe, after
    Wang and Leskovec, `"Bag of Tricks for Node Classification with Graph
    Neural Networks" <https://arxiv.org/abs/2103.13355>`_).

    A training step appends the one-hot labels of a random
    :obj:`mask_rate` share of the training nodes to the features and
    predicts the other training nodes; evaluation appends the labels of all
    training nodes. With :obj:`reuse` iterations, the softmax predictions
    of the nodes without a label input then fill their label columns (no
    gradient through them) and the model runs again, :obj:`reuse` times.

    Args:
        num_classes (int): Number of classes :math:`C`.
        reuse (int, optional): Label reuse iterations (:obj:`1` in the
            recipe's "label reuse"). (default: :obj:`0`)
        mask_rate (float, optional): Share of the training nodes whose
            labels are input in a training step. (default: :obj:`0.5`)
    """
    def __init__(self, num_classes: int, reuse: int = 0,
                 mask_rate: float = MASK_RATE):
        self.num_classes, self.reuse, self.mask_rate = (num_classes, reuse,
                                                        mask_rate)

    def _forward(self, model: torch.nn.Module, data: Data,
                 labeled: Tensor) -> Tensor:
        x = add_label_features(data.x, data.y, labeled, self.num_classes)
        if not self.reuse:
            return model(x, data.edge_index)
        unlabeled = torch.ones(x.size(0), dtype=torch.bool, device=x.device)
        unlabeled[labeled] = False
        for i in range(self.reuse + 1):
            if i > 0:
                x[unlabeled, -self.num_classes:] = F.softmax(out[unlabeled],
                                                             dim=-1)
            # Only the last pass is differentiated:
            with torch.set_grad_enabled(torch.is_grad_enabled()
                                        and i == self.reuse):
                out = model(x, data.edge_index)
        return out

    def train_forward(self, model: torch.nn.Module,
                      data: Data) -> Tuple[Tensor, Tensor]:
        r"""The logits :math:`(N, C)` of a training step and the training
        nodes to predict (the loss's), as indices."""
        train = data.train_mask.nonzero().view(-1)
        given = torch.rand(train.numel(), device=train.device) < (
            self.mask_rate)
        return self._forward(model, data, train[given]), train[~given]

    def eval_forward(self, model: torch.nn.Module, data: Data) -> Tensor:
        r"""The logits :math:`(N, C)` with the labels of all training nodes
        as input."""
        return self._forward(model, data, data.train_mask.nonzero().view(-1))
