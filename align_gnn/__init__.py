r"""Alignment attention for graph neural networks: match the distributions of
keys and queries inside every attention head (Zhang et al., NeurIPS 2021).

Importing it asks MKL for its reproducible mode (``MKL_CBWR=AUTO,STRICT``,
unless already set: results independent of memory alignment), before the first
matrix product of the process if :mod:`align_gnn` is imported first; training
also runs MKL's products on one thread (see :mod:`align_gnn.reproducibility`),
so that a run gives the same bits whatever the number of threads."""
import os

os.environ.setdefault('MKL_CBWR', 'AUTO,STRICT')

from align_gnn.conv import (
    AlignedAttention,
    AlignedGATConv,
    AlignedGATv2Conv,
    AlignedTransformerConv,
    NormalizedGATConv,
    adversary_parameters,
    alignment_loss,
    model_parameters,
)
from align_gnn.convert import convert
from align_gnn.diagnostics import AttentionCheck, attention_check
from align_gnn.divergences import (
    DIVERGENCES,
    AdversarialDivergence,
    ConditionalTransport,
    MMD,
    SinkhornDivergence,
)
from align_gnn.schedule import alignment_weight

__version__ = '0.1.0'

__all__ = [
    'AlignedGATConv',
    'AlignedGATv2Conv',
    'AlignedTransformerConv',
    'NormalizedGATConv',
    'AlignedAttention',
    'alignment_loss',
    'alignment_weight',
    'adversary_parameters',
    'model_parameters',
    'convert',
    'attention_check',
    'AttentionCheck',
    'DIVERGENCES',
    'ConditionalTransport',
    'AdversarialDivergence',
    'SinkhornDivergence',
    'MMD',
]
