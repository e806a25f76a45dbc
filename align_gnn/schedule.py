r"""Schedules over training: the weight of the alignment loss and the
learning rate, each with a linear warm-up."""


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
        weight (float): The weight :math:`\lambda` after the warm-up.
        warmup (int, optional): The warm-up's length :math:`T` in epochs.
            (default: :obj:`0`)
    """
    if epoch < 0 or warmup < 0:
        raise ValueError(f"'epoch' and 'warmup' must be >= 0 (got epoch="
                         f"{epoch}, warmup={warmup})")
    if warmup == 0 or epoch >= warmup:
        return float(weight)
    return float(weight) * epoch / warmup


def learning_rate(epoch: int, lr: float, warmup: int = 0) -> float:
    r"""The learning rate in epoch :obj:`epoch`, counted from :obj:`1` as
    DGL's ogbn-arxiv recipe counts: a linear warm-up over the first
    :obj:`warmup` epochs, :math:`\eta_t = \eta \cdot \min(1, t / T)`
    (:obj:`lr` throughout if :obj:`warmup` is :obj:`0`).

    Args:
        epoch (int): The epoch :math:`t \geq 1`.
        lr (float): The learning rate :math:`\eta` after the warm-up.
        warmup (int, optional): The warm-up's length :math:`T` in epochs.
            (default: :obj:`0`)
    """
    if epoch < 1:
        raise ValueError(f"'epoch' must be >= 1 (got {epoch})")
    return alignment_weight(epoch, lr, warmup)
