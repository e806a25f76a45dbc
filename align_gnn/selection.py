r"""Model selection on the validation curve: which epoch's weights to keep
and when to stop. :class:`BestAccuracy` is this project's rule (the best
validation accuracy, ties broken by the validation loss, stopping
:obj:`patience` epochs after the last improvement); :class:`GATPaperRule`
is the rule of the GAT paper's code (PetarV-/GAT, :file:`execute_cora.py`);
:class:`LowestLoss` that of DGL's ogbn-arxiv recipe.
"""
import math
from typing import Dict, Tuple

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
