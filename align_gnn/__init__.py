r"""Alignment attention for graph neural networks: match the distributions of
keys and queries inside every attention head (Zhang et al., NeurIPS 2021)."""
from align_gnn.conv import (
    AlignedAttention,
    AlignedGATConv,
    AlignedGATv2Conv,
    AlignedTransformerConv,
    alignment_loss,
)
from align_gnn.convert import convert
from align_gnn.divergences import (
    DIVERGENCES,
    AdversarialDivergence,
    ConditionalTransport,
    MMD,
    SinkhornDivergence,
)

__version__ = '0.1.0'

__all__ = [
    'AlignedGATConv',
    'AlignedGATv2Conv',
    'AlignedTransformerConv',
    'AlignedAttention',
    'alignment_loss',
    'convert',
    'DIVERGENCES',
    'ConditionalTransport',
    'AdversarialDivergence',
    'SinkhornDivergence',
    'MMD',
]
