from typing import Optional

from torch.nn import Module

from align_gnn.divergences.adversarial import AdversarialDivergence
from align_gnn.divergences.conditional_transport import ConditionalTransport
from align_gnn.divergences.mmd import MMD
from align_gnn.divergences.sinkhorn import SinkhornDivergence

DIVERGENCES = ('ct', 'adversarial', 'sinkhorn', 'mmd')


def resolve_divergence(divergence: str, heads: int, channels: int,
                       rho: float = 0.5, adversary_channels: int = 32,
                       fused: Optional[bool] = None) -> Module:
    r"""Builds the divergence named :obj:`divergence` (one of
    :obj:`'ct'`, :obj:`'adversarial'`, :obj:`'sinkhorn'`, :obj:`'mmd'`)."""
    name = divergence.lower() if isinstance(divergence, str) else divergence
    if name == 'ct':
        return ConditionalTransport(heads, channels, rho, adversary_channels,
                                    fused=fused)
    if name == 'adversarial':
        return AdversarialDivergence(heads, channels, adversary_channels,
                                     fused=fused)
    if name == 'sinkhorn':
        return SinkhornDivergence(fused=fused)
    if name == 'mmd':
        return MMD(fused=fused)
    raise ValueError(f"'divergence' must be one of {', '.join(DIVERGENCES)}, "
                     f"None or a torch.nn.Module (got {divergence!r})")
