from typing import Optional

from torch.nn import Module

from align_gnn.arguments import ARGUMENTS, Choice, checked
from align_gnn.divergences.adversarial import AdversarialDivergence
from align_gnn.divergences.conditional_transport import ConditionalTransport
from align_gnn.divergences.mmd import MMD
from align_gnn.divergences.sinkhorn import SinkhornDivergence

DIVERGENCES = ('ct', 'adversarial', 'sinkhorn', 'mmd')
DIVERGENCE = Choice(*DIVERGENCES, ignore_case=True)  # a divergence's name


@checked(dict(ARGUMENTS, divergence=DIVERGENCE))
def resolve_divergence(divergence: str, heads: int, channels: int,
                       rho: float = 0.5, adversary_channels: int = 32,
                       fused: Optional[bool] = None) -> Module:
    r"""Builds the divergence named :obj:`divergence` (one of
    :obj:`'ct'`, :obj:`'adversarial'`, :obj:`'sinkhorn'`, :obj:`'mmd'`, in
    any case; every argument is checked, see :mod:`align_gnn.arguments`)."""
    if divergence == 'ct':
        return ConditionalTransport(heads, channels, rho, adversary_channels,
                                    fused=fused)
    if divergence == 'adversarial':
        return AdversarialDivergence(heads, channels, adversary_channels,
                                     fused=fused)
    if divergence == 'sinkhorn':
        return SinkhornDivergence(fused=fused)
    return MMD(fused=fused)
