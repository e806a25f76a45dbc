r"""Alignment attention for graph neural networks: match the distributions of
keys and queries inside every attention head (Zhang et al., NeurIPS 2021).

Importing it asks MKL for its strict reproducible mode (``MKL_CBWR``, unless
already set), so that a matrix product gives the same bits whatever number of
threads MKL runs it on; this must happen before the first product of the
process (import :mod:`align_gnn` first), and it costs no measurable time."""
import os

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

os.environ.setdefault('MKL_CBWR', 'AUTO,STRICT')

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
