r"""The optimizer of a run: Adam or RMSprop over the model with the
adversaries as a second parameter group, capturable in a CUDA graph where
asked, and the learning rate's linear warm-up."""
import torch

from align_gnn.config import Config
from align_gnn.conv import adversary_parameters, model_parameters
from align_gnn.schedule import learning_rate


def make_optimizer(model: torch.nn.Module, config: Config,
                   method: str,
                   capturable: bool = False) -> torch.optim.Optimizer:
    r"""Adam or RMSprop (:obj:`config.optimizer`) over every parameter of
    :obj:`model` (of :obj:`method`) with :obj:`config.lr` and
    :obj:`config.weight_decay`; the adversaries' parameters (see
    :func:`~align_gnn.adversary_parameters`) form a second group with the
    learning rate :obj:`config.lr` times the method's
    :obj:`adversary_lr_scale` (see
    :meth:`~align_gnn.config.Config.alignment`). Each group keeps its
    learning rate after warm-up as :obj:`"initial_lr"` (see
    :func:`set_learning_rate`). With :obj:`capturable` (CUDA), the step
    can be captured in a CUDA graph: its counters and the learning rates
    are device tensors."""
    adversary = adversary_parameters(model)
    groups = [dict(params=model_parameters(model), initial_lr=config.lr)]
    if adversary:
        scale = config.alignment(method)['adversary_lr_scale']
        groups.append(dict(params=adversary, lr=config.lr * scale,
                           initial_lr=config.lr * scale))
    optimizer = (torch.optim.RMSprop if config.optimizer == 'rmsprop' else
                 torch.optim.Adam)
    if not capturable:
        return optimizer(groups, lr=config.lr,
                         weight_decay=config.weight_decay)
    device = next(model.parameters()).device
    for group in groups:
        group['lr'] = torch.tensor(group.get('lr', config.lr), device=device)
    return optimizer(groups, lr=torch.tensor(config.lr, device=device),
                     weight_decay=config.weight_decay, capturable=True)


def set_learning_rate(optimizer: torch.optim.Optimizer, epoch: int,
                      warmup: int):
    r"""Sets each group's learning rate for epoch :obj:`epoch` (from
    :obj:`1`) of a linear warm-up over :obj:`warmup` epochs to its
    :obj:`"initial_lr"` (see :func:`~align_gnn.schedule.learning_rate`)."""
    for group in optimizer.param_groups:
        lr = learning_rate(epoch, group['initial_lr'], warmup)
        if isinstance(group['lr'], torch.Tensor):  # capturable: in place
            group['lr'].fill_(lr)
        else:
            group['lr'] = lr
