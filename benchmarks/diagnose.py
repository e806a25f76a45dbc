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
skips what is done).

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
    r"""The study's best setting of :obj:`method` (default: its winner)."""
    path = osp.join(folder, 'chosen.json')
    study_choice = study.load_json(path)
    if study_choice is None:
        sys.exit(f'error: {path} not found: run benchmarks/study.py with '
                 f'the same --folder first')
    best = study_choice['best']
    method = method or max(best, key=lambda m: best[m]['val_acc'])
    return method, best[method]['setting']


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
    if args.setting is not None:
        models.append((args.method, args.method, args.setting))
    elif osp.isfile(osp.join(args.folder, 'chosen.json')):
        method, setting = chosen(args.folder, args.method)
        models.append((method, method, setting))
    elif args.method is not None:  # no study: the divergence's defaults
        models.append((args.method, args.method, {}))
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', default='cora')
    parser.add_argument('--root', help='data root')
    parser.add_argument('--folder', default='study',
                        help='the study folder (chosen.json)')
    parser.add_argument('--method', help='divergence (default: the winner)')
    parser.add_argument('--setting', type=json.loads,
                        help="the method's setting as JSON, instead of the "
                        "study's choice (needs --method)")
    parser.add_argument('--seeds', type=int, default=10)
    parser.add_argument('--epochs', type=int, default=1000)
    parser.add_argument('--patience', type=int, default=100)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--device', type=study.device_option,
                        choices=['cpu', 'cuda'], default='cpu',
                        help='where the models train')
    parser.add_argument('--trace-epochs', default=TRACE_EPOCHS,
                        type=lambda text: tuple(map(int, text.split(','))))
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
    args = parser.parse_args(argv)
    args.set = dict(args.set)
    if args.setting is not None and args.method is None:
        parser.error('--setting needs --method')
    if args.attention_only:
        return attention_only(args, argv)
    if args.set:  # parts 1 and 3 are written for the Planetoid GAT
        parser.error('--set needs --attention-only')
    if args.setting is not None:
        method, setting = args.method, args.setting
    else:
        method, setting = chosen(args.folder, args.method)
    try:  # a damaged line: one line naming it, no traceback
        store = study.Store(osp.join(args.folder, 'diagnose.jsonl'))
    except ValueError as err:
        sys.exit(f'error: {err}')
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

    tasks = [('diagnose', 'none', {'variant': 'chosen'}, seed)
             for seed in range(args.seeds)]
    tasks += [('diagnose', f'{method}:{variant}',
               {'variant': variant, **setting}, seed)
              for variant in VARIANTS for seed in range(args.seeds)]
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
