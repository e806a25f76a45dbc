import copy
import inspect
from typing import Dict

from torch.nn import Module, Parameter

from torch_geometric.nn import GATConv, GATv2Conv, TransformerConv

from align_gnn.arguments import Instance, check_arguments, shown
from align_gnn.conv import (
    AlignedAttention,
    AlignedGATConv,
    AlignedGATv2Conv,
    AlignedTransformerConv,
)
from align_gnn.conv.aligned_attention import ALIGNMENT_ARGUMENTS, ARGUMENTS


def _gat_args(conv: GATConv) -> Dict:
    return dict(negative_slope=conv.negative_slope,
                add_self_loops=conv.add_self_loops, edge_dim=conv.edge_dim,
                fill_value=conv.fill_value, residual=conv.res is not None)


def _gatv2_args(conv: GATv2Conv) -> Dict:
    return dict(_gat_args(conv), share_weights=conv.share_weights)


def _transformer_args(conv: TransformerConv) -> Dict:
    return dict(beta=conv.beta, edge_dim=conv.edge_dim,
                root_weight=conv.root_weight)


# Exact layer type -> (aligned type, its type-specific arguments):
ALIGNED = {
    GATConv: (AlignedGATConv, _gat_args),
    GATv2Conv: (AlignedGATv2Conv, _gatv2_args),
    TransformerConv: (AlignedTransformerConv, _transformer_args),
}


def _has_bias(conv: Module) -> bool:
    if isinstance(conv, TransformerConv):
        return conv.lin_key.bias is not None
    if isinstance(conv, GATv2Conv):
        return conv.lin_l.bias is not None
    return conv.bias is not None


def _aligned(conv: Module, **align_kwargs) -> AlignedAttention:
    aligned_type, specific_args = ALIGNED[type(conv)]
    aligned = aligned_type(
        conv.in_channels,
        conv.out_channels,
        heads=conv.heads,
        concat=conv.concat,
        dropout=conv.dropout,
        bias=_has_bias(conv),
        aggr=copy.deepcopy(conv.aggr_module),
        flow=conv.flow,
        decomposed_layers=conv.decomposed_layers,
        **specific_args(conv),
        **align_kwargs,
    )
    aligned.aggr = conv.aggr
    param = next(conv.parameters())
    aligned.to(param.device, param.dtype)
    missing, unexpected = aligned.load_state_dict(conv.state_dict(),
                                                  strict=False)
    assert not unexpected and all(
        key.startswith('divergence.') for key in missing)
    _adopt_parameters(aligned, conv)
    return aligned.train(conv.training)


def _adopt_parameters(aligned: Module, conv: Module):
    # The aligned layer takes over the layer's own `Parameter` objects (not
    # copies), so that an optimizer built before `convert` keeps training
    # them (and keeps its state for them, e.g. Adam's moments):
    for name, param in conv.named_parameters():
        *path, leaf = name.split('.')
        owner = aligned.get_submodule('.'.join(path))
        assert isinstance(getattr(owner, leaf), Parameter), name
        setattr(owner, leaf, param)


# The alignment arguments that convert() takes, with the layers' defaults:
DEFAULTS = {name: inspect.signature(AlignedGATConv).parameters[name].default
            for name in ALIGNMENT_ARGUMENTS}
SPECS = dict(ARGUMENTS, model=Instance(Module, 'a torch.nn.Module'))


def _check_held(model: Module, asked: Dict):
    # Aligned layers stay only if they hold what is asked:
    for name, conv in model.named_modules():
        held = getattr(conv, '_alignment_arguments', None)
        if not isinstance(conv, AlignedAttention) or held in (None, asked):
            continue
        differ = [key for key in asked if held[key] != asked[key]]
        where = f"'{name}' ({type(conv).__name__})" if name else (
            type(conv).__name__)
        raise ValueError(
            f"convert: {where} is aligned already with "
            f"{_settings(held, differ)}, but {_settings(asked, differ)} was "
            f"asked; convert the plain model instead (e.g. a copy made "
            f"before the first convert)")


def _settings(values: Dict, names) -> str:
    return ', '.join(f'{name}={shown(values[name])}' for name in names)


def convert(model: Module, **align_kwargs) -> Module:
    r"""Replaces every :class:`~torch_geometric.nn.conv.GATConv`,
    :class:`~torch_geometric.nn.conv.GATv2Conv` and
    :class:`~torch_geometric.nn.conv.TransformerConv` inside :obj:`model` by
    its aligned counterpart (:class:`~align_gnn.AlignedGATConv`,
    :class:`~align_gnn.AlignedGATv2Conv`,
    :class:`~align_gnn.AlignedTransformerConv`) with the same
    configuration, weights, device, dtype and training mode, so that the
    converted model computes the same outputs.

    The replacement happens in place (deep-copy :obj:`model` first to keep
    the original); the model is returned. The aligned layers adopt the
    replaced layers' :class:`~torch.nn.Parameter` objects themselves, so an
    optimizer built before :func:`convert` keeps updating the model. The
    adversaries (CT's critic and navigator, the discriminator) are new
    parameters that such an optimizer does not hold: add them, e.g.
    :obj:`optimizer.add_param_group(dict(params=adversary_parameters(model)))`
    (see :func:`~align_gnn.adversary_parameters`), or build the optimizer
    after converting. Only exact instances of the three types are replaced:
    subclasses, which may change their behaviour, are left as they are.
    Aligned layers stay as they are if they hold the alignment arguments
    asked (converting twice the same way changes nothing).

    Raises :class:`ValueError` in one line, before anything is replaced,
    for a model without a layer to align, an aligned layer that holds other
    alignment arguments than those asked (convert the plain model instead),
    and a refused value (:class:`TypeError` for another keyword).

    Args:
        model (torch.nn.Module): Any module, e.g. a trained GAT.
        **align_kwargs (optional): Keyword arguments of the aligned layers
            (:obj:`divergence`, :obj:`num_samples`, :obj:`rho`,
            :obj:`adversary_channels`, :obj:`align_over`), with the
            layers' defaults.
    """
    unknown = [name for name in align_kwargs if name not in DEFAULTS]
    if unknown:
        raise TypeError(f"convert() got an unexpected keyword argument "
                        f"{unknown[0]!r} (it takes {', '.join(DEFAULTS)})")
    asked = check_arguments('convert', {'model': model, **DEFAULTS,
                                        **align_kwargs}, SPECS)
    del asked['model']
    if not any(type(m) in ALIGNED or isinstance(m, AlignedAttention)
               for m in model.modules()):
        raise ValueError(
            f"convert: {type(model).__name__} holds no attention layer to "
            f"align (it converts GATConv, GATv2Conv and TransformerConv, "
            f"not their subclasses)")
    _check_held(model, asked)
    return _convert(model, asked)


def _convert(model: Module, align_kwargs: Dict) -> Module:
    if type(model) in ALIGNED:
        return _aligned(model, **align_kwargs)
    for name, child in model.named_children():
        setattr(model, name, _convert(child, align_kwargs))
    return model
