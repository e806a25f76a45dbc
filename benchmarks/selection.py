r"""Which epoch to keep: our model selection against the GAT paper's, for
plain GAT on a Planetoid data set (issue 16, item 5).

`--selection acc` keeps the epoch of best validation accuracy and stops
--patience epochs after it; `--selection gat-paper` is the rule of the GAT
paper's `execute_cora.py` (training goes on while validation accuracy *or*
loss improves; the epoch at which both were best is kept; see
align_gnn/selection.py). Both rules train plain GAT on the same --seeds
paired seeds (0, 1, ...: the GAT paper reports 100); the table gives test
and validation accuracy, ECE, NLL and epochs, and the paired difference
with t-test and Wilcoxon p-values. Every finished run is appended to
<folder>/runs.jsonl (see benchmarks/study.py): a rerun skips what is done.

    python benchmarks/selection.py --dataset cora --folder study/cora/selection
    python benchmarks/selection.py --dataset citeseer \
        --folder study/citeseer/selection
"""
import argparse
import os.path as osp
import shlex
import sys
import time

import numpy as np

import study  # benchmarks/study.py: also puts the repository on sys.path

from align_gnn.results import (  # noqa: E402
    RunResult,
    atomic_write,
    format_table,
    summarize,
)


RULES = ('acc', 'gat-paper')  # ours first: the reference of the tests


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', default='cora')
    parser.add_argument('--root', help='data root')
    parser.add_argument('--folder', default='study/selection',
                        help='where runs.jsonl and table.md go')
    parser.add_argument('--seeds', type=int, default=100)
    parser.add_argument('--epochs', type=int, default=1000)
    parser.add_argument('--patience', type=int, default=100)
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args(argv)

    tasks = [('selection', 'none', {'selection': rule}, seed)
             for seed in range(args.seeds) for rule in RULES]
    try:  # a damaged line: one line naming it, no traceback
        store = study.Store(osp.join(args.folder, 'runs.jsonl'))
    except ValueError as err:
        sys.exit(f'error: {err}')
    ran = study.run_tasks(tasks, store, args)
    runs = [  # labelled by the rule; the first is the reference
        RunResult(**{**store.result(task), 'method': task[2]['selection']})
        for task in tasks]
    summary = summarize(runs)
    kept = {rule: np.mean([r.best_epoch for r in runs if r.method == rule])
            for rule in RULES}
    command = shlex.join(['python', 'benchmarks/selection.py',
                          *(sys.argv[1:] if argv is None else argv)])
    text = (f'{args.dataset}, plain GAT, {args.seeds} paired seeds, '
            f'{time.strftime("%Y-%m-%d")}, `{command}`\n\n'
            + '```\n' + format_table(summary) + '\n```\n\nepochs trained '
            '(mean): ' + ', '.join(f'{rule} {s["epochs_mean"]:.0f}'
                                   for rule, s in summary.items())
            + '; epoch kept (mean): ' + ', '.join(
                f'{rule} {epoch:.0f}' for rule, epoch in kept.items()) + '\n')
    atomic_write(osp.join(args.folder, 'table.md'), lambda f: f.write(text))
    print(f'{ran} new run(s)\n{text}')


if __name__ == '__main__':
    main()
