r"""Schedules over training: the weight of the alignment loss and the
learning rate, each with a linear warm-up."""
from align_gnn.arguments import ARGUMENTS, Integer, checked


@checked(ARGUMENTS)
def alignment_weight(epoch: int, weight: float, warmup: int = 0) -> float:
    r"""The weight :math:`\lambda_t` of the alignment loss in epoch
    :obj:`epoch` (counted from :obj:`0`): ramped linearly from :obj:`0`
    to :obj:`weight` over the first :obj:`warmup` epochs, then
    :obj:`weight`,

    .. math::
        \lambda_t = \lambda \cdot \min\left(1, \frac{t}{T}\right)

    (:obj:`weight` throughout if :obj:`warmup` is :obj:`0`). From scratch,
    an adversarial divergence such as conditional transport swings while
    the attention weights are still random; the warm-up lets the task loss
    shape them first.

    Args:
        epoch (int): The epoch :math:`t \geq 0` (:obj:`0`: the first).
        weight (float): The weight :math:`\lambda \geq 0` after the
            warm-up.
        warmup (int, optional): The warm-up's length :math:`T \geq 0` in
            epochs. (default: :obj:`0`)

    Other values (negative, NaN, infinite, :obj:`True`, a float epoch)
    raise a one-line :class:`ValueError` (see :mod:`align_gnn.arguments`).
    """
    if warmup == 0 or epoch >= warmup:
        return weight
    return weight * epoch / warmup


@checked(dict(ARGUMENTS, epoch=Integer(1)))
def learning_rate(epoch: int, lr: float, warmup: int = 0) -> float:
    r"""The learning rate in epoch :obj:`epoch`, counted from :obj:`1` as
    DGL's ogbn-arxiv recipe counts: a linear warm-up over the first
    :obj:`warmup` epochs, :math:`\eta_t = \eta \cdot \min(1, t / T)`
    (:obj:`lr` throughout if :obj:`warmup` is :obj:`0`).

    Args:
        epoch (int): The epoch :math:`t \geq 1`.
        lr (float): The learning rate :math:`\eta \geq 0` after the
            warm-up.
        warmup (int, optional): The warm-up's length :math:`T \geq 0` in
            epochs. (default: :obj:`0`)

    Other values raise a one-line :class:`ValueError`, as in
    :func:`alignment_weight`.
    """
    return alignment_weight(epoch, lr, warmup)
