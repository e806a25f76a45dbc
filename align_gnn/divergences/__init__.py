r"""Divergences between the query and the key distributions of attention heads.

Every divergence is a :class:`torch.nn.Module` that maps a batch of per-head
query samples :math:`(H, M, C)` and key samples :math:`(H, N, C)` to one value
per head :math:`(H,)`, computed for all heads at once (batched matrix products,
no Python loop over heads). The attention model *minimises* the returned
value. Divergences with an adversary (:class:`ConditionalTransport`'s critic,
:class:`AdversarialDivergence`'s discriminator) reverse the gradient that
reaches the adversary's parameters, so a single optimizer step on
:obj:`task_loss + lambda * divergence` trains the model by descent and the
adversary by ascent.
"""
from align_gnn.divergences.utils import fusable, fused_default
from align_gnn.divergences.adversary import (
    HeadwiseMLP,
    headwise_mlp,
    reverse_gradient,
)
from align_gnn.divergences.conditional_transport import ConditionalTransport
from align_gnn.divergences.adversarial import AdversarialDivergence
from align_gnn.divergences.sinkhorn import SinkhornDivergence
from align_gnn.divergences.mmd import MMD
from align_gnn.divergences.resolver import DIVERGENCES, resolve_divergence

__all__ = [
    'ConditionalTransport',
    'AdversarialDivergence',
    'SinkhornDivergence',
    'MMD',
    'DIVERGENCES',
    'resolve_divergence',
    'HeadwiseMLP',
    'headwise_mlp',
    'reverse_gradient',
    'fusable',
    'fused_default',
]
