r"""The README's snippet ("Use it in your model"), run as written from
scratch on Cora: CT-aligned GAT against the same code with
``divergence=None`` (plain GAT) on the same seeds, test accuracy of the
model after the last epoch, paired t-test.

    python benchmarks/snippet_from_scratch.py --root datasets --epochs 50,200 --runs 5

The snippet is read from README.md and executed as it stands (with
:obj:`dataset`, :obj:`data` and :obj:`epochs` defined, as a reader's code
would define them), so the table measures exactly the code the README
shows. :obj:`--warmup`, :obj:`--adversary-lr-scale` and
:obj:`--align-weight` change the snippet's text for comparisons; the table
then says so.
"""
import argparse
import os
import os.path as osp
import re
import time
import warnings

import torch

import torch_geometric.transforms as T
from torch_geometric.datasets import Planetoid

from align_gnn.reproducibility import cpu_model
from align_gnn.results import paired_test

README = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                  'README.md')
WARMUP = re.compile(r'warmup=\d+')
ADVERSARY_LR = re.compile(r'lr=([\d.]+) \* 0\.005')
WEIGHT = re.compile(r'alignment_weight\(epoch, ([\d.]+),')


def readme_snippet(path: str = README) -> str:
    r"""The first Python block of the README's "Use it in your model"."""
    text = open(path, encoding='utf-8').read()
    section = text[text.index('## Use it in your model'):]
    return section.split('```python\n', 1)[1].split('```', 1)[0]


def variant(snippet: str, divergence: str, warmup=None,
            adversary_lr_scale=None, align_weight=None) -> str:
    r"""The snippet with another divergence (:obj:`"None"`: plain GAT),
    warm-up, adversary learning-rate scale or alignment weight."""
    assert "divergence='ct'" in snippet
    snippet = snippet.replace("divergence='ct'", f'divergence={divergence}')
    if warmup is not None:
        assert WARMUP.search(snippet)
        snippet = WARMUP.sub(f'warmup={warmup}', snippet)
    if adversary_lr_scale is not None:
        assert ADVERSARY_LR.search(snippet)
        snippet = ADVERSARY_LR.sub(f'lr={adversary_lr_scale} * 0.005',
                                   snippet)
    if align_weight is not None:
        assert WEIGHT.search(snippet)
        snippet = WEIGHT.sub(f'alignment_weight(epoch, {align_weight},',
                             snippet)
    return snippet


def run_snippet(snippet: str, dataset, epochs: int, seed: int) -> float:
    r"""Executes :obj:`snippet` from seed :obj:`seed` for :obj:`epochs`
    epochs; the test accuracy of the model it leaves."""
    torch.manual_seed(seed)
    scope = dict(dataset=dataset, data=dataset[0], epochs=epochs)
    exec(compile(snippet, 'README.md', 'exec'), scope)
    model, data = scope['model'], scope['data']
    model.eval()
    with torch.no_grad():
        pred = scope['forward'](data.x, data.edge_index).argmax(dim=-1)
    mask = data.test_mask
    return float((pred[mask] == data.y[mask]).float().mean())


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--root', default=os.environ.get('ALIGN_GNN_DATA',
                                                         'datasets'),
                        help='data root holding Cora/raw/')
    parser.add_argument('--epochs', default='50,200',
                        help='epoch counts, comma-separated')
    parser.add_argument('--runs', type=int, default=5,
                        help='seeds seed, seed+1, ...')
    parser.add_argument('--seed', type=int, default=0, help='first seed')
    parser.add_argument('--warmup', type=int,
                        help="replace the snippet's warm-up (epochs)")
    parser.add_argument('--adversary-lr-scale', type=float,
                        help="replace the snippet's adversary learning-rate "
                        'scale')
    parser.add_argument('--align-weight', type=float,
                        help="replace the snippet's alignment weight")
    args = parser.parse_args(argv)

    dataset = Planetoid(args.root, 'Cora', transform=T.NormalizeFeatures())
    snippet = readme_snippet()
    changed = {name: getattr(args, name) for name in (
        'warmup', 'adversary_lr_scale', 'align_weight')
        if getattr(args, name) is not None}
    methods = {
        'GAT (divergence=None)': variant(snippet, 'None'),
        'CT (the snippet)': variant(snippet, "'ct'", args.warmup,
                                    args.adversary_lr_scale,
                                    args.align_weight),
    }
    seeds = list(range(args.seed, args.seed + args.runs))
    print(f'README snippet from scratch on Cora, seeds {seeds[0]}-'
          f'{seeds[-1]}, test accuracy (%) after the last epoch; '
          f'{cpu_model()}, {torch.get_num_threads()} thread(s), '
          f'{time.strftime("%Y-%m-%d")}'
          + (f'; snippet changed: {changed}' if changed else ''))
    print()
    print('| epochs | method | per seed | mean ± std | Δ vs GAT | t-test p |')
    print('| --- | --- | --- | --- | --- | --- |')
    for epochs in [int(e) for e in args.epochs.split(',')]:
        accs = {name: [] for name in methods}
        for seed in seeds:  # methods interleaved within each seed
            for name, code in methods.items():
                with warnings.catch_warnings():
                    warnings.simplefilter('error')  # the snippet is clean
                    accs[name].append(100 * run_snippet(code, dataset,
                                                        epochs, seed))
        base = accs['GAT (divergence=None)']
        for name, values in accs.items():
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) /
                   max(len(values) - 1, 1)) ** 0.5
            cells = ' / '.join(f'{v:.1f}' for v in values)
            delta, p, _ = paired_test(values, base)
            diff = '' if values is base else f'{delta:+.2f}'
            pval = '' if values is base or p is None else f'{p:.2f}'
            print(f'| {epochs} | {name} | {cells} | {mean:.2f} ± {std:.2f} '
                  f'| {diff} | {pval} |', flush=True)


if __name__ == '__main__':
    main()
