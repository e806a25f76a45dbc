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
Beside it, <folder>/selection.json records the options that change a run
outside its key (rule, seed): --dataset (a named set in lower case),
--epochs, --patience (all but NOT_RECORDED's, which says why); a rerun
with another value of one is refused in one line, as study.py refuses one
against its study.json (a runs.jsonl made before the file existed:
completed with the values given, a note says so). Every option acts in
selection.py's one mode (MODES is empty). Every option, the configuration
of every run, the data set and the folder (its files can be written,
runs.jsonl is readable, its selection.json) are checked before anything is
written: one-line errors, code 2.

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
from typing import Optional

import numpy as np

import study  # benchmarks/study.py: also puts the repository on sys.path

from align_gnn.cli import Modes, check_modes, given_options  # noqa: E402
from align_gnn.results import (  # noqa: E402
    RunResult,
    atomic_write,
    format_table,
    summarize,
)


RULES = ('acc', 'gat-paper')  # ours first: the reference of the tests
MANIFEST = 'selection.json'  # beside JOURNAL: study.check_manifest
JOURNAL = 'runs.jsonl'
#: The options of :func:`make_parser` that selection.json does not record,
#: and why (see :data:`study.NOT_RECORDED`): every other option changes
#: what a run computes without being part of its key (stage, the plain
#: model, the rule, seed), so a rerun with another value is refused; a new
#: option is recorded unless it is added here.
NOT_RECORDED = {
    'root': 'where the data set is read from, not which (--dataset)',
    'folder': 'the folder itself',
    'workers': 'a run gives the same bits on any number of processes and '
               'threads',
    'seeds': "in each run's key (its seed): other values make the runs they "
             "lack",
}
# Every option acts or is refused (issue 30; as train_gat.py's MODES):
# selection.py has one mode, in which every option acts.
EVERY_MODE = ('help', 'dataset', 'root', 'folder', 'seeds', 'epochs',
              'patience', 'workers')
MODES: Modes = {}


def make_parser() -> argparse.ArgumentParser:
    r"""The parser of selection.py's options (one-line errors, code 2)."""
    parser = study.ArgumentParser(description=__doc__.split('\n\n')[0])
    study.add_folder_options(parser, 'study/selection', 'where runs.jsonl, '
                             'selection.json and table.md go')
    study.add_run_options(parser, seeds=100)
    return parser


def selection_tasks(args) -> list:
    r"""The runs: plain GAT with each rule of :data:`RULES` on --seeds
    paired seeds."""
    return [('selection', 'none', {'selection': rule}, seed)
            for seed in range(args.seeds) for rule in RULES]


def validate(args, parser: argparse.ArgumentParser, tasks):
    r"""Checks everything selection.py is given before anything is
    written, as :func:`study.validate` does: the configuration of every
    run, the data set (it is loaded), that its files can be written in
    --folder, that runs.jsonl is readable, and last the recorded options
    against the folder's selection.json (:func:`study.check_manifest`; the
    manifest to write is kept in :obj:`args.manifest`); exits with a
    one-line error, code 2."""
    for _, method, setting, seed in tasks:
        try:
            study.config(method, setting, seed, args.dataset, args.epochs,
                         args.patience)
        except (ValueError, TypeError) as err:
            parser.error(f'the runs of {method} {json.dumps(setting)}: {err}')
    try:
        study.graph(args.dataset, args.root)
    except ValueError as err:  # `DataError` included
        study.fail(str(err))
    study.check_folder(parser, args.folder, (JOURNAL, MANIFEST, 'table.md'),
                       JOURNAL)
    args.manifest = study.check_manifest(
        parser, args, osp.join(args.folder, MANIFEST),
        osp.join(args.folder, JOURNAL), NOT_RECORDED, write=False)


def parse_args(argv=None, parser: Optional[argparse.ArgumentParser] = None
               ) -> argparse.Namespace:
    r"""selection.py's options, each checked where it acts
    (:data:`MODES`)."""
    parser = parser or make_parser()
    args = parser.parse_args(argv)
    check_modes(parser, args, MODES, given_options(parser, argv))
    return args


def main(argv=None):
    parser = make_parser()
    args = parse_args(argv, parser)
    tasks = selection_tasks(args)
    validate(args, parser, tasks)
    try:  # cuts a last line cut short by a kill
        store = study.Store(osp.join(args.folder, JOURNAL))
    except ValueError as err:
        study.fail(str(err))
    if args.manifest is not None:  # checked by validate()
        study.write_manifest(osp.join(args.folder, MANIFEST), args.manifest)
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
