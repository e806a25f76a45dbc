r"""Calibration: the expected calibration error and the reliability bins it
is computed from (results files store the bins of every run)."""
from typing import Dict, List

import torch
from torch import Tensor

# Not torchmetrics' MulticlassCalibrationError: it agrees on random inputs
# (to 1e-7), but it would be a new dependency for these few lines, it puts a
# confidence on a bin edge in the upper bin (0.25 rather than 0.35 in
# tests/test_training.py::test_expected_calibration_error) and it returns the
# error alone, not the per-bin sums that results files store and add up.


def expected_calibration_error(probs: Tensor, labels: Tensor,
                               n_bins: int = 15) -> float:
    r"""The expected calibration error of the `"On Calibration of Modern
    Neural Networks" <https://arxiv.org/abs/1706.04599>`_ paper: samples are
    grouped by their confidence :math:`\max_c p_{ic}` into :obj:`n_bins`
    equal-width bins :math:`B_b = (\frac{b-1}{n}, \frac{b}{n}]` and

    .. math::
        \mathrm{ECE} = \sum_{b=1}^{n} \frac{|B_b|}{N}
        \left| \mathrm{acc}(B_b) - \mathrm{conf}(B_b) \right|.

    Args:
        probs (torch.Tensor): Class probabilities :math:`(N, C)`.
        labels (torch.Tensor): True classes :math:`(N,)`.
        n_bins (int, optional): Number of bins. (default: :obj:`15`)
    """
    return bins_ece(reliability_bins(probs, labels, n_bins))


def bins_ece(bins: Dict[str, List[float]]) -> float:
    r"""The expected calibration error of :func:`reliability_bins`' output
    (see :func:`expected_calibration_error`)."""
    gap = sum(abs(conf - correct)
              for conf, correct in zip(bins['confidence'], bins['correct']))
    return gap / max(sum(bins['count']), 1)


def reliability_bins(probs: Tensor, labels: Tensor,
                     n_bins: int = 15) -> Dict[str, List[float]]:
    r"""Per confidence bin :math:`B_b` (as in
    :func:`expected_calibration_error`): the number of samples
    (:obj:`"count"`), the sum of their confidences (:obj:`"confidence"`)
    and the number of correct predictions (:obj:`"correct"`); sums, so
    that bins of several runs add up."""
    conf, pred = probs.max(dim=-1)
    correct = pred.eq(labels).to(conf.dtype)
    edges = torch.linspace(0, 1, n_bins + 1, device=conf.device)
    bins = torch.bucketize(conf, edges[1:-1])  # (lower, upper]
    sums = conf.new_zeros(3, n_bins)
    sums.index_add_(1, bins, torch.stack([torch.ones_like(conf), conf,
                                          correct]))
    count, confidence, correct = sums.tolist()
    return dict(count=count, confidence=confidence, correct=correct)


def roc_auc(score: Tensor, labels: Tensor) -> float:
    r"""The area under the ROC curve of :obj:`score` for the binary
    :obj:`labels` (1: positive): the probability that a random positive
    scores above a random negative, ties counting one half, from the
    Mann-Whitney U statistic of the average ranks (as
    :func:`sklearn.metrics.roc_auc_score`). :obj:`nan` without positives or
    negatives. See :func:`roc_auc_tensor`."""
    return float(roc_auc_tensor(score, labels))


def roc_auc_tensor(score: Tensor, labels: Tensor) -> Tensor:
    r""":func:`roc_auc` as a 0-dim float64 tensor on the device of
    :obj:`score`, without host synchronization: tied scores share their
    average rank (the positions of the first and last equal score, found by
    :func:`torch.searchsorted` in the sorted scores), so the value equals
    :func:`scipy.stats.rankdata`'s bit for bit (half-integer ranks add up
    exactly in float64)."""
    score = score.detach().double()
    positive = labels.detach().bool()
    ordered = score.sort().values
    first = torch.searchsorted(ordered, score, side='left')
    last = torch.searchsorted(ordered, score, side='right')
    ranks = (first + last + 1).double() / 2  # 1-based average ranks
    pos = positive.sum().double()
    neg = positive.numel() - pos
    u = (ranks * positive).sum() - pos * (pos + 1) / 2
    return u / (pos * neg)
