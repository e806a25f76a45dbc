import os
import warnings
from typing import Callable, Optional

import torch
from torch import Tensor


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
