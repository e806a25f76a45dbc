import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from align_gnn.arguments import ARGUMENTS, checked
from align_gnn.divergences.adversary import HeadwiseMLP, headwise_mlp
from align_gnn.divergences.utils import (
    _bilinear,
    _with_grad,
    fusable,
    fused_default,
)


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
    @checked(ARGUMENTS)
    def __init__(self, heads: int, channels: int, rho: float = 0.5,
                 hidden_channels: int = 32, fused: Optional[bool] = None):
        super().__init__()
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
