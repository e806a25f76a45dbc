import math
from typing import Optional, Tuple

import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from align_gnn.arguments import ARGUMENTS, checked
from align_gnn.divergences.adversary import HeadwiseMLP, headwise_mlp
from align_gnn.divergences.utils import fusable, fused_default


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
    @checked(ARGUMENTS)
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
