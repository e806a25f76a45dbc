r"""Alignment across heads (:obj:`align_over="heads"` of the aligned
layers): the reading of the alignment paper's own code
(szhang42/alignment_attention), which permutes keys and queries so that one
token's heads form the two samples. Here, for each sampled node :math:`i`,
the :math:`H` queries :math:`\mathbf{q}^1_i, \dots, \mathbf{q}^H_i` and the
:math:`H` keys :math:`\mathbf{k}^1_i, \dots, \mathbf{k}^H_i` are the two
samples, and the loss is the mean over nodes:

.. math::
    \mathcal{L}_{\textrm{align}} = \frac{1}{m} \sum_{i=1}^m
    D\left(\{\mathbf{q}^h_i\}_{h=1}^H, \{\mathbf{k}^h_i\}_{h=1}^H\right).

The divergences of :mod:`align_gnn.divergences` are batched over their
first dimension, which here holds the nodes; their adversaries (built for
one "head") are shared by all nodes: their batch-1 parameters are expanded
to the :math:`m` nodes, so gradients add up over nodes."""
from torch import Tensor
from torch.func import functional_call
from torch.nn import Module

from align_gnn.divergences import HeadwiseMLP


def across_heads_loss(divergence: Module, query: Tensor,
                      key: Tensor) -> Tensor:
    r"""The mean over nodes of :obj:`divergence` between each node's
    queries and keys over heads (0-dim).

    Args:
        divergence (torch.nn.Module): Maps queries :math:`(B, M, C)` and keys
            :math:`(B, N, C)` to :math:`(B,)`; the parameters of its
            :class:`~align_gnn.divergences.HeadwiseMLP` modules have a batch
            dimension of 1.
        query (torch.Tensor): Queries :math:`(m, H, C)`.
        key (torch.Tensor): Keys :math:`(m', H, C)` of the same nodes (with
            different counts, the first :math:`\min(m, m')` of each are
            paired).
    """
    m = min(query.size(0), key.size(0))
    query, key = query[:m], key[:m]
    shared = {}
    for name, module in divergence.named_modules():
        if isinstance(module, HeadwiseMLP):
            for pname, p in module.named_parameters(recurse=False):
                if p.size(0) != 1:
                    raise ValueError(
                        f"across heads, the adversary must be built for one "
                        f"head (parameter {name}.{pname} has shape "
                        f"{tuple(p.shape)})")
                full = f'{name}.{pname}' if name else pname
                shared[full] = p.expand(m, *p.shape[1:])
    if not shared:
        return divergence(query, key).mean()
    return functional_call(divergence, shared, (query, key),
                           strict=False).mean()
