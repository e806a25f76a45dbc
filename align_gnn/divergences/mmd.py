import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn import Module

from align_gnn.arguments import ARGUMENTS, checked
from align_gnn.divergences.utils import (
    _pairwise_sq_dist,
    _positive,
    _weighted_sq_dist,
    _with_grad,
    fusable,
    fused_default,
)


def _gaussian_mixture(dist: Tensor, factors: Tuple[float, ...],
                      slope_scale: float) -> Tuple[Tensor, Tensor]:
    r"""For scaled distances :math:`d` :math:`(B, M, N)` (consumed), the sums
    :math:`\sum_{ij} \sum_f \exp(-f d_{ij})` :math:`(B,)` and the negated
    derivative times :obj:`slope_scale`,
    :math:`s \sum_f f \exp(-f d)` :math:`(B, M, N)`. Where every factor is
    a power of two, one exponential and repeated squaring give them all
    (:math:`\exp(-2fd) = \exp(-fd)^2`)."""
    total, slope = 0, None
    if all(math.log2(f).is_integer() for f in factors):
        factors = sorted(factors)
        power = dist.mul_(-factors[0]).exp_()
        for previous, factor in zip([factors[0]] + factors, factors):
            for _ in range(round(math.log2(factor / previous))):
                power.square_()
            total = total + power.sum((1, 2))
            if slope is None:
                slope = power * (factor * slope_scale)
            else:
                slope.add_(power, alpha=factor * slope_scale)
        return total, slope
    for factor in factors:
        power = (dist * -factor).exp_()
        total = total + power.sum((1, 2))
        if slope is None:
            slope = power.mul_(factor * slope_scale)
        else:
            slope.add_(power, alpha=factor * slope_scale)
    return total, slope


@fusable
def _mmd(query: Tensor, key: Tensor, bandwidths: Tuple[float, ...]) -> Tensor:
    # The value is computed without autograd; its gradient enters through
    # sums of weighted distances (`_weighted_sq_dist`) whose weights are the
    # derivatives of the kernel means with respect to the distances.
    M, N = query.size(1), key.size(1)
    dist_qq = _pairwise_sq_dist(query, query)
    dist_kk = _pairwise_sq_dist(key, key)
    dist_qk = _pairwise_sq_dist(query, key)
    median, index = dist_qk.flatten(1).median(dim=1)
    heads = torch.arange(query.size(0), device=query.device)
    median = _with_grad(median, (query[heads, index // N] -
                                 key[heads, index % N]).pow(2).sum(-1))
    # Few distinct points (e.g. one query, one key) have a zero median:
    points = torch.cat([query, key], dim=1)
    mean = _with_grad(
        dist_qq.sum((1, 2)) + dist_kk.sum((1, 2)) + 2 * dist_qk.sum((1, 2)),
        2 * (M + N) * points.pow(2).sum((1, 2)) -
        2 * points.sum(1).pow(2).sum(-1)) / (M + N)**2
    scale = max(bandwidths) * _positive(torch.where(median > 0, median, mean))
    factors = tuple(max(bandwidths) / s for s in bandwidths)
    value, tangent = 0, 0
    for x, y, dist, weight in [(query, query, dist_qq, 1 / M**2),
                               (key, key, dist_kk, 1 / N**2),
                               (query, key, dist_qk, -2 / (M * N))]:
        weight /= len(bandwidths)
        # dist / scale, and the kernel means' gradient with respect to it:
        total, grad = _gaussian_mixture(
            dist.div_(scale.detach().view(-1, 1, 1)), factors, -weight)
        value = value + weight * total
        tangent = tangent + _weighted_sq_dist(grad, x, y) / scale
    return _with_grad(value, tangent)


class MMD(Module):
    r"""The squared maximum mean discrepancy (biased estimate) with a mixture
    of Gaussian kernels :math:`k(x, y) = \frac{1}{|S|} \sum_{s \in S}
    \exp(-\|x - y\|^2 / (s \cdot \mathrm{med}))`, where :math:`\mathrm{med}`
    is the median squared distance between the queries and the keys of each
    head (a quarter of the pooled pairs, four times faster to find):

    .. math::
        \mathrm{MMD}^2 = \mathbb{E}[k(q, q')] + \mathbb{E}[k(k, k')] -
        2\, \mathbb{E}[k(q, k)].

    The median is not detached, so the value does not change when keys and
    queries are scaled together: it cannot be lowered by shrinking the
    attention logits. It is zero for equal samples.

    Args:
        bandwidths (Sequence[float], optional): Factors :math:`S` of the
            median. (default: :obj:`(0.25, 0.5, 1.0, 2.0, 4.0)`)
        fused (bool, optional): If set to :obj:`True`, runs the forward
            and backward computation fused by :func:`torch.compile` (compiled
            once per input shape and dtype, eagerly where compilation
            fails); :obj:`None` reads :func:`fused_default`.
            (default: :obj:`None`)
    """
    @checked(ARGUMENTS)
    def __init__(self,
                 bandwidths: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
                 fused: Optional[bool] = None):
        super().__init__()
        self.bandwidths = bandwidths
        self.fused = fused_default() if fused is None else fused

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        return _mmd(query, key, self.bandwidths, fused=self.fused)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(bandwidths={self.bandwidths})'
