from typing import List

import torch
from torch import Tensor
from torch.nn import Module, Parameter

from align_gnn.conv.aligned_attention import AlignedAttention


def alignment_loss(model: Module) -> Tensor:
    r"""The sum of :meth:`~AlignedAttention.get_alignment_loss` over every
    aligned layer in :obj:`model` (0-dim; :obj:`0.` if there is none)."""
    losses = [
        module.get_alignment_loss() for module in model.modules()
        if isinstance(module, AlignedAttention)
    ]
    if not losses:
        param = next(model.parameters(), None)
        return torch.zeros((), device=None if param is None else param.device)
    return torch.stack(losses).sum()


def adversary_parameters(model: Module) -> List[Parameter]:
    r"""The trained parameters of the adversaries of the aligned layers in
    :obj:`model`: conditional transport's critic and navigator, the
    discriminator of :obj:`"adversarial"` (:obj:`"sinkhorn"` and
    :obj:`"mmd"` have none). They are new parameters of the aligned layers
    (:func:`~align_gnn.convert` creates them), so give them to the
    optimizer, e.g. as a parameter group with their own learning rate:

    .. code-block:: python

        optimizer = torch.optim.Adam([
            dict(params=model_parameters(model)),
            dict(params=adversary_parameters(model), lr=0.3 * 0.005),
        ], lr=0.005, weight_decay=5e-4)

    A single :meth:`optimizer.step` then descends on the model and ascends
    on the adversaries (their gradients are reversed in the backward
    pass)."""
    return [
        p for module in model.modules()
        if isinstance(module, AlignedAttention)
        and module.divergence is not None
        for p in module.divergence.parameters() if p.requires_grad
    ]


def model_parameters(model: Module) -> List[Parameter]:
    r"""The trained parameters of :obj:`model` other than its adversaries'
    (see :func:`adversary_parameters`): :obj:`model.parameters()` less
    :obj:`adversary_parameters(model)`, in the same order."""
    adversary = {id(p) for p in adversary_parameters(model)}
    return [p for p in model.parameters()
            if p.requires_grad and id(p) not in adversary]
