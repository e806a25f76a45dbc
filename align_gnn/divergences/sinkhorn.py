import math
from typing import Callable, Optional, Tuple

import ot
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


@fusable
def _sinkhorn_step(log_kernel: Tensor, u: Tensor, v: Tensor,
                   symmetric: bool) -> Tuple[Tensor, Tensor]:
    r"""One log-domain Sinkhorn iteration on the log-scalings :math:`u`
    :math:`(B, M)` and :math:`v` :math:`(B, N)` of the plan
    :math:`\exp(\log K_{ij} + u_i + v_j)` with uniform marginals: alternating,
    or for a symmetric kernel an averaged symmetric update (which converges
    faster)."""
    M, N = log_kernel.shape[1:]
    if symmetric:
        u = 0.5 * (u - math.log(M) -
                   (log_kernel + u.unsqueeze(1)).logsumexp(2))
        return u, u
    u = -math.log(M) - (log_kernel + v.unsqueeze(1)).logsumexp(2)
    return u, -math.log(N) - (log_kernel + u.unsqueeze(2)).logsumexp(1)


@fusable
def _scaling_step(kernel: Tensor, a: Tensor, b: Tensor,
                  symmetric: bool) -> Tuple[Tensor, Tensor]:
    r"""The iteration of :func:`_sinkhorn_step` on the scalings
    :math:`a = \exp(u - u_0)` :math:`(B, M)` and :math:`b = \exp(v - v_0)`
    :math:`(B, N)` of the kernel :math:`\exp(\log K_{ij} + u_{0,i} +
    v_{0,j})`: two vector-matrix products instead of two log-sum-exps (as
    row vectors: several times faster on the CPU than matrix-vector)."""
    M, N = kernel.shape[1:]
    if symmetric:
        a = (a / (M * torch.bmm(a.unsqueeze(1), kernel).squeeze(1))).sqrt()
        return a, a
    a = 1 / (M * torch.bmm(b.unsqueeze(1), kernel.transpose(1, 2)).squeeze(1))
    return a, 1 / (N * torch.bmm(a.unsqueeze(1), kernel).squeeze(1))


ABSORB_EVERY = 10


def _entropic_ot(cost: Tensor, blur: float, num_iter: int,
                 symmetric: bool = False,
                 fused: bool = False) -> Tuple[Tensor, Tensor]:
    r"""Entropic optimal transport between uniform marginals for costs
    :math:`(B, M, N)` (consumed) after :obj:`num_iter` Sinkhorn iterations:
    the dual values :math:`(B,)`, whose gradient with respect to the cost is
    the plan (envelope theorem), and the plan :math:`(B, M, N)`. The first
    iteration runs in the log domain, the others on scalings of the kernel
    with the log-scalings absorbed (its entries are then at most one),
    absorbed again every :obj:`ABSORB_EVERY` iterations."""
    log_kernel = cost.div_(-blur)
    B, M, N = log_kernel.shape
    u, v = _sinkhorn_step(log_kernel, log_kernel.new_zeros(B, M),
                          log_kernel.new_zeros(B, N), symmetric, fused=fused)
    kernel = torch.empty_like(log_kernel)
    for start in range(1, num_iter, ABSORB_EVERY):
        torch.add(log_kernel, u.unsqueeze(2), out=kernel)
        kernel.add_(v.unsqueeze(1)).exp_()
        a, b = u.new_ones(B, M), v.new_ones(B, N)
        for _ in range(start, min(start + ABSORB_EVERY, num_iter)):
            a, b = _scaling_step(kernel, a, b, symmetric, fused=fused)
        u, v = u + a.log(), v + b.log()
    plan = log_kernel.add_(u.unsqueeze(2)).add_(v.unsqueeze(1)).exp_()
    return blur * (u.mean(1) + v.mean(1) + 1 - plan.sum((1, 2))), plan


def _sinkhorn(query: Tensor, key: Tensor,
              entropic_ot: Callable[[Tensor, bool], Tuple[Tensor, Tensor]],
              ) -> Tensor:
    # The transport is solved without autograd; by the envelope theorem the
    # gradient with respect to each cost is its plan, which enters through
    # `_weighted_sq_dist`.
    dist_qk = _pairwise_sq_dist(query, key)
    mean = (query.pow(2).sum(-1).mean(1) + key.pow(2).sum(-1).mean(1) -
            2 * (query.mean(1) * key.mean(1)).sum(-1))
    scale = _positive(_with_grad(dist_qk.mean((1, 2)), mean))
    value = 0
    for x, y, dist, weight, symmetric in [
        (query, key, dist_qk, 1, False),
        (query, query, _pairwise_sq_dist(query, query), -0.5, True),
        (key, key, _pairwise_sq_dist(key, key), -0.5, True),
    ]:
        ot, plan = entropic_ot(dist.div_(scale.detach().view(-1, 1, 1)),
                               symmetric)
        value = value + weight * _with_grad(
            ot, _weighted_sq_dist(plan, x, y) / scale)
    return value


class SinkhornDivergence(Module):
    r"""The debiased Sinkhorn divergence (entropic optimal transport with a
    squared Euclidean cost) of `"Interpolating between Optimal Transport and
    MMD using Sinkhorn Divergences" <https://arxiv.org/abs/1810.08278>`_:

    .. math::
        S_\varepsilon(q, k) = \mathrm{OT}_\varepsilon(q, k) -
        \frac{1}{2} \mathrm{OT}_\varepsilon(q, q) -
        \frac{1}{2} \mathrm{OT}_\varepsilon(k, k),

    with :math:`\mathrm{OT}_\varepsilon = \min_\pi \langle \pi, c \rangle +
    \varepsilon \langle \pi, \log \pi \rangle` over plans with uniform
    marginals, solved in the log domain for all heads at once, with
    envelope-theorem gradients. By default a fixed number of iterations
    without convergence check (no host synchronization, fusable):
    :obj:`max_iter` alternating ones for :math:`\mathrm{OT}_\varepsilon(q,
    k)`, a third as many symmetric ones for the two debiasing terms, and the
    dual value (which converges faster than the plan). With :obj:`tol` set,
    POT's batched solver (:func:`ot.batch.solve_batch`) instead, which stops
    once the marginals are within :obj:`tol` (checked on the host every ten
    iterations). Costs are divided by the mean query-key cost of each head
    (differentiably), so the value does not change when keys and queries are
    scaled together: it cannot be lowered by shrinking the attention logits.
    It is zero for equal samples.

    Args:
        blur (float, optional): Entropic regularisation :math:`\varepsilon`,
            relative to the mean cost. (default: :obj:`0.1`)
        max_iter (int, optional): Number of Sinkhorn iterations (the
            maximum with :obj:`tol`). (default: :obj:`30`)
        tol (float, optional): If set, POT's solver stops once the marginals
            are within :obj:`tol`. (default: :obj:`None`)
        fused (bool, optional): If set to :obj:`True`, runs the forward
            and backward computation fused by :func:`torch.compile` (compiled
            once per input shape and dtype, eagerly where compilation
            fails); :obj:`None` reads :func:`fused_default`.
            (default: :obj:`None`)
    """
    @checked(ARGUMENTS)
    def __init__(self, blur: float = 0.1, max_iter: int = 30,
                 tol: Optional[float] = None,
                 fused: Optional[bool] = None):
        super().__init__()
        self.blur = blur
        self.max_iter = max_iter
        self.tol = tol
        self.fused = fused_default() if fused is None else fused

    def _pot_entropic_ot(self, cost: Tensor,
                         symmetric: bool) -> Tuple[Tensor, Tensor]:
        plan = ot.batch.solve_batch(cost, self.blur, max_iter=self.max_iter,
                                    tol=self.tol, method='log_sinkhorn',
                                    reg_type='entropy', grad='detach').plan
        entropy = plan * plan.clamp_min(torch.finfo(plan.dtype).tiny).log()
        return (plan * cost + self.blur * entropy).sum((1, 2)), plan

    def _entropic_ot(self, cost: Tensor,
                     symmetric: bool) -> Tuple[Tensor, Tensor]:
        num_iter = max(1, self.max_iter // 3) if symmetric else self.max_iter
        return _entropic_ot(cost, self.blur, num_iter, symmetric, self.fused)

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        return _sinkhorn(
            query, key, self._entropic_ot
            if self.tol is None else self._pot_entropic_ot)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(blur={self.blur})'
