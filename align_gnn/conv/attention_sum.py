import torch
from torch import Tensor


class AttentionSum(torch.autograd.Function):
    r"""The attention-weighted sum of messages,
    :math:`\mathbf{x}^{\prime}_{i,h} = \sum_{e = (j, i)} \alpha_{e,h}
    \mathbf{x}_{j,h}`, for :obj:`alpha` :math:`(E, H)` and :obj:`x`
    :math:`(N, H, C)`, computed (forward and backward) over chunks of at
    most :obj:`CHUNK_ELEMENTS / (H * C)` edges, so that no tensor of shape
    :math:`(E, H, C)` is ever held: on ogbn-arxiv's 2.5 M edges at
    :math:`H \cdot C = 750`, PyG's message passing would hold two of 7.4 GB
    per layer. Call it as :obj:`AttentionSum.apply(alpha, x, edge_index,
    num_nodes)`."""
    CHUNK_ELEMENTS = 1 << 25

    @staticmethod
    def _sum(weight: Tensor, x: Tensor, gather: Tensor, scatter: Tensor,
             num_nodes: int) -> Tensor:
        out = x.new_zeros(num_nodes, *x.shape[1:])
        step = max(1, AttentionSum.CHUNK_ELEMENTS // x[0].numel())
        for start in range(0, gather.numel(), step):
            part = slice(start, start + step)
            out.index_add_(0, scatter[part],
                           weight[part].unsqueeze(-1) * x[gather[part]])
        return out

    @staticmethod
    def forward(ctx, alpha: Tensor, x: Tensor, edge_index: Tensor,
                num_nodes: int) -> Tensor:
        ctx.save_for_backward(alpha, x, edge_index)
        return AttentionSum._sum(alpha, x, edge_index[0], edge_index[1],
                                 num_nodes)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        alpha, x, edge_index = ctx.saved_tensors
        src, dst = edge_index
        grad_alpha = grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = AttentionSum._sum(alpha, grad_out, dst, src, x.size(0))
        if ctx.needs_input_grad[0]:
            grad_alpha = torch.empty_like(alpha)
            step = max(1, AttentionSum.CHUNK_ELEMENTS // x[0].numel())
            for start in range(0, src.numel(), step):
                part = slice(start, start + step)
                grad_alpha[part] = (grad_out[dst[part]] *
                                    x[src[part]]).sum(dim=-1)
        return grad_alpha, grad_x, None, None
