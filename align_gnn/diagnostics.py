r"""What alignment does to keys and queries: per layer and head, a 2-D
principal component projection of sampled keys and queries of a trained
model and their squared MMD."""
from typing import Dict, List, Tuple

import torch
from torch import Tensor

from torch_geometric.data import Data

from align_gnn.conv import AlignedAttention, sample_rows, select_rows
from align_gnn.convert import ALIGNED
from align_gnn.divergences import MMD


@torch.no_grad()
def key_query_pca(model: torch.nn.Module, data: Data, num_samples: int = 256,
                  seed: int = 0) -> List[Dict]:
    r"""For every attention layer with keys and queries in :obj:`model`
    (:class:`~torch_geometric.nn.conv.GATConv`,
    :class:`~torch_geometric.nn.conv.GATv2Conv`,
    :class:`~torch_geometric.nn.conv.TransformerConv`, aligned or not; see
    :meth:`~align_gnn.AlignedGATConv.key_query`), in order, and each head:
    the keys and queries of
    :obj:`num_samples` nodes drawn uniformly (seeded), as computed in
    evaluation mode on the full graph, projected onto the head's first two
    principal components (of keys and queries together), with the squared
    MMD between queries and keys (the parameter-free divergence, comparable
    across models):
    :obj:`[{"layer": name, "heads": [{"keys": [[x, y], ...], "queries":
    [...], "mmd": float}, ...]}, ...]`."""
    convs = [(name, module) for name, module in model.named_modules()
             if isinstance(module, AlignedAttention) or type(module) in
             ALIGNED]
    inputs = layer_inputs(model, data, convs)

    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    index = sample_rows(data.num_nodes, num_samples, torch.device('cpu'))
    torch.set_rng_state(generator_state)
    mmd = MMD()
    layers = []
    for name, conv in convs:
        x = inputs[name]
        if index is not None:
            x = select_rows(x, index.to(x.device))
        aligned_type = type(conv) if isinstance(
            conv, AlignedAttention) else ALIGNED[type(conv)][0]
        keys, queries = aligned_type.key_query(conv, x)  # (m, H, C)
        keys, queries = keys.transpose(0, 1), queries.transpose(0, 1)
        values = mmd(queries, keys)
        heads = []
        for head in range(conv.heads):
            key_2d, query_2d = _pca_2d(keys[head], queries[head])
            heads.append(dict(keys=key_2d.tolist(), queries=query_2d.tolist(),
                              mmd=float(values[head])))
        layers.append(dict(layer=name, heads=heads))
    return layers


@torch.no_grad()
def layer_arguments(
    model: torch.nn.Module,
    data: Data,
    layers: List[Tuple[str, torch.nn.Module]],
) -> Dict[str, Tuple[Tensor, ...]]:
    r"""The node features and edge indices each of the named :obj:`layers`
    of :obj:`model` receives in one evaluation-mode forward pass on the full
    graph (a model may add self-loops before a layer)."""
    arguments = {}

    def keep(name: str):
        def hook(module, args):
            arguments[name] = args[:2]
        return hook

    hooks = [layer.register_forward_pre_hook(keep(name))
             for name, layer in layers]
    model.eval()
    try:
        model(data.x, data.edge_index)
    finally:
        for hook in hooks:
            hook.remove()
    return arguments


def layer_inputs(
    model: torch.nn.Module,
    data: Data,
    layers: List[Tuple[str, torch.nn.Module]],
) -> Dict[str, Tensor]:
    r"""The node features each of the named :obj:`layers` of :obj:`model`
    receives (see :func:`layer_arguments`)."""
    return {name: args[0]
            for name, args in layer_arguments(model, data, layers).items()}


def _pca_2d(keys: Tensor, queries: Tensor):
    points = torch.cat([keys, queries]).double()
    centered = points - points.mean(dim=0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    components = v[:2].t()
    if components.size(1) < 2:  # one channel: a zero second coordinate
        components = torch.cat([components, components.new_zeros(
            components.size(0), 2 - components.size(1))], dim=1)
    projected = (centered @ components).float()
    return projected[:keys.size(0)], projected[keys.size(0):]
