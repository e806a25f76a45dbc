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
    and :math:`(H, N, C)`, clamped at zero (finite gradients for equal
    points)."""
    dist = (x.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1).unsqueeze(-2) -
            2 * torch.bmm(x, y.transpose(1, 2)))
    return dist.clamp_min(0)


@fusable
def _conditional_transport(query: Tensor, key: Tensor,
                           critic: Tuple[Tensor, ...],
                           navigator: Tuple[Tensor, ...],
                           rho: float) -> Tensor:
    m = query.size(1)
    points = torch.cat([query, key], dim=1)  # one pass per network
    critic = F.normalize(headwise_mlp(points, *critic), dim=-1)
    navigator = headwise_mlp(points, *navigator)
    cos = torch.bmm(critic[:, :m], critic[:, m:].transpose(1, 2))
    logits = torch.bmm(navigator[:, :m] / math.sqrt(navigator.size(-1)),
                       navigator[:, m:].transpose(1, 2))
    # With plans summing to one, E[pi * (1 - cos)] = 1 - E[pi * cos]:
    forward = (logits.softmax(dim=2) * cos).sum(2).mean(1)
    backward = (logits.softmax(dim=1) * cos).sum(1).mean(1)
    return 1 - rho * forward - (1 - rho) * backward


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


def _entropic_ot(cost: Tensor, blur: float, num_iter: int,
                 symmetric: bool = False, fused: bool = False) -> Tensor:
    r"""Entropic optimal transport values :math:`(B,)` between uniform
    marginals for costs :math:`(B, M, N)` after :obj:`num_iter` iterations:
    the dual value, whose gradient with respect to the cost is the plan
    (envelope theorem)."""
    log_kernel = cost.detach() / -blur
    B, M, N = log_kernel.shape
    u, v = log_kernel.new_zeros(B, M), log_kernel.new_zeros(B, N)
    for _ in range(num_iter):
        u, v = _sinkhorn_step(log_kernel, u, v, symmetric, fused=fused)
    plan = (log_kernel + u.unsqueeze(2) + v.unsqueeze(1)).exp()
    dual = blur * (u.mean(1) + v.mean(1) + 1 - plan.sum((1, 2)))
    return dual + (plan * (cost - cost.detach())).sum((1, 2))


def _sinkhorn(query: Tensor, key: Tensor, blur: float, num_iter: int,
              fused: bool = False) -> Tensor:
    cost_qk = _pairwise_sq_dist(query, key)
    scale = _positive(cost_qk.mean((1, 2), keepdim=True))
    num_symmetric = max(1, num_iter // 3)
    return (_entropic_ot(cost_qk / scale, blur, num_iter, fused=fused) -
            0.5 * _entropic_ot(_pairwise_sq_dist(query, query) / scale,
                               blur, num_symmetric, True, fused) -
            0.5 * _entropic_ot(_pairwise_sq_dist(key, key) / scale, blur,
                               num_symmetric, True, fused))


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

    def _pot_entropic_ot(self, cost: Tensor) -> Tensor:
        plan = ot.batch.solve_batch(cost.detach(), self.blur,
                                    max_iter=self.max_iter, tol=self.tol,
                                    method='log_sinkhorn', reg_type='entropy',
                                    grad='detach').plan
        # Envelope theorem: the gradient with respect to the cost is the plan.
        entropy = plan * plan.clamp_min(torch.finfo(plan.dtype).tiny).log()
        return (plan * cost + self.blur * entropy).sum((1, 2))

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        if self.tol is None:
            return _sinkhorn(query, key, self.blur, self.max_iter,
                             fused=self.fused)
        cost_qk = _pairwise_sq_dist(query, key)
        scale = _positive(cost_qk.mean((1, 2), keepdim=True))
        return (self._pot_entropic_ot(cost_qk / scale) -
                0.5 * self._pot_entropic_ot(_pairwise_sq_dist(query, query) /
                                            scale) -
                0.5 * self._pot_entropic_ot(_pairwise_sq_dist(key, key) /
                                            scale))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(blur={self.blur})'


def _gaussian_mixture_mean(dist: Tensor,
                           bandwidths: Tuple[float, ...]) -> Tensor:
    r"""The mean over the last two dimensions of
    :math:`\frac{1}{|S|} \sum_{s \in S} \exp(-d / s)` :math:`(B,)` for
    distances :math:`(B, M, N)`. Where every bandwidth is the largest divided
    by a power of two, one exponential and repeated squaring give them all
    (:math:`\exp(-2d/s) = \exp(-d/s)^2`)."""
    largest = max(bandwidths)
    powers = [math.log2(largest / s) for s in bandwidths]
    if not all(p.is_integer() for p in powers):
        means = [(dist / -s).exp().mean((1, 2)) for s in bandwidths]
    else:
        means, power, squarings = [], (dist / -largest).exp(), 0
        for p in sorted(int(p) for p in powers):
            for _ in range(p - squarings):
                power = power * power
            squarings = p
            means.append(power.mean((1, 2)))
    return sum(means) / len(bandwidths)


@fusable
def _mmd(query: Tensor, key: Tensor, bandwidths: Tuple[float, ...]) -> Tensor:
    M, N = query.size(1), key.size(1)
    dist_qq = _pairwise_sq_dist(query, query)
    dist_kk = _pairwise_sq_dist(key, key)
    dist_qk = _pairwise_sq_dist(query, key)
    median = dist_qk.flatten(1).median(dim=1).values
    # Few distinct points (e.g. one query, one key) have a zero median:
    mean = (dist_qq.sum((1, 2)) + dist_kk.sum((1, 2)) +
            2 * dist_qk.sum((1, 2))) / (M + N)**2
    median = _positive(torch.where(median > 0, median, mean)).view(-1, 1, 1)
    return (_gaussian_mixture_mean(dist_qq / median, bandwidths) +
            _gaussian_mixture_mean(dist_kk / median, bandwidths) -
            2 * _gaussian_mixture_mean(dist_qk / median, bandwidths))


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
