r"""Every named argument acts or is refused (issue 30): the checker
(:mod:`align_gnn.arguments`), a walk generated from the code over every
public layer, divergence and schedule (each argument has a spec; the bad
values derived from it are refused in one line naming it; NumPy and tensor
scalars give what the plain value gives), and :func:`align_gnn.convert`
on models it cannot convert or has converted already."""
import copy
import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch

from torch_geometric.nn import GAT, GATConv, TransformerConv

import align_gnn
from align_gnn import AlignedGATConv, NormalizedGATConv, convert
from align_gnn.arguments import (
    ARGUMENTS,
    Boolean,
    Choice,
    Either,
    Instance,
    Integer,
    Number,
    SequenceOf,
    check,
    check_arguments,
    checked,
    shown,
)
from align_gnn.config import Config
from align_gnn.conv import aligned_attention
from align_gnn.divergences import resolve_divergence
from align_gnn.options import EVERYWHERE, FIELDS
from align_gnn.schedule import alignment_weight, learning_rate

# Public modules, found from the packages' __all__, and the functions:
CLASSES = sorted({
    obj for package in (align_gnn, align_gnn.conv, align_gnn.divergences)
    for obj in (getattr(package, name) for name in package.__all__)
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module)
}, key=lambda cls: cls.__name__)
FUNCTIONS = [alignment_weight, learning_rate, resolve_divergence]
# Values of the arguments without default (a new one needs a line here):
REQUIRED = dict(in_channels=8, out_channels=4, heads=2, channels=4,
                hidden_channels=8, divergence='ct', epoch=3, weight=0.1,
                lr=0.01)


def named(fn) -> list:
    fn = fn.__init__ if isinstance(fn, type) else fn
    return [p for p in inspect.signature(fn).parameters.values()
            if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL,
                                                  p.VAR_KEYWORD)]


def specs(fn) -> dict:
    return getattr(fn.__init__ if isinstance(fn, type) else fn, 'specs', {})


def base(fn) -> dict:
    return {p.name: REQUIRED[p.name] if p.default is p.empty else p.default
            for p in named(fn)}


def owner(fn) -> str:
    return fn.__name__


CASES = [pytest.param(fn, p.name, id=f'{fn.__name__}-{p.name}')
         for fn in CLASSES + FUNCTIONS for p in named(fn)]


def refused(spec, value) -> bool:
    try:
        spec.normalize(value)
    except ValueError:
        return True
    return False


def bad_values(spec) -> list:
    r"""Values that :obj:`spec` must refuse, derived from its kind: the
    wrong type (a string, :obj:`True` for numbers, :obj:`1.5` for
    integers, NaN and inf), and just out of its range."""
    if isinstance(spec, Either):  # what no branch accepts
        return [value for branch in spec.specs for value in bad_values(branch)
                if all(refused(other, value) for other in spec.specs)]
    if isinstance(spec, Integer):
        out = ['8', True, 1.5, None, torch.tensor(8.0), np.float64(8.0),
               torch.tensor([8, 8])]
        if spec.low is not None:
            out.append(spec.low - 1)
        if spec.high is not None:
            out.append(spec.high + 1)
        return out
    if isinstance(spec, Number):
        out = ['0.5', True, None, math.nan, math.inf, -math.inf,
               torch.tensor(True), np.float64('nan'), torch.tensor([0.5])]
        if spec.low is not None:
            out.append(spec.low if spec.low_open else
                       math.nextafter(spec.low, -math.inf))
        if spec.high is not None:
            out.append(spec.high if spec.high_open else
                       math.nextafter(spec.high, math.inf))
        return out
    if isinstance(spec, Boolean):
        return ['True', 1, 0, None, torch.tensor(True)]
    if isinstance(spec, Choice):
        return ['no such name', 1, True, None]
    if isinstance(spec, Instance):
        return [object()]
    if isinstance(spec, SequenceOf):
        good = plain(spec.item)
        out = ['ab', {good}] + ([(good, ) * (spec.length + 1)]
                                if spec.length else [])
        out += [(bad, ) * (spec.length or 1) for bad in bad_values(spec.item)]
        return out + ([()] if spec.min_length else [])
    return []  # None alone: the other branches say what is wrong


def plain(spec):
    r"""A plain value that :obj:`spec` accepts."""
    if isinstance(spec, Either):
        return plain(spec.specs[0])
    if isinstance(spec, Integer):
        return 1 if spec.low is None else spec.low
    if isinstance(spec, Number):
        return 1.0 if spec.low is None else float(spec.low + spec.low_open)
    if isinstance(spec, Boolean):
        return True
    if isinstance(spec, Choice):
        return spec.names[0]
    if isinstance(spec, SequenceOf):
        return (plain(spec.item), ) * max(spec.length or 1, spec.min_length)
    return None


def other_kinds(value, spec) -> list:
    r"""The same value as NumPy scalars, 0-dim tensors, a list, in upper
    case where :obj:`spec` ignores the case."""
    if isinstance(value, bool):
        return [np.bool_(value)]
    if isinstance(value, int):
        return [np.int64(value), np.int32(value), torch.tensor(value)]
    if isinstance(value, float):
        return [np.float64(value), torch.tensor(value, dtype=torch.float64)
                ] + ([int(value)] if value.is_integer() else [])
    if isinstance(value, tuple):
        return [list(value), tuple(np.float64(v) for v in value)]
    if isinstance(value, str) and value.upper() != value:
        upper = value.upper()
        return [upper] if not refused(spec, upper) and spec.normalize(
            upper) == value else []
    return []


def build(fn, arguments):
    torch.manual_seed(0)
    return fn(**arguments)


def assert_same(a, b):
    if not isinstance(a, torch.nn.Module):
        assert type(a) is type(b) and a == b
        return
    assert type(a) is type(b) and repr(a) == repr(b)
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[key], state_b[key]) for key in state_a)

    def plain_attributes(module):
        return {key: (type(value), value) for key, value in vars(module).items()
                if isinstance(value, (bool, int, float, str, tuple))}

    for part_a, part_b in zip(a.modules(), b.modules()):
        assert plain_attributes(part_a) == plain_attributes(part_b)


def test_the_walk_finds_the_public_layers_and_divergences():
    names = {cls.__name__ for cls in CLASSES}
    assert {'AlignedGATConv', 'AlignedGATv2Conv', 'AlignedTransformerConv',
            'NormalizedGATConv', 'ConditionalTransport',
            'AdversarialDivergence', 'SinkhornDivergence', 'MMD',
            'HeadwiseMLP'} <= names
    assert len(CASES) > 60


@pytest.mark.parametrize('fn', CLASSES + FUNCTIONS,
                         ids=lambda fn: fn.__name__)
def test_every_argument_has_a_spec(fn):
    without = [p.name for p in named(fn) if p.name not in specs(fn)]
    assert not without, (f'{fn.__name__}: no spec for {without}; decorate '
                         f'it with @checked(ARGUMENTS) and give each a spec')


@pytest.mark.parametrize('fn, name', CASES)
def test_bad_values_are_refused_in_one_line(fn, name):
    spec = specs(fn)[name]
    values = bad_values(spec)
    assert values, f'no bad value derived for {name}'
    for value in values:
        with pytest.raises(ValueError, match=rf"^{owner(fn)}: '{name}' must "
                           rf"be .* \(got .*\)$") as info:
            fn(**dict(base(fn), **{name: value}))
        assert '\n' not in str(info.value)


@pytest.mark.parametrize('fn, name', CASES)
def test_other_kinds_of_a_value_give_the_same(fn, name):
    arguments = base(fn)
    value = arguments[name]
    if value is None:  # an optional argument: a plain value it accepts
        value = arguments[name] = plain(specs(fn)[name])
    expected = build(fn, arguments)
    for other in other_kinds(value, specs(fn)[name]):
        assert_same(build(fn, dict(arguments, **{name: other})), expected)


# The ranges of issue 30, at their edges (accepted, refused):
RANGES = {
    'heads': ([1], [0]),
    'out_channels': ([1], [0]),
    'in_channels': ([1, -1, (3, -1), [2, 5]], [0, -2, (3, 0), (1, 2, 3)]),
    'dropout': ([0, 0.999], [1, -1e-9]),
    'edge_dropout': ([0, 0.5], [1.0]),
    'negative_slope': ([0, 10], [-1e-9, math.inf]),
    'num_samples': ([2], [1]),
    'rho': ([0, 1], [-1e-9, 1 + 1e-9]),
    'adversary_channels': ([1], [0]),
    'edge_dim': ([None, 1, -1], [0, -2]),
    'divergence': (['ct', 'MMD', None, torch.nn.Identity()], ['foo', 1]),
    'align_over': (['nodes', 'heads'], ['tokens', 'Nodes']),
    'fill_value': (['mean', 0.5, torch.zeros(3), None], [True, [1.0]]),
}


@pytest.mark.parametrize('name', RANGES)
def test_layer_ranges(name):
    spec = aligned_attention.ARGUMENTS[name]
    accepted, refused = RANGES[name]
    for value in accepted:
        check(name, value, spec)
    for value in refused:
        with pytest.raises(ValueError, match=f"'{name}' must be"):
            check(name, value, spec)


def test_schedules_refuse_negative_and_non_finite():
    assert alignment_weight(np.int64(2), np.float32(0.5), torch.tensor(4)) \
        == 0.25
    assert learning_rate(1, 0.01) == 0.01
    for kwargs, match in [
        (dict(epoch=-1), "^alignment_weight: 'epoch' must be an integer >= 0"),
        (dict(warmup=-5), "'warmup' must be an integer >= 0 .got -5."),
        (dict(weight=-0.1), "'weight' must be a finite number >= 0"),
        (dict(weight=math.nan), r"'weight' .* \(got nan\)"),
        (dict(weight=True), r"'weight' .* \(got True\)"),
        (dict(epoch=2.0), r"'epoch' .* \(got 2.0\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            alignment_weight(**dict(dict(epoch=1, weight=0.1), **kwargs))
    with pytest.raises(ValueError, match="'epoch' must be a positive int"):
        learning_rate(0, 0.01)


def test_the_checker():
    assert check('heads', np.int64(3), Integer(1)) == 3
    assert type(check('heads', torch.tensor(3), Integer(1))) is int
    assert type(check('rho', np.float32(0.5), Number(0, 1))) is float
    assert check('x', 2, Number()) == 2.0
    assert check('flag', np.bool_(False), Boolean()) is False
    assert check('name', 'CT', Choice('ct', ignore_case=True)) == 'ct'
    assert check('pair', [3, -1], ARGUMENTS['in_channels']) == (3, -1)
    assert check('big', 10**400, Integer(1)) == 10**400
    for spec, value, message in [
        (Integer(1), True, r"'n' must be a positive integer \(got True\)$"),
        (Integer(0), 1.5, r"'n' must be an integer >= 0 \(got 1.5\)$"),
        (Integer(2, 4), 5, r"'n' must be an integer in \[2, 4\] \(got 5\)"),
        (Number(0, low_open=True), 0, "'n' must be a positive finite number"),
        (Number(0, 1, high_open=True), 1, r"'n' must be a number in \[0, 1\)"),
        (Number(), 10**400, "'n' must be a finite number .got 1000"),
        (Boolean(), 'yes', "'n' must be True or False .got 'yes'."),
        (Choice('a', 'b'), 'A', "'n' must be one of 'a', 'b' .got 'A'."),
        (Either(Integer(1), None), 0, "'n' must be a positive integer or None"),
        (Integer(1), torch.ones(100, 100),
         r"'n' must be .* \(got a Tensor of shape \(100, 100\)\)$"),
    ]:
        with pytest.raises(ValueError, match=message):
            check('n', value, spec)
    assert len(shown('x' * 1000)) == 60
    assert shown(np.zeros((2, 3))) == 'a ndarray of shape (2, 3)'

    specs_ = dict(a=Integer(1), b=Boolean())
    assert check_arguments('f', dict(a=np.int8(2), b=True), specs_) == dict(
        a=2, b=True)
    with pytest.raises(ValueError, match="^f: 'a' must be"):
        check_arguments('f', dict(a=0), specs_)
    with pytest.raises(ValueError, match="^'a' must be"):
        check_arguments('', dict(a=0), specs_)
    with pytest.raises(KeyError):
        check_arguments('f', dict(c=1), specs_)

    @checked(specs_)
    def f(a, b=False, **kwargs):
        return a, b, kwargs

    assert f(np.int64(2), c=object)[:2] == (2, False)
    assert f.specs == specs_
    with pytest.raises(ValueError, match="^f: 'b' must be True or False"):
        f(1, b=1)
    with pytest.raises(TypeError, match="no spec for the argument.s. c"):
        checked(specs_)(lambda a, c: None)


# convert() ------------------------------------------------------------------

class Plain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = GATConv(8, 4, heads=2)
        self.conv2 = TransformerConv(8, 3)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


def test_convert_refuses_a_model_without_attention():
    for model in [torch.nn.Linear(3, 3),
                  torch.nn.Sequential(torch.nn.ReLU()),
                  torch.nn.Sequential(type('MyGAT', (GATConv, ), {})(3, 4))]:
        with pytest.raises(ValueError, match=(
                r"^convert: \w+ holds no attention layer to align \(it "
                r"converts GATConv, GATv2Conv and TransformerConv, not their "
                r"subclasses\)$")):
            convert(model)
    with pytest.raises(ValueError, match="^convert: 'model' must be a torch"):
        convert('model')


def test_convert_twice_the_same_way_changes_nothing():
    model = convert(Plain(), divergence='mmd', num_samples=32, rho=0.25)
    layers = list(model.children())
    params = list(model.parameters())
    again = convert(model, divergence='MMD', num_samples=np.int64(32),
                    rho=torch.tensor(0.25))
    assert again is model and list(model.children()) == layers
    assert all(a is b for a, b in zip(model.parameters(), params))
    # Layers built aligned count as held too (defaults: as convert's):
    conv = AlignedGATConv(8, 4)
    assert convert(conv) is conv
    gat = GAT(8, 16, 2, 3, heads=2)
    convert(gat)
    convert(gat)


@pytest.mark.parametrize('kwargs, held, asked', [
    (dict(), "divergence='mmd', num_samples=32, rho=0.25",
     "divergence='ct', num_samples=256, rho=0.5"),
    (dict(divergence='mmd', num_samples=32, rho=0.3), 'rho=0.25', 'rho=0.3'),
    (dict(divergence='mmd', num_samples=32, rho=0.25, adversary_channels=8),
     'adversary_channels=32', 'adversary_channels=8'),
    (dict(divergence=None, num_samples=32, rho=0.25), "divergence='mmd'",
     'divergence=None'),
])
def test_convert_refuses_other_alignment_arguments(kwargs, held, asked):
    model = Plain()
    model.conv2 = convert(model.conv2, divergence='mmd', num_samples=32,
                          rho=0.25)
    conv2 = model.conv2
    with pytest.raises(ValueError, match=(
            rf"^convert: 'conv2' \(AlignedTransformerConv\) is aligned "
            rf"already with {held}, but {asked} was asked; convert the plain "
            rf"model instead \(e.g. a copy made before the first convert\)$")):
        convert(model, **kwargs)
    # Nothing was replaced:
    assert type(model.conv1) is GATConv and model.conv2 is conv2


def test_convert_refuses_before_replacing_anything():
    model = Plain()
    original = copy.deepcopy(model)
    with pytest.raises(ValueError, match="^convert: 'rho' must be a number"):
        convert(model, rho=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'heads'"):
        convert(model, heads=2)
    assert type(model.conv1) is GATConv and type(model.conv2) is \
        TransformerConv
    # A layer built aligned with other settings, e.g. NormalizedGATConv's
    # default divergence=None:
    with pytest.raises(ValueError, match=r"^convert: NormalizedGATConv is "
                       r"aligned already with divergence=None, but "):
        convert(NormalizedGATConv(8, 4))
    convert(original, divergence='ct')  # the plain copy converts


# Config: every field checked by kind and range, by its name (FIELDS).
CONFIG_FIELDS = [field.name for field in dataclasses.fields(Config)]


def test_every_config_field_has_a_spec():
    assert set(FIELDS) == set(CONFIG_FIELDS)


@pytest.mark.parametrize('name', CONFIG_FIELDS)
def test_config_refuses_bad_values_in_one_line(name):
    values = bad_values(FIELDS[name])
    assert values, name
    for value in values:
        with pytest.raises(ValueError) as info:
            Config(**{name: value})
        message = str(info.value)
        assert message.startswith(f"'{name}' must be "), (value, message)
        assert '\n' not in message


@pytest.mark.parametrize('name', [name for name in EVERYWHERE if isinstance(
    plain(FIELDS[name]), (int, float)) and not isinstance(
        plain(FIELDS[name]), bool)])
def test_config_takes_other_kinds_of_numbers(name):
    value = plain(FIELDS[name])
    value = 3 if name == 'runs' else value
    expected = dataclasses.asdict(Config(**{name: value}))
    for other in other_kinds(value, FIELDS[name]):
        assert dataclasses.asdict(Config(**{name: other})) == expected


@pytest.mark.parametrize('cls', [align_gnn.AlignedGATConv,
                                 align_gnn.AlignedGATv2Conv,
                                 align_gnn.AlignedTransformerConv,
                                 NormalizedGATConv])
def test_features_of_another_dtype(cls):
    # Every aligned layer: integer, boolean or double features are one
    # line naming 'x' (not a matrix-product error from deep in torch);
    # under autocast any floating type passes.
    layer = cls(4, 2, heads=2)
    edge_index = torch.tensor([[0, 1], [1, 0]])
    for dtype, says in ((torch.long, 'floating-point'),
                        (torch.bool, 'floating-point'),
                        (torch.float64, "parameters' dtype torch.float32")):
        with pytest.raises(ValueError) as info:
            layer(torch.ones(2, 4, dtype=dtype), edge_index)
        assert "expected 'x'" in str(info.value) and says in str(info.value)
        assert '\n' not in str(info.value)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        layer(torch.ones(2, 4, dtype=torch.bfloat16), edge_index)
    layer.double()(torch.ones(2, 4, dtype=torch.float64), edge_index)
