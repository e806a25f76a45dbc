r"""Why alignment helps or not: the diagnostics of the study (issue 5) on a
Planetoid data set (with --attention-only, part 2 on any data set and
model), for the divergence and setting the study chose on validation
(<folder>/chosen.json, written by benchmarks/study.py), or the one given by
--method and --setting.

1. Gradients (one seed): at a few epochs, per attention layer, the norm of
   the task loss's gradient and of lambda times the alignment loss's gradient
   on the layer's own attention parameters (projection, a_s, a_t), their
   cosine, the alignment loss, and the squared MMD between queries and keys
   (evaluation mode, the parameter-free measure), for plain GAT and the
   aligned model.
2. Attention: per layer, the mean entropy of a node's attention over its
   neighbours relative to uniform attention (1: uniform), of both models
   trained.
3. Variants on --seeds paired seeds against plain GAT: the chosen setting;
   aligned in the first layer only; in the last layer only; aligning the
   scalar halves of the logits (1'k, 1'q) instead of the vectors; keys and
   queries sampled by edges (the key of each sampled edge's source and the
   query of its target) instead of by nodes.

Writes <folder>/diagnose.md and diagnose.json (atomically); the variant runs
are kept in <folder>/diagnose.jsonl as the study keeps its runs (a rerun
skips what is done). Beside it, <folder>/diagnose.options.json records the
options that change those runs outside their key (method, variant,
setting, seed): --dataset (a named set in lower case), --epochs,
--patience (all but NOT_RECORDED's, which says why); a rerun with another
value of one is refused in one line, as study.py refuses one against its
study.json (a diagnose.jsonl made before the file existed: completed with
the values given, a note says so). Every option acts or is refused
(MODES): --seeds, --workers and --trace-epochs belong to parts 1 and 3,
--set to --attention-only (which keeps no runs: attention.md and
attention.json are made anew), --setting needs --method. Every option, the
aligned model (the study's chosen.json, or --method and --setting:
settings its divergence has), the configuration and the model of every
run, the data set (parts 1 and 3 are written for the two-layer GAT on one
split: Planetoid, graph files, dictionary-lookup) and the folder (its
outputs can be written, diagnose.jsonl is readable, its
diagnose.options.json) are checked before anything is written, as study.py
checks its own: one-line errors, code 2.

    python benchmarks/diagnose.py --dataset cora --folder study/cora
    python benchmarks/diagnose.py --dataset minesweeper --attention-only \
        --folder study/minesweeper/gt --set model=platonov-gt --set hidden=64
"""
import argparse
import json
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector

from torch_geometric import seed_everything

import study  # benchmarks/study.py: also puts the repository on sys.path

from align_gnn import AlignedGATConv, alignment_loss, training  # noqa: E402
from align_gnn.cli import Modes, check_modes, given_options  # noqa: E402
from align_gnn.config import Config, default_hyperparameters  # noqa: E402
from align_gnn.conv import sample_rows  # noqa: E402
from align_gnn.data import select_split  # noqa: E402
from align_gnn.diagnostics import (  # noqa: E402
    attention_check,
    attention_layers,
    key_query_pca,
)
from align_gnn.divergences import resolve_divergence  # noqa: E402
from align_gnn.models import GAT  # noqa: E402
from align_gnn.results import atomic_write  # noqa: E402

VARIANTS = {
    'chosen': 'the chosen setting',
    'first': 'first layer aligned only',
    'last': 'last layer aligned only',
    'logits': 'scalar logit halves aligned',
    'edges': 'keys and queries sampled by edges',
}
TRACE_EPOCHS = (1, 10, 50, 100, 200)
MANIFEST = 'diagnose.options.json'  # beside JOURNAL: study.check_manifest
JOURNAL = 'diagnose.jsonl'  # part 3's runs
#: The options of :func:`make_parser` that diagnose.options.json does not
#: record, and why (see :data:`study.NOT_RECORDED`): every other option
#: changes what a run of diagnose.jsonl computes without being part of its
#: key (stage, method:variant, setting, seed), so a rerun with another
#: value is refused; a new option is recorded unless it is added here.
NOT_RECORDED = {
    'root': 'where the data set is read from, not which (--dataset)',
    'folder': 'the folder itself',
    'workers': 'a run gives the same bits on any number of processes and '
               'threads',
    'device': 'the runs of a folder may come from either device',
    'trace_epochs': "part 1's traces, made anew at every run (not kept in "
                    "diagnose.jsonl)",
    'attention_only': 'its mode keeps no runs (attention.md and '
                      'attention.json are made anew at every run)',
    'set': 'only with --attention-only, which keeps no runs',
    # In each run's key: other values make the runs they lack.
    'method': "in each run's key (its method)",
    'setting': "in each run's key (its setting)",
    'seeds': "in each run's key (its seed)",
}
# Every option acts or is refused (issue 30; as train_gat.py's MODES): the
# options that act in both modes, and those that act only in some, dest ->
# (acts(args), where), refused where they would act on nothing.
EVERY_MODE = ('help', 'dataset', 'root', 'folder', 'method', 'epochs',
              'patience', 'device', 'attention_only')
ONCE = ('not with --attention-only (it sets {}; --attention-only trains '
        'each model once, on seed/split 0, in this process)')
MODES: Modes = {
    'seeds': (lambda args: not args.attention_only,
              ONCE.format("part 3's paired seeds")),
    'workers': (lambda args: not args.attention_only,
                ONCE.format("part 3's processes")),
    'trace_epochs': (lambda args: not args.attention_only,
                     ONCE.format('the epochs part 1 traces')),
    'set': (lambda args: args.attention_only,
            'only with --attention-only (parts 1 and 3 are written for the '
            'two-layer GAT)'),
    'setting': (lambda args: args.method is not None,
                'only with --method (the divergence whose setting it is)'),
}


class LogitAlignedGATConv(AlignedGATConv):
    r""":class:`AlignedGATConv` aligning the two scalar halves of the
    attention logits, :math:`\mathbf{1}^{\top}\mathbf{k}` and
    :math:`\mathbf{1}^{\top}\mathbf{q}` (shape :math:`(N, H, 1)`), instead
    of the vectors; its divergence is built for one channel."""
    def key_query(self, x):
        key, query = super().key_query(x)
        return (key.sum(-1, keepdim=True),
                None if query is None else query.sum(-1, keepdim=True))


class EdgeSampledGATConv(AlignedGATConv):
    r""":class:`AlignedGATConv` sampling keys and queries by edges: a
    uniform sample of edges, the key of each edge's source and the query of
    its target (nodes weighted by their degree)."""
    def _aligned_forward(self, x, edge_index, *args):
        self._edge_index = edge_index
        return super()._aligned_forward(x, edge_index, *args)

    def _sample_key_query(self, x):
        key, query = self.key_query(x)
        index = sample_rows(self._edge_index.size(1), self.num_samples,
                            key.device)
        src, dst = (self._edge_index if index is None else
                    self._edge_index[:, index])
        self._key_sample, self._query_sample = key[src], query[dst]


def variant_model(variant: str, method: str, data,
                  config: Config) -> torch.nn.Module:
    r"""The model of :obj:`method` in :obj:`variant` (see :data:`VARIANTS`)
    or plain GAT (:obj:`method="none"`)."""
    if method == 'none' or variant in ('chosen', 'first', 'last'):
        model = training.make_model(method, data, config)
        if variant in ('first', 'last'):
            off = model.conv2 if variant == 'first' else model.conv1
            off.divergence = None
        return model
    output_heads = default_hyperparameters(
        config.dataset)['output_heads']
    setting = config.alignment(method)
    options = dict(num_samples=setting['align_samples'], rho=setting['rho'])
    if variant == 'logits':
        def layer(in_channels, out_channels, heads=1, **kwargs):
            return LogitAlignedGATConv(
                in_channels, out_channels, heads, divergence=(
                    resolve_divergence(method, heads, 1, setting['rho'],
                                       setting['adversary_channels'])),
                **options, **kwargs)
    elif variant == 'edges':
        def layer(in_channels, out_channels, **kwargs):
            return EdgeSampledGATConv(
                in_channels, out_channels, divergence=method,
                adversary_channels=setting['adversary_channels'], **options,
                **kwargs)
    else:
        raise ValueError(f'unknown variant {variant!r}')
    return GAT(data.num_features, data.num_classes, layer,
               output_heads=output_heads)


def run_variant(task: study.Task, dataset: str, root: str, epochs: int,
                patience: int, base: Optional[Dict] = None,
                device: str = 'cpu') -> Dict:
    r"""A task whose setting names its :obj:`"variant"` (see
    :func:`study.run_task`)."""
    _, label, setting, seed = task
    setting = dict(setting)
    variant = setting.pop('variant')
    method = label.split(':')[0]
    data = study.graph(dataset, root, base)
    config = study.config(method, setting, seed, dataset, epochs, patience,
                          base, device=device)
    seed_everything(seed)
    model = variant_model(variant, method, data, config).to(device)
    return study.compact(training.fit(model, data, method, seed, config))


def trace(data, method: str, setting: Dict, seed: int, dataset: str,
          at: Tuple[int, ...] = TRACE_EPOCHS,
          ) -> Tuple[List[Dict], torch.nn.Module]:
    r"""Trains the model of :obj:`method` full-batch up to the last epoch of
    :obj:`at` (no early stopping) and records, at the epochs :obj:`at`, the
    losses and, per attention layer, the task and weighted alignment
    gradients on its attention parameters and the squared MMD of its keys
    and queries; returns the records and the trained model."""
    epochs = max(at)
    config = study.config(method, setting, seed, dataset, epochs, epochs)
    seed_everything(seed)
    model = training.make_model(method, data, config)
    optimizer = training.make_optimizer(model, config, method)
    align_weight = config.alignment(method)['align_weight']
    mask = data.train_mask
    records = []
    for epoch in range(1, epochs + 1):
        record = None
        if epoch in at:
            mmd = [sum(h['mmd'] for h in layer['heads']) / len(layer['heads'])
                   for layer in key_query_pca(model, data, seed=seed)]
            record = dict(epoch=epoch, mmd=mmd)
        model.train()
        optimizer.zero_grad()
        out = model(data.x, data.edge_index)
        task_loss = F.cross_entropy(out[mask], data.y[mask])
        align_loss = align_weight * alignment_loss(model)
        if record is not None:
            layers = []
            for _, conv in attention_layers(model):
                params = [p for name, p in conv.named_parameters()
                          if name.startswith(('lin', 'att_'))]
                task_grad = torch.autograd.grad(task_loss, params,
                                                retain_graph=True)
                align_grad = [
                    torch.zeros_like(p) if g is None else g
                    for p, g in zip(params, torch.autograd.grad(
                        align_loss, params, retain_graph=True,
                        allow_unused=True))
                ] if align_loss.requires_grad else [
                    torch.zeros_like(p) for p in params]
                task_vec = parameters_to_vector(task_grad)
                align_vec = parameters_to_vector(align_grad)
                cosine = F.cosine_similarity(task_vec, align_vec, dim=0)
                layers.append(dict(task_grad=float(task_vec.norm()),
                                   align_grad=float(align_vec.norm()),
                                   cosine=float(cosine)))
            record.update(task_loss=task_loss.item(),
                          align_loss=align_loss.item(), layers=layers)
            records.append(record)
        (task_loss + align_loss).backward()
        optimizer.step()
    return records, model


def chosen(folder: str, method: Optional[str]) -> Tuple[str, Dict]:
    r"""The study's best setting of :obj:`method` (default: its winner);
    raises :class:`ValueError` naming the option at fault if the folder has
    no such choice."""
    path = osp.join(folder, 'chosen.json')
    study_choice = study.load_json(path)
    if study_choice is None:
        raise ValueError(f"argument --folder: '{path}' not found: run "
                         f"benchmarks/study.py with the same --folder first,"
                         f" or give --method and --setting")
    best = study_choice.get('best') if isinstance(study_choice, dict) \
        else None
    if not isinstance(best, dict) or not best or not all(
            isinstance(choice, dict) and {'setting', 'val_acc'} <= set(choice)
            for choice in best.values()):
        study.fail(f"'{path}' is not a chosen.json of study.py (no 'best' "
                   f"setting per divergence): restore it, or run "
                   f"benchmarks/study.py again")
    if method is not None and method not in best:
        raise ValueError(f"argument --method: the study in '{folder}' chose "
                         f"settings of {', '.join(best)} (chosen.json), not "
                         f"of {method}: give --setting too, or one of them")
    method = method or max(best, key=lambda m: best[m]['val_acc'])
    return method, best[method]['setting']


def aligned(args) -> Optional[Tuple[str, Dict]]:
    r"""The aligned model's divergence and setting: --method with
    --setting, else the study's choice in <folder>/chosen.json (its winner
    unless --method names another), else, with --attention-only, --method
    with its defaults, or none."""
    if args.setting is not None:
        return args.method, args.setting
    if not args.attention_only or osp.isfile(osp.join(args.folder,
                                                      'chosen.json')):
        return chosen(args.folder, args.method)
    if args.method is not None:  # no study: the divergence's defaults
        return args.method, {}
    return None


def gradient_table(traces: Dict[str, List[Dict]]) -> str:
    lines = ['| model | epoch | task loss | λ·align loss | layer | '
             '‖task grad‖ | ‖λ·align grad‖ | cosine | MMD² keys/queries |',
             '| --- ' * 9 + '|']
    for label, records in traces.items():
        for r in records:
            for i, layer in enumerate(r['layers']):
                lines.append(
                    f'| {label} | {r["epoch"]} | {r["task_loss"]:.3f} | '
                    f'{r["align_loss"]:.4f} | {i + 1} | '
                    f'{layer["task_grad"]:.3g} | {layer["align_grad"]:.3g} | '
                    f'{layer["cosine"]:+.2f} | {r["mmd"][i]:.4f} |')
    return '\n'.join(lines) + '\n'


def attention_only(args, argv=None):
    r"""Where attention matters at all: per model, the attention entropy
    relative to uniform per layer and the test score trained and with
    uniform attention, after a run with early stopping (seed and split 0).
    The models: plain, and --method with --setting, else the study's choice
    in <folder>/chosen.json (its winner unless --method names another), else
    --method with its defaults."""
    graph = study.graph(args.dataset, args.root, args.set)
    data = select_split(graph, 0)
    models = [('plain', 'none', {})]
    if args.aligned is not None:
        method, setting = args.aligned
        models.append((method, method, setting))
    on_device = data.to(args.device)  # for the diagnostics
    report = {}
    for label, method, setting in models:
        config = study.config(method, setting, 0, args.dataset, args.epochs,
                              args.patience, args.set, True, args.device)
        seed_everything(0)
        model = training.make_model(method, data, config).to(args.device)
        result = training.fit(model, data, method, 0, config)
        check = attention_check(model, on_device, nodes='test')
        report[label] = dict(
            method=method, setting=setting, epochs=result.epochs,
            uniformity=[layer.entropy for layer in check.layers],
            score=dict(trained=check.score, uniform=check.uniform_score))
        print(f'{label}: {report[label]}', flush=True)
    metric = getattr(graph, 'metric', 'acc')
    score = 'ROC-AUC' if metric == 'roc_auc' else 'accuracy'
    lines = [f'{args.dataset} {json.dumps(args.set)}, `' + shlex.join(
        ['python', 'benchmarks/diagnose.py',
         *(sys.argv[1:] if argv is None else argv)]) + '`', '',
        f'| model | test {score} | with uniform attention | attention '
        f'entropy / uniform, per layer |', '| --- | --- | --- | --- |']
    for label, r in report.items():
        lines.append(f'| {label} | {100 * r["score"]["trained"]:.2f} | '
                     f'{100 * r["score"]["uniform"]:.2f} | '
                     + ', '.join(f'{u:.3f}' for u in r['uniformity'])
                     + ' |')
    text = '\n'.join(lines) + '\n'
    atomic_write(osp.join(args.folder, 'attention.md'),
                 lambda f: f.write(text))
    atomic_write(osp.join(args.folder, 'attention.json'),
                 lambda f: json.dump(dict(dataset=args.dataset, set=args.set,
                                          metric=metric, models=report), f,
                                     indent=2, allow_nan=False))
    print(text)


def setting_option(text: str) -> Dict:
    r"""Parses :obj:`--setting`: a JSON object of alignment settings."""
    try:
        setting = json.loads(text)
    except ValueError:
        setting = None
    if not isinstance(setting, dict):
        raise argparse.ArgumentTypeError(
            f'must be a JSON object of settings, e.g. '
            f'\'{{"align_weight": 0.1}}\' (got {text!r})')
    return setting


def epochs_option(text: str) -> Tuple[int, ...]:
    r"""Parses :obj:`--trace-epochs`: integers >= 1 separated by
    commas."""
    try:
        epochs = tuple(int(word) for word in text.split(','))
    except ValueError:
        epochs = (0, )
    if min(epochs) < 1:
        raise argparse.ArgumentTypeError(
            f'must be integers >= 1 separated by commas (got {text!r})')
    return epochs


def make_parser() -> argparse.ArgumentParser:
    r"""The parser of diagnose.py's options (one-line errors, code 2)."""
    parser = study.ArgumentParser(description=__doc__.split('\n\n')[0])
    study.add_folder_options(parser, 'study', 'the study folder (chosen.json;'
                             ' diagnose.jsonl and diagnose.options.json)')
    parser.add_argument('--method', choices=list(study.USES),
                        help='divergence (default: the winner)')
    parser.add_argument('--setting', type=setting_option,
                        help="the method's setting as JSON, instead of the "
                        "study's choice (needs --method)")
    study.add_run_options(parser, seeds=10)
    parser.add_argument('--device', type=study.device_option,
                        choices=['cpu', 'cuda'], default='cpu',
                        help='where the models train')
    parser.add_argument('--trace-epochs', default=TRACE_EPOCHS,
                        type=epochs_option,
                        help='the epochs at which part 1 records the '
                        'gradients (it trains up to the last)')
    parser.add_argument('--set', type=study.set_option, action='append',
                        default=[], metavar='NAME=VALUE',
                        help='a Config field for every run (as in study.py)')
    parser.add_argument('--attention-only', action='store_true',
                        help='only part 2, for any model and data set: '
                        'plain and the aligned model (--method/--setting, '
                        'else the study\'s choice in <folder>/chosen.json '
                        'if there is one) trained with early '
                        'stopping on seed/split 0, attention entropy and '
                        'the score with uniform attention; writes '
                        '<folder>/attention.md and attention.json')
    return parser


def variant_tasks(method: str, setting: Dict, seeds: int) -> List[study.Task]:
    r"""Part 3's runs: plain GAT and each variant of :obj:`method` on
    :obj:`seeds` paired seeds."""
    tasks = [('diagnose', 'none', {'variant': 'chosen'}, seed)
             for seed in range(seeds)]
    tasks += [('diagnose', f'{method}:{variant}',
               {'variant': variant, **setting}, seed)
              for variant in VARIANTS for seed in range(seeds)]
    return tasks


def validate(args, parser: argparse.ArgumentParser):
    r"""Checks everything diagnose.py is given before anything is written,
    as :func:`study.validate` does: the options, the aligned model (the
    study's chosen.json or --method and --setting: the settings its
    divergence has), the configuration and the model of every run it would
    make, the data set (it is loaded; parts 1 and 3 need the two-layer GAT
    on one split), that its outputs can be written in --folder and that its
    runs file is readable, and last (parts 1 to 3) the recorded options
    against the folder's diagnose.options.json (:func:`study.check_manifest`;
    the manifest to write is kept in :obj:`args.manifest`). Exits with a
    one-line error, code 2; sets :obj:`args.aligned` (see
    :func:`aligned`). Which options act in which mode: :func:`parse_args`."""
    try:
        args.aligned = aligned(args)
    except ValueError as err:
        parser.error(str(err))
    if args.setting is not None:
        known = study.USES[args.method] + tuple(study.VARIANTS)
        unknown = [name for name in args.setting if name not in known]
        if unknown:
            parser.error(f"argument --setting: {args.method} has no setting "
                         f"'{unknown[0]}' (it has {', '.join(known)})")
    if args.attention_only:
        models = [('none', {})] + ([args.aligned] if args.aligned else [])
        runs = [(method, setting, 0, args.epochs, args.patience)
                for method, setting in models]
    else:
        method, setting = args.aligned
        last = max(args.trace_epochs)  # part 1: no early stopping
        runs = [('none', {}, 0, last, last), (method, setting, 0, last, last)]
        runs += [(task[1].split(':')[0],
                  {k: v for k, v in task[2].items() if k != 'variant'},
                  task[3], args.epochs, args.patience)
                 for task in variant_tasks(method, setting, args.seeds)]
    configs = []
    for method, setting, seed, epochs, patience in runs:
        try:
            configs.append(study.config(
                method, setting, seed, args.dataset, epochs, patience,
                args.set, args.attention_only, args.device))
        except (ValueError, TypeError) as err:
            parser.error(f'the runs of {method} '
                         f'{json.dumps({**args.set, **setting})}: {err}')
    try:
        data = select_split(study.graph(args.dataset, args.root, args.set), 0)
    except ValueError as err:  # `DataError` included
        study.fail(str(err))
    if not args.attention_only and default_hyperparameters(
            args.dataset).get('model') != 'gat':
        parser.error(f'argument --dataset: parts 1 and 3 are written for '
                     f'the two-layer GAT on one split (Planetoid, graph '
                     f'files, dictionary-lookup), not for the model of '
                     f'{args.dataset}: give --attention-only')
    built = set()
    for (method, setting, *_), config in zip(runs, configs):
        variants = ['chosen'] if args.attention_only or method == 'none' \
            else list(VARIANTS)
        for variant in variants:  # every model built once, as train_gat.py
            if (method, variant) in built:
                continue
            built.add((method, variant))
            try:
                if args.attention_only:
                    training.make_model(method, data, config)
                else:
                    variant_model(variant, method, data, config)
            except (ValueError, TypeError) as err:
                parser.error(f'the runs of {method} '
                             f'{json.dumps({**args.set, **setting})}: {err}')
    outputs = (('attention.md', 'attention.json') if args.attention_only
               else (JOURNAL, MANIFEST, 'diagnose.md', 'diagnose.json'))
    study.check_folder(parser, args.folder, outputs,
                       None if args.attention_only else JOURNAL)
    args.manifest = None
    if not args.attention_only:
        args.manifest = study.check_manifest(
            parser, args, osp.join(args.folder, MANIFEST),
            osp.join(args.folder, JOURNAL), NOT_RECORDED, write=False)


def parse_args(argv=None, parser: Optional[argparse.ArgumentParser] = None
               ) -> argparse.Namespace:
    r"""diagnose.py's options, each checked where it acts (:data:`MODES`:
    --seeds, --workers and --trace-epochs not with --attention-only, --set
    only with it, --setting only with --method); --set as a
    dictionary."""
    parser = parser or make_parser()
    args = parser.parse_args(argv)
    check_modes(parser, args, MODES, given_options(parser, argv))
    args.set = dict(args.set)
    return args


def main(argv=None):
    parser = make_parser()
    args = parse_args(argv, parser)
    validate(args, parser)
    if args.attention_only:
        return attention_only(args, argv)
    method, setting = args.aligned
    try:  # cuts a last line cut short by a kill
        store = study.Store(osp.join(args.folder, JOURNAL))
    except ValueError as err:
        study.fail(str(err))
    if args.manifest is not None:  # checked by validate()
        study.write_manifest(osp.join(args.folder, MANIFEST), args.manifest)
    data = study.graph(args.dataset, args.root)

    traces, uniformity, uniform_acc = {}, {}, {}
    for label, m in (('GAT', 'none'), (method, method)):
        traces[label], model = trace(data, m, setting if m != 'none' else {},
                                     0, args.dataset, args.trace_epochs)
        check = attention_check(model, data, nodes='test')
        uniformity[label] = [layer.entropy for layer in check.layers]
        uniform_acc[label] = dict(trained=check.score,
                                  uniform=check.uniform_score)
        print(f'{label}: traced; attention entropy / uniform per layer: '
              f'{uniformity[label]}; test accuracy {uniform_acc[label]}',
              flush=True)

    tasks = variant_tasks(method, setting, args.seeds)
    study.run_tasks(tasks, store, args, runner=run_variant)
    variants, rows = study.table(tasks, store)

    text = (f'{args.dataset}: diagnostics of {method} '
            f'{json.dumps(setting)}, `'
            + shlex.join(['python', 'benchmarks/diagnose.py',
                          *(sys.argv[1:] if argv is None else argv)])
            + '`\n\n'
            f'Gradients on the attention parameters (seed 0, no early '
            f'stopping):\n\n{gradient_table(traces)}\n'
            'Attention entropy relative to uniform (1 = uniform), per '
            f'layer, after {max(args.trace_epochs)} epochs: '
            + '; '.join(f'{label} {", ".join(f"{v:.3f}" for v in values)}'
                        for label, values in uniformity.items())
            + '.\n\nTest accuracy of the same models, trained and with '
            'uniform attention (a_s = a_t = 0): '
            + '; '.join(f'{label} {100 * acc["trained"]:.1f} vs '
                        f'{100 * acc["uniform"]:.1f}'
                        for label, acc in uniform_acc.items())
            + '.\n\nVariants ('
            + ', '.join(f'{k}: {v}' for k, v in VARIANTS.items())
            + f'):\n\n{variants}')
    atomic_write(osp.join(args.folder, 'diagnose.md'),
                 lambda f: f.write(text))
    atomic_write(
        osp.join(args.folder, 'diagnose.json'),
        lambda f: json.dump(dict(method=method, setting=setting,
                                 traces=traces, uniformity=uniformity,
                                 uniform_attention=uniform_acc,
                                 variants=rows), f, indent=2))
    print(text)


if __name__ == '__main__':
    main()
