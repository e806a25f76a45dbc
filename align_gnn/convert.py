import copy

from torch.nn import Module

from torch_geometric.nn import GATConv

from align_gnn.conv import AlignedGATConv


def _aligned_gat_conv(conv: GATConv, **align_kwargs) -> AlignedGATConv:
    aligned = AlignedGATConv(
        conv.in_channels,
        conv.out_channels,
        heads=conv.heads,
        concat=conv.concat,
        negative_slope=conv.negative_slope,
        dropout=conv.dropout,
        add_self_loops=conv.add_self_loops,
        edge_dim=conv.edge_dim,
        fill_value=conv.fill_value,
        bias=conv.bias is not None,
        residual=conv.res is not None,
        aggr=copy.deepcopy(conv.aggr_module),
        flow=conv.flow,
        decomposed_layers=conv.decomposed_layers,
        **align_kwargs,
    )
    aligned.aggr = conv.aggr
    aligned.to(conv.att_src.device, conv.att_src.dtype)
    missing, unexpected = aligned.load_state_dict(conv.state_dict(),
                                                  strict=False)
    assert not unexpected and all(
        key.startswith('divergence.') for key in missing)
    return aligned.train(conv.training)


def convert(model: Module, **align_kwargs) -> Module:
    r"""Replaces every :class:`~torch_geometric.nn.conv.GATConv` inside
    :obj:`model` by an :class:`~align_gnn.AlignedGATConv` with the same
    configuration, weights, device, dtype and training mode, so that the
    converted model computes the same outputs.

    The replacement happens in place (deep-copy :obj:`model` first to keep
    the original); the model is returned. Only exact :class:`GATConv`
    instances are replaced: subclasses, which may change its behaviour, and
    layers that are already aligned are left as they are.

    Args:
        model (torch.nn.Module): Any module, e.g. a trained GAT.
        **align_kwargs (optional): Keyword arguments of
            :class:`~align_gnn.AlignedGATConv` (:obj:`divergence`,
            :obj:`num_samples`, :obj:`rho`, :obj:`adversary_channels`).
    """
    if type(model) is GATConv:
        return _aligned_gat_conv(model, **align_kwargs)
    for name, child in model.named_children():
        setattr(model, name, convert(child, **align_kwargs))
    return model
