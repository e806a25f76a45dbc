from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module, Parameter

from torch_geometric.nn.inits import glorot, zeros

from align_gnn.arguments import ARGUMENTS, POSITIVE, checked


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
    @checked(dict(ARGUMENTS, in_channels=POSITIVE))
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
