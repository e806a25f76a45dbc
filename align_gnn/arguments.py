r"""The one rule for arguments: a named argument is checked by its kind (a
:class:`Spec`) before it acts, and refused in one line otherwise,

.. code-block:: python

    >>> check('heads', True, Integer(1))
    ValueError: 'heads' must be a positive integer (got True)

A spec returns the value it accepts in plain form (NumPy scalars and 0-dim
PyTorch tensors become Python numbers). :data:`ARGUMENTS` holds the specs of
the argument names that the library's layers, divergences and schedules
share, and :func:`checked` applies such a table to every named argument of a
function or constructor. Nothing here imports from :mod:`align_gnn`."""
import functools
import inspect
import math
from typing import Any, Callable, Dict, Optional

import numpy as np
from torch import Tensor


class Spec:
    r"""A kind of value: :meth:`describe` says what it accepts (it completes
    "must be ..."), :meth:`normalize` returns an accepted value in plain
    form and raises :class:`ValueError` for any other."""
    def describe(self) -> str:
        raise NotImplementedError

    def normalize(self, value: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.describe()!r})'


def _scalar(value: Any) -> Any:
    # A NumPy scalar or 0-dim array or tensor as the Python scalar it holds:
    if isinstance(value, (Tensor, np.ndarray, np.generic)) and value.ndim == 0:
        return value.item()
    return value


class _Range(Spec):
    def __init__(self, low: Optional[float] = None,
                 high: Optional[float] = None, low_open: bool = False,
                 high_open: bool = False):
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open

    def _bounds(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            return (f" in {'(' if self.low_open else '['}{low}, {high}"
                    f"{')' if self.high_open else ']'}")
        if low is not None:
            return f" {'>' if self.low_open else '>='} {low}"
        if high is not None:
            return f" {'<' if self.high_open else '<='} {high}"
        return ''

    def _check_range(self, value):
        low, high = self.low, self.high
        if low is not None and (value <= low if self.low_open else
                                value < low):
            raise ValueError
        if high is not None and (value >= high if self.high_open else
                                 value > high):
            raise ValueError
        return value


class Integer(_Range):
    r"""An integer in a range (:obj:`low` and :obj:`high` included): a
    Python :obj:`int`, a NumPy integer or a 0-dim integer tensor, returned
    as an :obj:`int`; :obj:`bool` is refused."""
    def describe(self) -> str:
        if self.low is not None and self.low == self.high:
            return str(self.low)
        if self.low == 1 and self.high is None:
            return 'a positive integer'
        return 'an integer' + self._bounds()

    def normalize(self, value: Any) -> int:
        value = _scalar(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        return self._check_range(value)


class Number(_Range):
    r"""A finite real number in a range: a Python :obj:`int` or
    :obj:`float`, a NumPy real scalar or a 0-dim real tensor, returned as a
    :obj:`float`; :obj:`bool`, NaN and infinity are refused."""
    def describe(self) -> str:
        if self.low == 0 and self.low_open and self.high is None:
            return 'a positive finite number'
        finite = 'finite ' if self.high is None else ''
        return f'a {finite}number' + self._bounds()

    def normalize(self, value: Any) -> float:
        value = _scalar(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError
        try:
            value = float(value)  # OverflowError: an int beyond floats
        except OverflowError:
            raise ValueError from None
        if not math.isfinite(value):
            raise ValueError
        return self._check_range(value)


class Boolean(Spec):
    r""":obj:`True` or :obj:`False` (a :obj:`bool` or a NumPy
    :obj:`bool_`), returned as a :obj:`bool`."""
    def describe(self) -> str:
        return 'True or False'

    def normalize(self, value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError
        return bool(value)


class Choice(Spec):
    r"""One of the strings :obj:`names` (in any case if
    :obj:`ignore_case`, returned in lower case)."""
    def __init__(self, *names: str, ignore_case: bool = False):
        self.names, self.ignore_case = names, ignore_case

    def describe(self) -> str:
        return 'one of ' + ', '.join(repr(name) for name in self.names)

    def normalize(self, value: Any) -> str:
        if isinstance(value, str) and self.ignore_case:
            value = value.lower()
        if not isinstance(value, str) or value not in self.names:
            raise ValueError
        return value


class Instance(Spec):
    r"""An instance of :obj:`cls`, described as :obj:`text`, returned as
    it is."""
    def __init__(self, cls: type, text: str):
        self.cls, self.text = cls, text

    def describe(self) -> str:
        return self.text

    def normalize(self, value: Any) -> Any:
        if not isinstance(value, self.cls):
            raise ValueError
        return value


class Nothing(Spec):
    r""":obj:`None`."""
    def describe(self) -> str:
        return 'None'

    def normalize(self, value: Any) -> None:
        if value is not None:
            raise ValueError


class Anything(Spec):
    r"""Any value, returned as it is: only for an argument passed on
    unchanged to a library that checks it itself; :obj:`why` says which
    and where (for the reader; the message never shows it)."""
    def __init__(self, why: str):
        self.why = why

    def describe(self) -> str:
        return 'anything'

    def normalize(self, value: Any) -> Any:
        return value


class Either(Spec):
    r"""A value that one of :obj:`specs` accepts (the first that does
    normalizes it); :obj:`None` among them stands for :class:`Nothing`."""
    def __init__(self, *specs: Optional[Spec], text: Optional[str] = None):
        self.specs = [Nothing() if spec is None else spec for spec in specs]
        self.text = text

    def describe(self) -> str:
        if self.text is not None:
            return self.text
        parts = [spec.describe() for spec in self.specs]
        return ', '.join(parts[:-1]) + ' or ' + parts[-1]

    def normalize(self, value: Any) -> Any:
        for spec in self.specs:
            try:
                return spec.normalize(value)
            except ValueError:
                pass
        raise ValueError


def optional(spec: Spec) -> Either:
    r""":obj:`spec` or :obj:`None`."""
    return Either(spec, None)


class SequenceOf(Spec):
    r"""A list or tuple of values that :obj:`item` accepts, with
    :obj:`length` of them (any number from :obj:`min_length` if
    :obj:`None`), returned as a tuple; :obj:`text` describes it."""
    def __init__(self, item: Spec, text: str, length: Optional[int] = None,
                 min_length: int = 0):
        self.item, self.text = item, text
        self.length, self.min_length = length, min_length

    def describe(self) -> str:
        return self.text

    def normalize(self, value: Any) -> tuple:
        if not isinstance(value, (list, tuple)) or len(value) < (
                self.min_length) or self.length not in (None, len(value)):
            raise ValueError
        return tuple(self.item.normalize(item) for item in value)


def shown(value: Any) -> str:
    r""":obj:`value` for a one-line message: its :func:`repr` on one line
    and at most 60 characters, an array or tensor by its shape."""
    if isinstance(value, (Tensor, np.ndarray)) and value.ndim > 0:
        return f'a {type(value).__name__} of shape {tuple(value.shape)}'
    text = ' '.join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + '...'


def check(name: str, value: Any, spec: Spec) -> Any:
    r"""Returns :obj:`value` normalized by :obj:`spec`, or raises
    :class:`ValueError` in one line: :obj:`'name' must be ... (got ...)`."""
    try:
        return spec.normalize(value)
    except ValueError:
        raise ValueError(f"'{name}' must be {spec.describe()} (got "
                         f"{shown(value)})") from None


def check_arguments(owner: str, arguments: Dict[str, Any],
                    specs: Dict[str, Spec]) -> Dict[str, Any]:
    r"""Returns :obj:`arguments` (name to value) normalized by their specs
    in :obj:`specs` (see :func:`check`); the message of a refused value
    starts with :obj:`owner` (e.g. the class), unless empty. An argument
    without spec is a :class:`KeyError` (a mistake of the caller's code)."""
    out = {}
    for name, value in arguments.items():
        try:
            out[name] = check(name, value, specs[name])
        except ValueError as error:
            raise ValueError(f'{owner}: {error}' if owner else
                             str(error)) from None
    return out


def checked(specs: Dict[str, Spec]) -> Callable:
    r"""Decorates a function or a constructor so that every named argument
    (all but :obj:`self`, :obj:`*args` and :obj:`**kwargs`) is checked by
    its spec in :obj:`specs` (:func:`check_arguments`, the owner being the
    class or the function) and the function receives the normalized values.
    A named argument without spec is a :class:`TypeError` at decoration.
    The wrapper's :obj:`specs` are the specs of its arguments."""
    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        names = [p.name for p in signature.parameters.values()
                 if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL,
                                                       p.VAR_KEYWORD)]
        missing = [name for name in names if name not in specs]
        if missing:
            raise TypeError(f"{fn.__qualname__}: no spec for the "
                            f"argument(s) {', '.join(missing)}")
        own = {name: specs[name] for name in names}
        method = 'self' in signature.parameters

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            owner = type(args[0]).__name__ if method else fn.__name__
            bound.arguments.update(check_arguments(
                owner, {name: bound.arguments[name] for name in names}, own))
            return fn(*bound.args, **bound.kwargs)

        wrapper.specs = own
        return wrapper

    return decorate


POSITIVE = Integer(1)
BOOLEAN = Boolean()
FRACTION = Number(0, 1, high_open=True)  # a dropout probability
CHANNELS = Either(POSITIVE, Integer(-1, -1),
                  text='a positive integer or -1 (lazy)')

# The specs of the argument names shared across the library (a name keeps
# its meaning wherever it appears; a function whose argument differs passes
# its own spec, e.g. dict(ARGUMENTS, in_channels=POSITIVE)):
ARGUMENTS: Dict[str, Spec] = {
    # PyG's GATConv, GATv2Conv and TransformerConv (-1: lazy, as in PyG):
    'in_channels': Either(CHANNELS, SequenceOf(CHANNELS, 'a pair', length=2),
                          text='a positive integer, -1 (lazy) or a pair of '
                          'them'),
    'out_channels': POSITIVE,
    'heads': POSITIVE,
    'concat': BOOLEAN,
    'negative_slope': Number(0),
    'dropout': FRACTION,
    'add_self_loops': BOOLEAN,
    'edge_dim': optional(CHANNELS),
    # A reduction's name is checked by PyG's add_self_loops when it acts:
    'fill_value': Either(Number(), Instance(Tensor, 'a tensor'),
                         Instance(str, "a reduction such as 'mean'"), None),
    'bias': BOOLEAN,
    'residual': BOOLEAN,
    'share_weights': BOOLEAN,
    'beta': BOOLEAN,
    'root_weight': BOOLEAN,
    # Alignment (the divergence's and align_over's names are added by
    # align_gnn.divergences and align_gnn.conv, which own them):
    'num_samples': Integer(2),
    'rho': Number(0, 1),
    'adversary_channels': POSITIVE,
    # NormalizedGATConv:
    'att_dst': BOOLEAN,
    'edge_dropout': FRACTION,
    'normalize': BOOLEAN,
    # The divergences and their adversaries:
    'channels': POSITIVE,
    'hidden_channels': POSITIVE,
    'reverse': BOOLEAN,
    'fused': optional(BOOLEAN),
    'blur': Number(0, low_open=True),
    'max_iter': POSITIVE,
    'tol': optional(Number(0)),
    'bandwidths': SequenceOf(Number(0, low_open=True), 'a non-empty list or '
                             'tuple of positive numbers', min_length=1),
    # The schedules (align_gnn.schedule):
    'epoch': Integer(0),
    'weight': Number(0),
    'warmup': Integer(0),
    'lr': Number(0),
}
