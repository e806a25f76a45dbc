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
Every option, the configuration of every run, the data set and the folder
(runs.jsonl and table.md can be written, runs.jsonl is readable) are
checked before anything is written: one-line errors, code 2 (a damaged
file or missing data: 1).

    python benchmarks/selection.py --dataset cora --folder study/cora/selection
    python benchmarks/selection.py --dataset citeseer \
        --folder study/citeseer/selection
"""
import argparse
import json
import os.path as osp
import shlex
import sys
import time

import numpy as np

import study  # benchmarks/study.py: also puts the repository on sys.path

from align_gnn.config import Config  # noqa: E402
from align_gnn.results import (  # noqa: E402
    RunResult,
    atomic_write,
    check_writable,
    format_table,
    summarize,
)


RULES = ('acc', 'gat-paper')  # ours first: the reference of the tests


def make_parser() -> argparse.ArgumentParser:
    r"""The parser of selection.py's options (one-line errors, code 2)."""
    parser = study.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', default='cora')
    parser.add_argument('--root', help='data root')
    parser.add_argument('--folder', default='study/selection',
                        help='where runs.jsonl and table.md go')
    parser.add_argument('--seeds', type=study.positive_int, default=100)
    parser.add_argument('--epochs', type=study.positive_int, default=1000)
    parser.add_argument('--patience', type=study.positive_int, default=100)
    parser.add_argument('--workers', type=study.positive_int, default=2)
    return parser


def validate(args, parser: argparse.ArgumentParser, tasks):
    r"""Checks everything selection.py is given before anything is
    written, as :func:`study.validate` does: the configuration of every
    run, the data set (it is loaded), that runs.jsonl and table.md can be
    written in --folder and that runs.jsonl is readable; exits with a
    one-line error (code 2; a damaged file or missing data: code 1)."""
    try:
        Config(args.dataset)
    except ValueError as err:
        parser.error(f'argument --dataset: {err}')
    for _, method, setting, seed in tasks:
        try:
            study.config(method, setting, seed, args.dataset, args.epochs,
                         args.patience)
        except (ValueError, TypeError) as err:
            parser.error(f'the runs of {method} {json.dumps(setting)}: {err}')
    try:
        study.graph(args.dataset, args.root)
    except ValueError as err:  # `DataError` included
        sys.exit(f'error: {err}')
    for name in ('runs.jsonl', 'table.md'):
        try:
            check_writable(osp.join(args.folder, name))
        except OSError as err:
            parser.error(f"argument --folder: cannot write "
                         f"'{osp.join(args.folder, name)}' ({err}); choose "
                         f"a writable folder")
    try:  # a damaged line: one line naming it, no traceback
        study.Store(osp.join(args.folder, 'runs.jsonl'), repair=False)
    except ValueError as err:
        sys.exit(f'error: {err}')


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    tasks = [('selection', 'none', {'selection': rule}, seed)
             for seed in range(args.seeds) for rule in RULES]
    validate(args, parser, tasks)
    try:  # cuts a last line cut short by a kill
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
