r"""The options of an experiment (the fields of
:class:`~align_gnn.config.Config`, each also a flag of `train_gat.py`):
the kind and range of each (:data:`FIELDS`) and where each acts
(:data:`SCOPES`, :data:`EVERYWHERE`). Two rules of issue 30: every option
is checked by its name, and an option given where it acts on nothing is
refused, never ignored."""
from typing import Any, Callable, Dict, Iterable, Tuple

from align_gnn.arguments import (
    Boolean,
    Choice,
    Instance,
    Integer,
    Number,
    SequenceOf,
    Spec,
    optional,
)
from align_gnn.conv import ALIGN_OVER
from align_gnn.data import FEATURES, is_graph_file
from align_gnn.data.heterophilous import NAMES as HETEROPHILOUS
from align_gnn.divergences import DIVERGENCES
from align_gnn.hetero_models import PLATONOV_MODELS
from align_gnn.models import CONVS
from align_gnn.precision import PRECISIONS
from align_gnn.recipe import LABELS, LOSSES
from align_gnn.robustness import ATTACKS
from align_gnn.selection import SELECTIONS

MODELS = ('gat', *PLATONOV_MODELS)  # gat: the data set's own GAT
DENSE = (*HETEROPHILOUS, 'dictionary-lookup')  # dense features by default

DEVICES = ('auto', 'cpu', 'cuda')
OPTIMIZERS = ('adam', 'rmsprop')
MAX_K = 100  # dictionary-lookup at k = 100: 6.4 M nodes, 320 M edges

_TEXT = Instance(str, 'a string')
_COUNT = optional(Integer(1))
_SHARE = Number(0, 1, high_open=True)
# The kind and plain range of every field of `Config` (checked first, by
# name; see `align_gnn.arguments`); the ranges that depend on other fields
# are checked after.
FIELDS: Dict[str, Spec] = dict(
    dataset=_TEXT,
    methods=SequenceOf(Instance(str, 'a name'), 'a list of method names',
                       min_length=1),
    align_weight=optional(Number(0)), align_samples=optional(Integer(2)),
    rho=optional(Number(0, 1)), runs=Integer(1),
    seed=Integer(0, 2**32 - 1), epochs=_COUNT, patience=_COUNT,
    lr=optional(Number(0, low_open=True)), weight_decay=optional(Number(0)),
    device=Choice(*DEVICES), features=optional(Choice(*FEATURES)),
    batch_size=_COUNT,
    fanout=optional(SequenceOf(Integer(-1), 'a list of integers')),
    conv=Choice(*CONVS), adversary_channels=_COUNT,
    adversary_lr_scale=optional(Number(0, low_open=True)),
    align_warmup=Integer(0), label_attr=_TEXT,
    feature_attr=optional(SequenceOf(_TEXT, 'a list of attribute names',
                                     min_length=1)),
    node_attributes=optional(_TEXT),
    split=SequenceOf(Number(0, 1), 'three fractions (train, val, test)',
                     length=3),
    attack=optional(Choice(*ATTACKS)),
    budgets=SequenceOf(Number(0, 1), 'a list of fractions in [0, 1]',
                       min_length=1),
    attack_epochs=Integer(1), keys_queries=Boolean(),
    model=optional(Choice(*MODELS, ignore_case=True)), hidden=_COUNT,
    heads=_COUNT, layers=_COUNT, dropout=optional(_SHARE),
    k=Integer(3, MAX_K), edge_noise=Number(0), align_over=Choice(*ALIGN_OVER),
    selection=optional(Choice(*SELECTIONS)),
    optimizer=optional(Choice(*OPTIMIZERS)), lr_warmup=optional(Integer(0)),
    loss=optional(Choice(*LOSSES)), labels=optional(Choice(*LABELS)),
    edge_drop=optional(_SHARE), norm_adj=optional(Boolean()),
    att_dst=optional(Boolean()), precision=Choice(*PRECISIONS),
    capture=Boolean(),
)


def _aligned(*methods: str) -> Callable[[Any], bool]:
    return lambda config: any(method in methods for method in config.methods)


_ANY_DIVERGENCE = ', '.join(DIVERGENCES)
# Where each option acts (issue 30): an option given where it would act on
# nothing (`--k` on Cora, `--rho` with mmd) is refused, never ignored (see
# `check_scopes`). Option -> (whether it acts in a config, where it acts).
# The options of EVERYWHERE act in every config; `methods`, `dataset` and
# `labels` (checked in `Config`) choose the scope of the others.
SCOPES: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    'k': (lambda c: c.dataset == 'dictionary-lookup',
          'on dictionary-lookup (--dataset dictionary-lookup)'),
    **{name: (lambda c: is_graph_file(c.dataset),
              'on a graph file (--dataset PATH)')
       for name in ('label_attr', 'feature_attr', 'node_attributes',
                    'split')},
    **{name: (_aligned(*DIVERGENCES),
              f'with a divergence among the methods ({_ANY_DIVERGENCE})')
       for name in ('align_weight', 'align_samples', 'align_warmup',
                    'align_over')},
    'rho': (_aligned('ct'), 'with ct among the methods'),
    **{name: (_aligned('ct', 'adversarial'),
              'with ct or adversarial among the methods (their adversaries)')
       for name in ('adversary_channels', 'adversary_lr_scale')},
    'conv': (lambda c: c.model not in ('platonov-gt', 'platonov-gt-sep') and
             _aligned('none', *DIVERGENCES)(c),
             f'for none or a divergence ({_ANY_DIVERGENCE}) with the gat '
             f'model or a platonov-gat model (the peers and platonov-gt '
             f'bring their own layer)'),
    'fanout': (lambda c: c.batch_size is not None,
               'with batch_size (neighbour sampling, --batch-size)'),
    **{name: (lambda c: c.attack is not None, 'with an attack (--attack)')
       for name in ('budgets', 'attack_epochs')},
    **{name: (lambda c: c.model in PLATONOV_MODELS
              or c.dataset == 'ogbn-arxiv',
              'for a platonov-* model (--model) or on ogbn-arxiv')
       for name in ('hidden', 'heads', 'layers', 'dropout')},
    # Labels are input by default on ogbn-arxiv only (resolved later):
    'capture': (lambda c: c.batch_size is None and (
        c.labels == 'none' or c.labels is None and c.dataset != 'ogbn-arxiv'),
        'for full-batch training without labels as input (no --batch-size, '
        '--labels none)'),
    **{name: (lambda c: c.dataset == 'ogbn-arxiv' and c.model == 'gat',
              'for the ogbn-arxiv GAT (--dataset ogbn-arxiv --model gat)')
       for name in ('edge_drop', 'norm_adj', 'att_dst')},
}
EVERYWHERE = ('runs', 'seed', 'epochs', 'patience', 'lr', 'weight_decay',
              'device', 'features', 'batch_size', 'attack', 'keys_queries',
              'model', 'edge_noise', 'selection', 'optimizer', 'lr_warmup',
              'loss', 'precision')


def check_scopes(config, names: Iterable[str]):
    r"""Raises :class:`ValueError` for the first option among :obj:`names`
    that acts on nothing in :obj:`config`, saying where it acts (see
    :data:`SCOPES`). :class:`Config` checks its fields set to other than
    their default (a default given explicitly cannot be told from none);
    `train_gat.py` also checks every flag given, default or not."""
    for name in names:
        if name in SCOPES and not SCOPES[name][0](config):
            default = type(config).__dataclass_fields__[name].default
            required = ('unset' if default is None else
                        f'left at its default ({default!r})')
            raise ValueError(f"'{name}' must be {required} except "
                             f"{SCOPES[name][1]}: it acts on nothing here "
                             f"(got {getattr(config, name)!r})")
