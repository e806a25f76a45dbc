from align_gnn.conv.utils import (
    PERMUTATION_MAX_ROWS,
    quiet_sparse_csr,
    sample_rows,
    select_rows,
)
from align_gnn.conv.aligned_attention import ALIGN_OVER, AlignedAttention
from align_gnn.conv.aligned_gat_conv import AlignedGATConv
from align_gnn.conv.aligned_gatv2_conv import AlignedGATv2Conv
from align_gnn.conv.aligned_transformer_conv import AlignedTransformerConv
from align_gnn.conv.attention_sum import AttentionSum
from align_gnn.conv.normalized_gat_conv import NormalizedGATConv
from align_gnn.conv.aligned_layers import (
    adversary_parameters,
    alignment_loss,
    model_parameters,
)

__all__ = [
    'AlignedAttention',
    'AlignedGATConv',
    'AlignedGATv2Conv',
    'AlignedTransformerConv',
    'NormalizedGATConv',
    'AttentionSum',
    'alignment_loss',
    'adversary_parameters',
    'model_parameters',
    'sample_rows',
    'select_rows',
    'quiet_sparse_csr',
    'ALIGN_OVER',
    'PERMUTATION_MAX_ROWS',
]
