r"""Model selection on the validation curve: which epoch's weights to keep
and when to stop. :class:`BestAccuracy` is this project's rule (the best
validation accuracy, ties broken by the validation loss, stopping
:obj:`patience` epochs after the last improvement); :class:`GATPaperRule`
is the rule of the GAT paper's code (PetarV-/GAT, :file:`execute_cora.py`);
:class:`LowestLoss` that of DGL's ogbn-arxiv recipe.

:class:`DeviceSelection` runs the same rules on 0-dim device tensors, for a
loop that must not wait for the device (see :mod:`align_gnn.device_loop`).
"""
import math
from typing import Dict, Tuple

import torch
from torch import Tensor

SELECTIONS = ('acc', 'gat-paper', 'loss')


class BestAccuracy:
    r"""Keeps the epoch with the best validation accuracy (an equal one
    with a lower validation loss counts as better); stops once
    :obj:`patience` epochs have passed without one."""
    def __init__(self, patience: int = 100):
        self.patience = patience
        self.best_acc, self.best_loss = -1.0, math.inf
        self.epoch = self.best_epoch = 0

    def step(self, val_acc: float, val_loss: float) -> Tuple[bool, bool]:
        r"""Records the next epoch's validation accuracy and loss; returns
        :obj:`(keep, stop)`: whether to keep this epoch's weights and
        whether to stop training."""
        self.epoch += 1
        if val_acc > self.best_acc or (val_acc == self.best_acc
                                       and val_loss < self.best_loss):
            self.best_acc, self.best_loss = val_acc, val_loss
            self.best_epoch = self.epoch
            return True, False
        return False, self.epoch - self.best_epoch >= self.patience

    def state_dict(self) -> Dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: Dict):
        self.__dict__.update(state)


class GATPaperRule(BestAccuracy):
    r"""The GAT paper's rule: training goes on while the validation
    accuracy *or* the validation loss reaches its best so far
    (:math:`\geq` the highest accuracy, :math:`\leq` the lowest loss);
    after :obj:`patience` epochs in a row with neither, it stops. The
    weights kept are those of the last epoch at which *both* were at their
    best so far."""
    def __init__(self, patience: int = 100):
        super().__init__(patience)
        self.max_acc, self.min_loss, self.waited = 0.0, math.inf, 0

    def step(self, val_acc: float, val_loss: float) -> Tuple[bool, bool]:
        self.epoch += 1
        acc_best, loss_best = val_acc >= self.max_acc, val_loss <= self.min_loss
        if not (acc_best or loss_best):
            self.waited += 1
            return False, self.waited >= self.patience
        keep = acc_best and loss_best
        if keep:
            self.best_acc, self.best_loss = val_acc, val_loss
            self.best_epoch = self.epoch
        self.max_acc = max(val_acc, self.max_acc)
        self.min_loss = min(val_loss, self.min_loss)
        self.waited = 0
        return keep, False


class LowestLoss(BestAccuracy):
    r"""Keeps the epoch with the lowest validation loss (DGL's ogbn-arxiv
    recipe); stops once :obj:`patience` epochs have passed without one."""
    def step(self, val_acc: float, val_loss: float) -> Tuple[bool, bool]:
        self.epoch += 1
        if val_loss < self.best_loss:
            self.best_acc, self.best_loss = val_acc, val_loss
            self.best_epoch = self.epoch
            return True, False
        return False, self.epoch - self.best_epoch >= self.patience


def make_selection(name: str, patience: int) -> BestAccuracy:
    r"""The rule :obj:`name` (:obj:`"acc"`: :class:`BestAccuracy`,
    :obj:`"gat-paper"`: :class:`GATPaperRule`, :obj:`"loss"`:
    :class:`LowestLoss`)."""
    if name == 'acc':
        return BestAccuracy(patience)
    if name == 'gat-paper':
        return GATPaperRule(patience)
    if name == 'loss':
        return LowestLoss(patience)
    raise ValueError(f"'selection' must be one of {SELECTIONS} "
                     f"(got {name!r})")


class DeviceSelection:
    r"""The rule :obj:`name` (see :func:`make_selection`) kept in 0-dim
    tensors on :obj:`device`, so that a training loop decides without
    reading the device: :meth:`step` takes the validation score and loss as
    tensors and returns whether to keep the epoch's weights as a boolean
    tensor. An epoch counts only while :obj:`active` (the run has neither
    stopped nor failed): later epochs change nothing, so a loop that reads
    :attr:`stopped` every few epochs selects the epoch that
    :class:`BestAccuracy` and its kin select reading every epoch (scores
    compared in float64, losses as given).

    Attributes:
        epoch (Tensor): The epochs counted (int64).
        best_epoch (Tensor): The epoch kept (int64, :obj:`0`: none yet).
        stopped (Tensor): Whether the rule has stopped the run (bool).
    """
    def __init__(self, name: str, patience: int, device: torch.device):
        if name not in SELECTIONS:
            make_selection(name, patience)  # its error
        self.name, self.patience = name, patience
        self.epoch = torch.zeros((), dtype=torch.long, device=device)
        self.best_epoch = torch.zeros_like(self.epoch)
        self.stopped = torch.zeros((), dtype=torch.bool, device=device)
        value = self.epoch.new_zeros((), dtype=torch.float64)
        self.best_acc, self.best_loss = value.clone(), value.clone()
        self.max_acc, self.min_loss = value.clone(), value.clone()
        self.waited = torch.zeros_like(self.epoch)
        self.reset_()

    def _state(self) -> Tuple[Tensor, ...]:
        return (self.epoch, self.best_epoch, self.stopped, self.best_acc,
                self.best_loss, self.max_acc, self.min_loss, self.waited)

    def reset_(self):
        r"""Back to the state before the first epoch, in place (the tensors
        keep their memory, as a captured CUDA graph needs)."""
        for value, start in zip(self._state(), (0, 0, False, -1.0, math.inf,
                                                0.0, math.inf, 0)):
            value.fill_(start)

    def step(self, val_acc: Tensor, val_loss: Tensor,
             active: Tensor) -> Tensor:
        r"""Records the next epoch's validation score and loss (0-dim) if
        :obj:`active` (0-dim bool); returns :obj:`keep` (0-dim bool)."""
        acc, loss = val_acc.double(), val_loss.double()
        active = active & ~self.stopped
        epoch = self.epoch + 1
        since = epoch - self.best_epoch
        if self.name == 'gat-paper':
            acc_best, loss_best = acc >= self.max_acc, loss <= self.min_loss
            neither = ~(acc_best | loss_best)
            waited = torch.where(neither, self.waited + 1, 0)
            keep, stop = acc_best & loss_best, neither & (
                waited >= self.patience)
            self._set(active, waited=waited,
                      max_acc=torch.maximum(acc, self.max_acc),
                      min_loss=torch.minimum(loss, self.min_loss))
        else:
            if self.name == 'acc':
                keep = (acc > self.best_acc) | ((acc == self.best_acc)
                                                & (loss < self.best_loss))
            else:
                keep = loss < self.best_loss
            stop = ~keep & (since >= self.patience)
        keep = keep & active
        self._set(active, epoch=epoch, stopped=stop)
        self._set(keep, best_acc=acc, best_loss=loss, best_epoch=epoch)
        return keep

    def _set(self, where: Tensor, **values: Tensor):
        for name, value in values.items():
            old = getattr(self, name)
            old.copy_(torch.where(where, value, old))
