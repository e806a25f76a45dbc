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
from typing import Sequence

import ot
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module, Parameter

from torch_geometric.nn.inits import glorot, zeros


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

    def forward(self, x: Tensor) -> Tensor:
        params = (self.weight1, self.bias1, self.weight2, self.bias2)
        if self.reverse:
            params = tuple(reverse_gradient(p) for p in params)
        weight1, bias1, weight2, bias2 = params
        x = F.leaky_relu(torch.baddbmm(bias1, x, weight1), 0.2)
        return torch.baddbmm(bias2, x, weight2)

    def __repr__(self) -> str:
        heads, in_channels, hidden_channels = self.weight1.shape
        return (f'{self.__class__.__name__}({in_channels}, '
                f'{self.weight2.size(-1)}, heads={heads}, '
                f'hidden_channels={hidden_channels}, reverse={self.reverse})')


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
    """
    def __init__(self, heads: int, channels: int, rho: float = 0.5,
                 hidden_channels: int = 32):
        super().__init__()
        _check_rho(rho)
        self.rho = rho
        self.critic = HeadwiseMLP(heads, channels, hidden_channels,
                                  hidden_channels, reverse=True)
        self.navigator = HeadwiseMLP(heads, channels, hidden_channels,
                                     hidden_channels)

    def reset_parameters(self):
        self.critic.reset_parameters()
        self.navigator.reset_parameters()

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        m = query.size(1)
        points = torch.cat([query, key], dim=1)  # one pass per network
        critic = F.normalize(self.critic(points), dim=-1)
        navigator = self.navigator(points)
        cos = torch.bmm(critic[:, :m], critic[:, m:].transpose(1, 2))
        logits = torch.bmm(navigator[:, :m] / math.sqrt(navigator.size(-1)),
                           navigator[:, m:].transpose(1, 2))
        # With plans summing to one, E[pi * (1 - cos)] = 1 - E[pi * cos]:
        forward = (logits.softmax(dim=2) * cos).sum(2).mean(1)
        backward = (logits.softmax(dim=1) * cos).sum(1).mean(1)
        return 1 - self.rho * forward - (1 - self.rho) * backward

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(rho={self.rho})'


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
    """
    def __init__(self, heads: int, channels: int, hidden_channels: int = 32):
        super().__init__()
        self.discriminator = HeadwiseMLP(heads, channels, hidden_channels, 1,
                                         reverse=True)

    def reset_parameters(self):
        self.discriminator.reset_parameters()

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        bce = 0.5 * (F.softplus(-self.discriminator(key)).mean((1, 2)) +
                     F.softplus(self.discriminator(query)).mean((1, 2)))
        return math.log(2) - bce


class SinkhornDivergence(Module):
    r"""The debiased Sinkhorn divergence (entropic optimal transport with a
    squared Euclidean cost) of `"Interpolating between Optimal Transport and
    MMD using Sinkhorn Divergences" <https://arxiv.org/abs/1810.08278>`_:

    .. math::
        S_\varepsilon(q, k) = \mathrm{OT}_\varepsilon(q, k) -
        \frac{1}{2} \mathrm{OT}_\varepsilon(q, q) -
        \frac{1}{2} \mathrm{OT}_\varepsilon(k, k),

    solved in the log domain by POT's batched solver
    (:func:`ot.batch.solve_batch`) with envelope-theorem gradients. Costs are
    divided by the mean query-key cost of each head (differentiably), so the
    value does not change when keys and queries are scaled together: it
    cannot be lowered by shrinking the attention logits. It is zero for equal
    samples.

    Args:
        blur (float, optional): Entropic regularisation :math:`\varepsilon`,
            relative to the mean cost. (default: :obj:`0.1`)
        max_iter (int, optional): Maximum number of Sinkhorn iterations.
            (default: :obj:`100`)
        tol (float, optional): Tolerance on the marginals.
            (default: :obj:`1e-4`)
    """
    def __init__(self, blur: float = 0.1, max_iter: int = 100,
                 tol: float = 1e-4):
        super().__init__()
        if blur <= 0:
            raise ValueError(f"'blur' must be positive (got {blur})")
        self.blur = blur
        self.max_iter = max_iter
        self.tol = tol

    def _entropic_ot(self, cost: Tensor) -> Tensor:
        plan = ot.batch.solve_batch(cost.detach(), self.blur,
                                    max_iter=self.max_iter, tol=self.tol,
                                    method='log_sinkhorn', reg_type='entropy',
                                    grad='detach').plan
        # Envelope theorem: the gradient with respect to the cost is the plan.
        entropy = plan * plan.clamp_min(torch.finfo(plan.dtype).tiny).log()
        return (plan * cost + self.blur * entropy).sum((1, 2))

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        cost_qk = _pairwise_sq_dist(query, key)
        scale = _positive(cost_qk.mean((1, 2), keepdim=True))
        return (self._entropic_ot(cost_qk / scale) -
                0.5 * self._entropic_ot(_pairwise_sq_dist(query, query) /
                                        scale) -
                0.5 * self._entropic_ot(_pairwise_sq_dist(key, key) / scale))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(blur={self.blur})'


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
    """
    def __init__(self,
                 bandwidths: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)):
        super().__init__()
        if len(bandwidths) == 0 or min(bandwidths) <= 0:
            raise ValueError(f"'bandwidths' must be positive numbers "
                             f"(got {bandwidths})")
        self.bandwidths = tuple(float(s) for s in bandwidths)

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        m = query.size(1)
        points = torch.cat([query, key], dim=1)
        dist = _pairwise_sq_dist(points, points)
        median = dist[:, :m, m:].flatten(1).median(dim=1).values
        median = median.view(-1, 1, 1)
        # Few distinct points (e.g. one query, one key) have a zero median:
        median = _positive(torch.where(median > 0, median,
                                       dist.mean((1, 2), keepdim=True)))
        dist = dist / median  # saved once for all bandwidths
        kernel = sum((dist * (-1 / s)).exp()
                     for s in self.bandwidths) / len(self.bandwidths)
        return (kernel[:, :m, :m].mean((1, 2)) +
                kernel[:, m:, m:].mean((1, 2)) -
                2 * kernel[:, :m, m:].mean((1, 2)))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(bandwidths={self.bandwidths})'


DIVERGENCES = ('ct', 'adversarial', 'sinkhorn', 'mmd')


def _check_rho(rho: float):
    if not 0 <= rho <= 1:
        raise ValueError(f"'rho' must lie in [0, 1] (got {rho})")


def resolve_divergence(divergence: str, heads: int, channels: int,
                       rho: float = 0.5,
                       adversary_channels: int = 32) -> Module:
    r"""Builds the divergence named :obj:`divergence` (one of
    :obj:`'ct'`, :obj:`'adversarial'`, :obj:`'sinkhorn'`, :obj:`'mmd'`)."""
    name = divergence.lower() if isinstance(divergence, str) else divergence
    if name == 'ct':
        return ConditionalTransport(heads, channels, rho, adversary_channels)
    if name == 'adversarial':
        return AdversarialDivergence(heads, channels, adversary_channels)
    if name == 'sinkhorn':
        return SinkhornDivergence()
    if name == 'mmd':
        return MMD()
    raise ValueError(f"'divergence' must be one of {', '.join(DIVERGENCES)}, "
                     f"None or a torch.nn.Module (got {divergence!r})")
