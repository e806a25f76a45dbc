r"""Divergences between the query and the key distributions of attention heads.

Every divergence is a :class:`torch.nn.Module` that maps a batch of per-head
query samples :math:`(H, M, C)` and key samples :math:`(H, N, C)` to one value
per head :math:`(H,)`, computed for all heads at once (batched matrix products,
no Python loop over heads). The attention model *minimises* the returned
value. Divergences with an adversary (:class:`ConditionalTransport`'s critic,
:class:`AdversarialDivergence`'s discriminator) reverse the gradient that
reaches the adversary's parameters, so a single optimizer step on
:obj:`task_loss + lambda * divergence` trains the model by descent and the
adversary by ascent.
"""
import math
import os
import warnings
from typing import Callable, Optional, Sequence, Tuple

import ot
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module, Parameter

from torch_geometric.nn.inits import glorot, zeros


def fused_default() -> bool:
    r"""Whether divergences built with :obj:`fused=None` run fused by
    :func:`torch.compile`: the environment variable :obj:`ALIGN_GNN_FUSED`
    (:obj:`"1"` or :obj:`"0"`), else :obj:`False`."""
    return os.environ.get('ALIGN_GNN_FUSED', '0') not in ('', '0')


def fusable(fn: Callable) -> Callable:
    r"""Wraps :obj:`fn` (a function of tensors of fixed shapes) so that
    :obj:`fn(*args, fused=True)` runs it compiled by :func:`torch.compile`
    (forward and backward fused; one compilation per shape and dtype) and
    :obj:`fused=False` eagerly. Where compilation is unavailable or fails,
    it warns once and runs eagerly from then on."""
    compiled: Optional[Callable] = None
    failed = False

    def call(*args, fused: bool = False):
        nonlocal compiled, failed
        if fused and not failed:
            try:
                if compiled is None:
                    compiled = torch.compile(fn, dynamic=False,
                                             fullgraph=True)
                return compiled(*args)
            except Exception as error:  # No compiler, unsupported Python...
                if compiled is not None and not isinstance(
                        error, torch._dynamo.exc.TorchDynamoException):
                    raise
                failed = True
                warnings.warn(f"torch.compile of '{fn.__name__}' failed, "
                              f"running it eagerly ({error})")
        return fn(*args)

    call.__wrapped__ = fn
    return call


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.neg()


def reverse_gradient(x: Tensor) -> Tensor:
    r"""Identity in the forward pass, negated gradient in the backward pass."""
    return _GradientReversal.apply(x)


class HeadwiseMLP(Module):
    r"""A two-layer perceptron with separate weights for every head, applied
    to all heads in one batched matrix product.

    Args:
        heads (int): Number of heads :math:`H`.
        in_channels (int): Size of each input sample :math:`C`.
        hidden_channels (int): Size of the hidden layer.
        out_channels (int): Size of each output sample :math:`D`.
        reverse (bool, optional): If set to :obj:`True`, the gradients of the
            weights are negated, so that an optimizer *ascends* on them.
            (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(H, M, C)`
        - **output:** :math:`(H, M, D)`
    """
    def __init__(self, heads: int, in_channels: int, hidden_channels: int,
                 out_channels: int, reverse: bool = False):
        super().__init__()
        self.reverse = reverse
        self.weight1 = Parameter(torch.empty(heads, in_channels,
                                             hidden_channels))
        self.bias1 = Parameter(torch.empty(heads, 1, hidden_channels))
        self.weight2 = Parameter(torch.empty(heads, hidden_channels,
                                             out_channels))
        self.bias2 = Parameter(torch.empty(heads, 1, out_channels))
        self.reset_parameters()

    def reset_parameters(self):
        glorot(self.weight1)
        glorot(self.weight2)
        zeros(self.bias1)
        zeros(self.bias2)

    def weights(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""The weights for :func:`headwise_mlp`, gradient-reversed if
        :obj:`reverse` is set."""
        params = (self.weight1, self.bias1, self.weight2, self.bias2)
        if self.reverse:
            params = tuple(reverse_gradient(p) for p in params)
        return params

    def forward(self, x: Tensor) -> Tensor:
        return headwise_mlp(x, *self.weights())

    def __repr__(self) -> str:
        heads, in_channels, hidden_channels = self.weight1.shape
        return (f'{self.__class__.__name__}({in_channels}, '
                f'{self.weight2.size(-1)}, heads={heads}, '
                f'hidden_channels={hidden_channels}, reverse={self.reverse})')


def headwise_mlp(x: Tensor, weight1: Tensor, bias1: Tensor, weight2: Tensor,
                 bias2: Tensor) -> Tensor:
    r"""The computation of :class:`HeadwiseMLP` as a function of its
    weights."""
    x = F.leaky_relu(torch.baddbmm(bias1, x, weight1), 0.2)
    return torch.baddbmm(bias2, x, weight2)


def _positive(scale: Tensor) -> Tensor:
    r"""Clamps a cost scale away from zero, far enough that dividing by it
    keeps gradients finite (all-equal points have zero scale)."""
    return scale.clamp_min(torch.finfo(scale.dtype).tiny**0.5)


def _pairwise_sq_dist(x: Tensor, y: Tensor) -> Tensor:
    r"""Squared Euclidean distances :math:`(H, M, N)` between :math:`(H, M, C)`
    and :math:`(H, N, C)`, clamped at zero, without autograd (in place: one
    :math:`(H, M, N)` allocation)."""
    x, y = x.detach(), y.detach()
    dist = torch.baddbmm(x.pow(2).sum(-1, keepdim=True), x, y.transpose(1, 2),
                         alpha=-2)
    return dist.add_(y.pow(2).sum(-1).unsqueeze(-2)).clamp_min_(0)


def _weighted_sq_dist(weight: Tensor, x: Tensor, y: Tensor) -> Tensor:
    r"""The sums :math:`\sum_{ij} w_{ij} \|x_i - y_j\|^2` :math:`(H,)` for
    constant weights :math:`(H, M, N)` and points :math:`(H, M, C)`,
    :math:`(H, N, C)`: one batched product, and no :math:`(H, M, N)` tensor
    in the autograd graph."""
    return ((weight.sum(2) * x.pow(2).sum(-1)).sum(1) +
            (weight.sum(1) * y.pow(2).sum(-1)).sum(1) -
            2 * _bilinear(weight, x, y))


def _bilinear(weight: Tensor, x: Tensor, y: Tensor) -> Tensor:
    r"""The sums :math:`\sum_{ij} w_{ij} \langle x_i, y_j \rangle`
    :math:`(H,)` for weights :math:`(H, M, N)` and points :math:`(H, M, C)`,
    :math:`(H, N, C)`, by a product laid out as :math:`(H, C, M)` (several
    times faster on the CPU than :math:`(H, M, C)` for small :math:`C`)."""
    return (x.transpose(1, 2) * torch.bmm(y.transpose(1, 2),
                                          weight.transpose(1, 2))).sum((1, 2))


def _with_grad(value: Tensor, tangent: Tensor) -> Tensor:
    r"""The value of :obj:`value` (computed without autograd) with the
    gradient of :obj:`tangent`."""
    return value + (tangent - tangent.detach())


@fusable
def _conditional_transport(query: Tensor, key: Tensor,
                           critic: Tuple[Tensor, ...],
                           navigator: Tuple[Tensor, ...],
                           rho: float) -> Tensor:
    # The (H, M, N) matrices are computed without autograd, in place; the
    # gradient enters through `_bilinear` sums whose weights are the
    # derivatives of CT with respect to the cosines and the logits.
    M, N = query.size(1), key.size(1)
    points = torch.cat([query, key], dim=1)  # one pass per network
    critic = F.normalize(headwise_mlp(points, *critic), dim=-1)
    navigator = headwise_mlp(points, *navigator)
    critic_q, critic_k = critic[:, :M], critic[:, M:]
    navigator_q = navigator[:, :M] / math.sqrt(navigator.size(-1))
    navigator_k = navigator[:, M:]
    cos = torch.bmm(critic_q.detach(), critic_k.detach().transpose(1, 2))
    logits = torch.bmm(navigator_q.detach(),
                       navigator_k.detach().transpose(1, 2))
    forward_plan = logits.softmax(dim=2)
    logits.sub_(logits.amax(1, keepdim=True)).exp_()
    backward_plan = logits.div_(logits.sum(1, keepdim=True))
    # With plans summing to one, E[pi * (1 - cos)] = 1 - E[pi * cos]:
    forward_cost = forward_plan * cos
    forward = forward_cost.sum(2)
    backward_cost = cos.mul_(backward_plan)
    backward = backward_cost.sum(1)
    value = 1 - rho * forward.mean(1) - (1 - rho) * backward.mean(1)
    # Minus the derivatives with respect to the logits (softmax: pi * (cos -
    # E_pi[cos])) and the cosines (the plans), weighted as in the value:
    forward_cost.addcmul_(forward_plan, forward.unsqueeze(2), value=-1)
    backward_cost.addcmul_(backward_plan, backward.unsqueeze(1), value=-1)
    grad_logits = forward_cost.mul_(rho / M).add_(backward_cost,
                                                  alpha=(1 - rho) / N)
    grad_cos = forward_plan.mul_(rho / M).add_(backward_plan,
                                               alpha=(1 - rho) / N)
    return _with_grad(
        value, -_bilinear(grad_cos, critic_q, critic_k) -
        _bilinear(grad_logits, navigator_q, navigator_k))


class ConditionalTransport(Module):
    r"""The conditional transport (CT) divergence from the `"Comparing
    Probability Distributions with Conditional Transport"
    <https://arxiv.org/abs/2012.14100>`_ paper, as used for alignment attention
    in `"Alignment Attention by Matching Key and Query Distributions"
    <https://arxiv.org/abs/2110.12567>`_:

    .. math::
        \mathrm{CT} = \rho\, \mathbb{E}_{q} \sum_k \pi(k \mid q)\, c(q, k) +
        (1 - \rho)\, \mathbb{E}_{k} \sum_q \pi(q \mid k)\, c(q, k),

    with the critic's point cost
    :math:`c(q, k) = 1 - \cos(\tau_\eta(q), \tau_\eta(k))` and the navigator's
    transport plans :math:`\pi(k \mid q) = \mathrm{softmax}_k\, d(q, k)`,
    :math:`\pi(q \mid k) = \mathrm{softmax}_q\, d(q, k)`, where
    :math:`d(q, k) = \langle \nu_\phi(q), \nu_\phi(k) \rangle / \sqrt{D}`.
    The model and the navigator minimise CT; the critic maximises it (its
    gradients are reversed).

    Args:
        heads (int): Number of attention heads :math:`H`.
        channels (int): Size of each key and query :math:`C`.
        rho (float, optional): Weight :math:`\rho` of the forward
            (query-to-key) transport. (default: :obj:`0.5`)
        hidden_channels (int, optional): Width :math:`D` of the critic and
            navigator networks. (default: :obj:`32`)
        fused (bool, optional): If set to :obj:`True`, runs the forward
            and backward computation fused by :func:`torch.compile` (compiled
            once per input shape and dtype, eagerly where compilation
            fails); :obj:`None` reads :func:`fused_default`.
            (default: :obj:`None`)
    """
    def __init__(self, heads: int, channels: int, rho: float = 0.5,
                 hidden_channels: int = 32, fused: Optional[bool] = None):
        super().__init__()
        _check_rho(rho)
        self.rho = rho
        self.fused = fused_default() if fused is None else fused
        self.critic = HeadwiseMLP(heads, channels, hidden_channels,
                                  hidden_channels, reverse=True)
        self.navigator = HeadwiseMLP(heads, channels, hidden_channels,
                                     hidden_channels)

    def reset_parameters(self):
        self.critic.reset_parameters()
        self.navigator.reset_parameters()

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        return _conditional_transport(query, key, self.critic.weights(),
                                      self.navigator.weights(), self.rho,
                                      fused=self.fused)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(rho={self.rho})'


@fusable
def _adversarial(query: Tensor, key: Tensor,
                 discriminator: Tuple[Tensor, ...]) -> Tensor:
    bce = 0.5 * (F.softplus(-headwise_mlp(key, *discriminator)).mean((1, 2)) +
                 F.softplus(headwise_mlp(query, *discriminator)).mean((1, 2)))
    return math.log(2) - bce


class AdversarialDivergence(Module):
    r"""The adversarial (Jensen--Shannon) divergence: a discriminator
    :math:`D_\psi` tells keys (label 1) from queries (label 0), and

    .. math::
        \mathrm{JS} \approx \log 2 - \frac{1}{2} \left(
        \mathbb{E}_k \left[-\log \sigma(D_\psi(k))\right] +
        \mathbb{E}_q \left[-\log(1 - \sigma(D_\psi(q)))\right] \right).

    The discriminator minimises its binary cross-entropy (maximises the
    estimate, its gradients are reversed); the model maximises the
    cross-entropy (minimises the estimate). At the optimal discriminator the
    estimate equals the Jensen--Shannon divergence.

    Args:
        heads (int): Number of attention heads :math:`H`.
        channels (int): Size of each key and query :math:`C`.
        hidden_channels (int, optional): Width of the discriminator.
            (default: :obj:`32`)
        fused (bool, optional): If set to :obj:`True`, runs the forward
            and backward computation fused by :func:`torch.compile` (compiled
            once per input shape and dtype, eagerly where compilation
            fails); :obj:`None` reads :func:`fused_default`.
            (default: :obj:`None`)
    """
    def __init__(self, heads: int, channels: int, hidden_channels: int = 32,
                 fused: Optional[bool] = None):
        super().__init__()
        self.fused = fused_default() if fused is None else fused
        self.discriminator = HeadwiseMLP(heads, channels, hidden_channels, 1,
                                         reverse=True)

    def reset_parameters(self):
        self.discriminator.reset_parameters()

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        return _adversarial(query, key, self.discriminator.weights(),
                            fused=self.fused)


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
    def __init__(self, blur: float = 0.1, max_iter: int = 30,
                 tol: Optional[float] = None,
                 fused: Optional[bool] = None):
        super().__init__()
        if blur <= 0:
            raise ValueError(f"'blur' must be positive (got {blur})")
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
    def __init__(self,
                 bandwidths: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
                 fused: Optional[bool] = None):
        super().__init__()
        if len(bandwidths) == 0 or min(bandwidths) <= 0:
            raise ValueError(f"'bandwidths' must be positive numbers "
                             f"(got {bandwidths})")
        self.bandwidths = tuple(float(s) for s in bandwidths)
        self.fused = fused_default() if fused is None else fused

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        return _mmd(query, key, self.bandwidths, fused=self.fused)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(bandwidths={self.bandwidths})'


DIVERGENCES = ('ct', 'adversarial', 'sinkhorn', 'mmd')


def _check_rho(rho: float):
    if not 0 <= rho <= 1:
        raise ValueError(f"'rho' must lie in [0, 1] (got {rho})")


def resolve_divergence(divergence: str, heads: int, channels: int,
                       rho: float = 0.5, adversary_channels: int = 32,
                       fused: Optional[bool] = None) -> Module:
    r"""Builds the divergence named :obj:`divergence` (one of
    :obj:`'ct'`, :obj:`'adversarial'`, :obj:`'sinkhorn'`, :obj:`'mmd'`)."""
    name = divergence.lower() if isinstance(divergence, str) else divergence
    if name == 'ct':
        return ConditionalTransport(heads, channels, rho, adversary_channels,
                                    fused=fused)
    if name == 'adversarial':
        return AdversarialDivergence(heads, channels, adversary_channels,
                                     fused=fused)
    if name == 'sinkhorn':
        return SinkhornDivergence(fused=fused)
    if name == 'mmd':
        return MMD(fused=fused)
    raise ValueError(f"'divergence' must be one of {', '.join(DIVERGENCES)}, "
                     f"None or a torch.nn.Module (got {divergence!r})")
