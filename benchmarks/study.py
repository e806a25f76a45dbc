r"""Does alignment help? The side-by-side study on one data set.

1. Search (validation accuracy only): per divergence, a seeded random sample
   of settings from SEARCH_SPACE (λ, m, ρ for ct, the adversary's width and
   learning-rate scale for ct and adversarial; --space narrows a
   divergence's values), each on --search-seeds seeds
   (100, 101, ...: not the final seeds); the best setting of a divergence has
   the highest mean validation accuracy (test accuracy plays no part).
   --space may also add a variant to a divergence's search
   (ct.align_over=nodes,heads: alignment across nodes or across heads).
2. Final: the divergence with the best search score against plain GAT on
   --final-seeds paired seeds (0, 1, ...), every other divergence (its best
   setting) and the --peers (default gatv2 and supergat) on --peer-seeds
   seeds.
3. Writes <folder>/table.md (mean ± std, paired difference to GAT with
   t-test and Wilcoxon p-values) and <folder>/chosen.json.

--set NAME=VALUE fixes a Config field for every run (the model, layer,
width, learning rate, k, edge noise ...). On a data set with fixed splits
(the heterophilous sets) a run's seed is also its split: the search uses
splits 0 .. --search-seeds - 1 and the final runs splits 0 ..
--final-seeds - 1 (validation decides, as in Platonov et al.).

The folder's study.json records every option that changes what a run
computes and is not in the run's key (stage, method, setting, seed):
--dataset (a named set in lower case: Cora is cora), --set, --epochs,
--patience (all options but NOT_RECORDED's, which says why each of those
may differ). A rerun with another value of one is refused in one line.
The others may differ: --methods, --peers, --search-samples, --space and
the seed counts narrow or extend the study (a rerun makes the runs it
lacks and reuses only runs made alike); --workers, --stage and --root do
not change a run, and the runs of a folder may come from either --device.
A study.json of an older study.py, without some of the recorded options
(or none beside a runs.jsonl that holds runs), is completed with the
values given at its next run (a note says so). The same rule
(check_manifest) keeps diagnose.py's and selection.py's runs.

Every option acts or is refused (MODES: --measure-runs only with
--measure-workers, which takes none of the study's own options), and every
option, the configuration of every run the study may make, the folder (its
files can be written, runs.jsonl is readable, its study.json) and the data
set are checked before anything is written: one-line errors, code 2 (a
failed write later: 1). Every finished run is appended at
once to <folder>/runs.jsonl (flushed and synced); a rerun of the same
command skips what is done, so the study may be stopped at any point (a
damaged line inside runs.jsonl is an error naming it; only a last line cut
short by a kill is dropped). --workers N runs N processes (the cores
divided among them, see align_gnn.threads); --measure-workers times one
against two on the same runs. --device cuda trains on the GPU: with one
worker (the default), the runs go several at once in this process (see
align_gnn.device_runs.interleave: each on its own stream with its own
random generators, the results those of one at a time); with more, the
processes share it (spawned, not forked).

    python benchmarks/study.py --dataset cora --folder study/cora
    python benchmarks/study.py --dataset cora --folder study/cora --workers 2
    python benchmarks/study.py --dataset citeseer --folder study/citeseer \
        --space sinkhorn.align_samples=64,128,256 \
        --space mmd.align_samples=64,128,256
    python benchmarks/study.py --dataset cora --measure-workers
    python benchmarks/study.py --dataset chameleon-filtered \
        --folder study/chameleon-filtered/gt --set model=platonov-gt \
        --set hidden=64 --peers '' --final-seeds 10 \
        --space ct.align_over=nodes,heads
"""
import argparse
import dataclasses
import itertools
import json
import multiprocessing
import os.path as osp
import random
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from functools import partial
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch_geometric.data import Data

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from align_gnn import experiment, training  # noqa: E402
from align_gnn.cli import (  # noqa: E402
    Modes,
    check_modes,
    dataset_option,
    given_options,
)
from align_gnn.config import (  # noqa: E402
    Config,
    acting_options,
    resolve_device,
)
from align_gnn.options import SCOPES  # noqa: E402
from align_gnn.data import num_splits  # noqa: E402
from align_gnn.device_runs import interleave  # noqa: E402
from align_gnn.failures import RunFailed  # noqa: E402
from align_gnn.models import METHODS  # noqa: E402
from align_gnn.precision import precision  # noqa: E402
from align_gnn.outputs import (  # noqa: E402
    append_line,
    atomic_write,
    read_lines,
)
from align_gnn.results import (  # noqa: E402
    RunResult,
    check_writable,
    summarize,
)
from align_gnn.threads import set_threads, threads_per_process  # noqa: E402

SEARCH_SPACE = {
    'align_weight': [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
    'align_samples': [64, 128, 256, 512],
    'rho': [0.25, 0.5, 0.75],
    'adversary_channels': [16, 32, 64],
    'adversary_lr_scale': [0.1, 0.3, 1.0, 3.0],
}
USES = {  # the settings each divergence depends on
    'ct': ('align_weight', 'align_samples', 'rho', 'adversary_channels',
           'adversary_lr_scale'),
    'adversarial': ('align_weight', 'align_samples', 'adversary_channels',
                    'adversary_lr_scale'),
    'sinkhorn': ('align_weight', 'align_samples'),
    'mmd': ('align_weight', 'align_samples'),
}
VARIANTS = {  # settings a divergence's search may add with --space
    'align_over': ['nodes', 'heads'],
}
OWN_FIELDS = ('dataset', 'methods', 'runs', 'seed', 'epochs', 'patience',
              'device', *SEARCH_SPACE, *VARIANTS)  # set by the study
SEARCH_SEED = 100
PEERS = ('gatv2', 'supergat')
#: The options of :func:`make_parser` that study.json does not record, and
#: why. Every other option changes what a run computes without being part
#: of the run's key (:func:`task_key`: stage, method, setting, seed), so the
#: folder's study.json records it and a rerun with another value is refused
#: (:func:`check_manifest`): a new option is recorded unless it is added
#: here.
NOT_RECORDED = {
    'root': 'where the data set is read from, not which (--dataset)',
    'folder': 'the study folder itself',
    'workers': 'a run gives the same bits on any number of processes and '
               'threads',
    'device': 'the runs of a folder may come from either device',
    'stage': 'which stages run, not what a run computes',
    'measure_workers': 'a timing of its own, in a temporary folder',
    'measure_runs': 'a timing of its own, in a temporary folder',
    # In each run's key: a rerun with other values makes the runs it lacks
    # and reuses only runs made alike, so it narrows or extends the study
    # as a new folder would (the table and chosen.json are those of its
    # own command).
    'methods': "in each run's key (its method)",
    'peers': "in each run's key (its method)",
    'search_samples': "in each run's key (its setting)",
    'space': "in each run's key (its setting)",
    'search_seeds': "in each run's key (its seed)",
    'final_seeds': "in each run's key (its seed)",
    'peer_seeds': "in each run's key (its seed)",
}
MANIFEST = 'study.json'  # beside JOURNAL, see check_manifest
JOURNAL = 'runs.jsonl'
# Every option acts or is refused (issue 30; as train_gat.py's MODES): the
# options that act in every mode, and those that act only in some, dest ->
# (acts(args), where), refused where they would act on nothing.
EVERY_MODE = ('help', 'dataset', 'root', 'set', 'epochs', 'patience',
              'device', 'measure_workers')
MEASURING = ('not with --measure-workers (it times ct runs on one and on '
             'two processes, in a temporary folder)')
MODES: Modes = {
    **{dest: (lambda args: not args.measure_workers, MEASURING)
       for dest in ('folder', 'methods', 'search_samples', 'search_seeds',
                    'space', 'peers', 'final_seeds', 'peer_seeds', 'stage',
                    'workers')},
    'measure_runs': (lambda args: args.measure_workers,
                     'only with --measure-workers'),
}

Task = Tuple[str, str, Dict, int]  # stage, method, setting, seed


def sample_settings(method: str, num: int, seed: int = 0,
                    space: Optional[Dict[str, List]] = None) -> List[Dict]:
    r"""Up to :obj:`num` distinct settings of :obj:`method`, drawn uniformly
    from the product of the values it uses (all of them if fewer);
    :obj:`space` replaces some of :data:`SEARCH_SPACE`'s value lists."""
    space = {**SEARCH_SPACE, **(space or {})}
    names = USES[method] + tuple(n for n in VARIANTS if n in space)
    grid = list(itertools.product(*(space[n] for n in names)))
    picks = random.Random(f'{method}-{seed}').sample(grid,
                                                     min(num, len(grid)))
    return [dict(zip(names, values)) for values in picks]


def task_key(task: Task) -> str:
    return json.dumps(task, sort_keys=True)


class Store:
    r"""Finished runs in a JSON-lines file, one appended (and synced) per
    run by :func:`~align_gnn.outputs.append_line`; a last line cut short by
    a kill is ignored (and, with :obj:`repair`, cut off the file so that the
    next run overwrites it). Any other damaged line raises
    :class:`ValueError` naming the file and the line: the records after it
    are never dropped (resuming past it would run its task again beside a
    record that is only damaged, perhaps by hand)."""
    def __init__(self, path: str, repair: bool = True):
        self.path = path
        self.records: Dict[str, Dict] = {}
        for number, record in enumerate(read_lines(path, repair), start=1):
            if not (isinstance(record, dict)
                    and {'key', 'result'} <= set(record)):
                raise ValueError(
                    f"'{path}' line {number} is not a record of a run (no "
                    f"'key' and 'result'); restore the file, or delete that "
                    f"line (its run is then run again)")
            self.records[record['key']] = record

    def add(self, task: Task, result: Dict):
        record = dict(key=task_key(task), stage=task[0], method=task[1],
                      setting=task[2], seed=task[3], result=result)
        append_line(self.path, json.dumps(record))
        self.records[record['key']] = record

    def result(self, task: Task) -> Dict:
        return self.records[task_key(task)]['result']


_graphs = {}


def _init_worker(threads: int):
    set_threads(threads)


def graph(dataset: str, root: str, base: Optional[Dict] = None):
    r"""The graph of the study (see :func:`~align_gnn.experiment.load_data`;
    noise and generated graphs drawn with seed 0), loaded once per
    process."""
    key = (dataset, json.dumps(base or {}, sort_keys=True))
    if key not in _graphs:
        _graphs[key] = experiment.load_data(
            Config(dataset, device='cpu', **(base or {})), root)
    return _graphs[key]


def config(method: str, setting: Dict, seed: int, dataset: str, epochs: int,
           patience: int, base: Optional[Dict] = None,
           fixed_splits: bool = False, device: str = 'cpu') -> Config:
    r"""The configuration of one run on :obj:`device`: the study's --set
    fields :obj:`base` that act in it (e.g. ``conv`` not for the peers, which
    bring their own layer; see :func:`~align_gnn.config.acting_options`),
    then the run's :obj:`setting`. With :obj:`fixed_splits`, run
    :obj:`seed` uses split :obj:`seed` (:obj:`Config.seed` is 0: see
    :func:`~align_gnn.training.run`)."""
    base = acting_options(base or {}, dataset, [method])
    return Config(dataset, [method], runs=1,
                  seed=0 if fixed_splits else seed, epochs=epochs,
                  patience=patience, device=device, **{**base, **setting})


def compact(result: RunResult) -> Dict:
    r"""The result as a dictionary without the per-epoch history, the
    calibration bins and the key/query projections."""
    result = asdict(result)
    for bulky in ('history', 'calibration', 'keys_queries'):
        result.pop(bulky)
    return result


def task_config(task: Task, data: Data, dataset: str, epochs: int,
                patience: int, base: Optional[Dict], device: str) -> Config:
    r"""The configuration of :obj:`task` on the graph :obj:`data` (see
    :func:`config`)."""
    _, method, setting, seed = task
    return config(method, setting, seed, dataset, epochs, patience, base,
                  num_splits(data) > 0, device)


def run_task(task: Task, dataset: str, root: str, epochs: int,
             patience: int, base: Optional[Dict] = None,
             device: str = 'cpu') -> Dict:
    data = graph(dataset, root, base)
    return compact(training.run(
        data, task[1], task[3],
        task_config(task, data, dataset, epochs, patience, base, device)))


def run_tasks(tasks: Iterable[Task], store: Store, args,
              runner: Callable = run_task) -> int:
    r"""Runs the tasks the store does not hold with :obj:`runner` (called
    as :func:`run_task`); returns how many ran."""
    pending = [t for t in tasks if task_key(t) not in store.records]
    if not pending:
        return 0
    device = getattr(args, 'device', 'cpu')
    if runner is run_task and device == 'cuda' and args.workers == 1:
        return run_together(pending, store, args)
    threads = threads_per_process(args.workers)
    context = multiprocessing.get_context(  # CUDA cannot live in a fork
        'spawn' if device == 'cuda' else None)
    with ProcessPoolExecutor(args.workers, context, _init_worker,
                             (threads, )) as pool:
        futures = {
            pool.submit(runner, task, args.dataset, args.root,
                        args.epochs, args.patience,
                        getattr(args, 'set', None), device): task
            for task in pending
        }
        for done, future in enumerate(as_completed(futures), start=1):
            task = futures[future]
            store.add(task, future.result())
            _report(done, len(pending), task, future.result()['val_acc'])
    return len(pending)


def run_together(pending: List[Task], store: Store, args,
                 at_once: Optional[int] = None) -> int:
    r"""Runs the :obj:`pending` tasks in this process, several at once (see
    :func:`~align_gnn.device_runs.interleave`; :obj:`at_once`: as many as
    the free GPU memory holds), each recorded as it ends, in the precision
    of the study's --set."""
    base = getattr(args, 'set', None)
    data = graph(args.dataset, args.root, base)
    configs = [task_config(task, data, args.dataset, args.epochs,
                           args.patience, base, args.device)
               for task in pending]
    starts = ((task, partial(training.run_turns, data, task[1], task[3],
                             run_config))
              for task, run_config in zip(pending, configs))
    device = resolve_device(args.device)
    with precision(configs[0].precision, device):
        for done, (task, outcome) in enumerate(
                interleave(starts, device, at_once), start=1):
            if isinstance(outcome, RunFailed):
                raise outcome  # as a worker's failed run
            store.add(task, compact(outcome))
            _report(done, len(pending), task, outcome.val_acc)
    return len(pending)


def _report(done: int, total: int, task: Task, val_acc: float):
    print(f'[{done}/{total}] {task[0]} {task[1]} seed {task[3]} {task[2]}: '
          f'val {val_acc:.3f}', flush=True)


def search_seeds(args) -> List[int]:
    r"""The search's seeds: 100, 101, ... (not the final seeds), or the
    splits 0, 1, ... of a data set with fixed splits."""
    first = 0 if getattr(args, 'splits', 0) else SEARCH_SEED
    return list(range(first, first + args.search_seeds))


def search_tasks(args) -> List[Task]:
    return [('search', method, setting, seed)
            for method in args.methods
            for setting in sample_settings(method, args.search_samples,
                                           space=args.space.get(method))
            for seed in search_seeds(args)]


def best_settings(store: Store, args) -> Dict[str, Dict]:
    r"""Per divergence: the setting with the highest mean validation
    accuracy over the search seeds (ties: the first sampled) and that
    score. Test accuracy plays no part."""
    best = {}
    for method in args.methods:
        scores = []
        for setting in sample_settings(method, args.search_samples,
                                       space=args.space.get(method)):
            val = [store.result(('search', method, setting, seed))['val_acc']
                   for seed in search_seeds(args)]
            scores.append((float(np.mean(val)), setting))
        score, setting = max(scores, key=lambda pair: pair[0])
        best[method] = dict(setting=setting, val_acc=score)
    return best


def final_tasks(best: Dict[str, Dict], args) -> List[Task]:
    winner = max(best, key=lambda m: best[m]['val_acc'])
    tasks = [('final', method, setting, seed)
             for seed in range(args.final_seeds)
             for method, setting in (('none', {}),
                                     (winner, best[winner]['setting']))]
    tasks += [('final', method, best[method]['setting'], seed)
              for method in best if method != winner
              for seed in range(args.peer_seeds)]
    tasks += [('final', peer, {}, seed) for peer in args.peers
              for seed in range(args.peer_seeds)]
    return tasks


def table(tasks: List[Task], store: Store,
          metric: str = 'acc') -> Tuple[str, List[Dict]]:
    r"""The final runs summarized by :func:`summarize` (the plain model,
    the first method, is the reference of the paired tests) as a Markdown
    table and as rows; :obj:`metric` (:obj:`"acc"` or :obj:`"roc_auc"`)
    names the score the runs' :obj:`*_acc` fields hold."""
    settings = {task[1]: task[2] for task in tasks}
    summary = summarize([  # labelled by the tasks' methods
        RunResult(**{**store.result(task), 'method': task[1]})
        for task in tasks])
    score = 'ROC-AUC' if metric == 'roc_auc' else 'acc'
    lines = [f'| method | setting | seeds | test {score} | val {score} '
             f'| Δ test vs plain | t-test p | Wilcoxon p |', '| --- ' * 8 + '|']
    rows = []
    for method, s in summary.items():
        row = dict(method=method, setting=settings[method],
                   seeds=sum(task[1] == method for task in tasks),
                   test_mean=s['test_acc_mean'], test_std=s['test_acc_std'],
                   val_mean=s['val_acc_mean'],
                   diff=s.get('test_acc_diff', 0.0),
                   ttest_p=s.get('ttest_p'), wilcoxon_p=s.get('wilcoxon_p'))
        rows.append(row)
        fmt = (lambda p: 'n/a' if p is None else f'{p:.3g}')
        lines.append(
            f'| {method} | {json.dumps(row["setting"])} | {row["seeds"]} | '
            f'{100 * row["test_mean"]:.2f} ± {100 * row["test_std"]:.2f} | '
            f'{100 * row["val_mean"]:.2f} | '
            + ('ref' if method == 'none' else f'{100 * row["diff"]:+.2f}')
            + f' | {fmt(row["ttest_p"]) if method != "none" else ""} | '
            f'{fmt(row["wilcoxon_p"]) if method != "none" else ""} |')
    return '\n'.join(lines) + '\n', rows


def measure_workers(args):
    r"""The same runs with one process and with two, side by side."""
    tasks = [('measure', 'ct', {}, 200 + s) for s in range(args.measure_runs)]
    seconds = {}
    for workers in (1, 2):
        args.workers = workers
        with tempfile.TemporaryDirectory() as folder:
            store = Store(osp.join(folder, 'runs.jsonl'))
            start = time.perf_counter()
            run_tasks(tasks, store, args)
            seconds[workers] = time.perf_counter() - start
    print(f'{len(tasks)} ct runs: 1 process {seconds[1]:.1f} s, 2 processes '
          f'{seconds[2]:.1f} s: two processes are '
          f'{seconds[1] / seconds[2]:.2f}x as fast')


def space_option(text: str) -> Tuple[str, str, List]:
    r"""Parses :obj:`--space METHOD.NAME=V1,V2,...`."""
    try:
        target, values = text.split('=')
        method, name = target.split('.')
        values = [value if name in VARIANTS else json.loads(value)
                  for value in values.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not METHOD.NAME=V1,V2,... (e.g. "
            f"sinkhorn.align_samples=64,128,256)")
    if method not in USES or name not in USES[method] + tuple(VARIANTS):
        raise argparse.ArgumentTypeError(
            f"'{text}': {method} has no setting '{name}' (it has "
            f"{', '.join(USES.get(method, ()) + tuple(VARIANTS))}; "
            f"methods: {', '.join(USES)})")
    if name in VARIANTS and not set(values) <= set(VARIANTS[name]):
        raise argparse.ArgumentTypeError(
            f"'{text}': {name} takes {', '.join(VARIANTS[name])}")
    return method, name, values


def set_option(text: str) -> Tuple[str, object]:
    r"""Parses :obj:`--set NAME=VALUE` (a JSON value, else a string) for a
    field of :class:`~align_gnn.config.Config` that the study does not set
    itself."""
    name, sep, value = text.partition('=')
    fields = sorted(f.name for f in dataclasses.fields(Config)
                    if f.name not in OWN_FIELDS)
    if not sep or name not in fields:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not NAME=VALUE with NAME one of {', '.join(fields)}"
            f" (e.g. model=platonov-gt)")
    return name, _value(value)


def device_option(text: str) -> str:
    r"""Parses :obj:`--device`: :obj:`"cuda"` only where there is a GPU."""
    if text == 'cuda' and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError('CUDA is not available; use '
                                         '--device cpu')
    return text


def positive_int(text: str) -> int:
    r"""Parses a count option: an integer >= 1."""
    return _count(text, 1, 'a positive integer')


def non_negative_int(text: str) -> int:
    r"""Parses a count option that may be 0: an integer >= 0."""
    return _count(text, 0, 'an integer >= 0')


def _count(text: str, minimum: int, requirement: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f'must be {requirement} (got '
                                         f'{text!r})')
    return value


def methods_option(choices: Iterable[str], empty: bool = False) -> Callable:
    r"""Parses a comma-separated list of distinct names from
    :obj:`choices` (with :obj:`empty`, :obj:`''` is the empty list)."""
    def parse(text: str) -> List[str]:
        names = [name for name in text.split(',') if name or not empty]
        if (not names and not empty) or len(set(names)) != len(names) or (
                not set(names) <= set(choices)):
            raise argparse.ArgumentTypeError(
                f"must be distinct names from {', '.join(choices)} "
                f"separated by commas (got {text!r})")
        return names

    return parse


def _value(text: str):
    r"""A JSON value (number, list ...), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line naming the option, no usage block:
        self.exit(2, f'error: {message} (see --help)\n')


def add_folder_options(parser: argparse.ArgumentParser, folder: str,
                       holds: str):
    r"""--dataset, --root and --folder (default :obj:`folder`, holding
    what :obj:`holds` says), as study.py, diagnose.py and selection.py take
    them."""
    parser.add_argument('--dataset', type=dataset_option, default='cora',
                        help='a named data set (any case) or the path of '
                        'a graph file')
    parser.add_argument('--root', help='data root')
    parser.add_argument('--folder', default=folder, help=holds)


def add_run_options(parser: argparse.ArgumentParser, seeds: int):
    r"""--seeds (default :obj:`seeds`), --epochs, --patience and --workers
    of diagnose.py's and selection.py's runs."""
    parser.add_argument('--seeds', type=positive_int, default=seeds)
    parser.add_argument('--epochs', type=positive_int, default=1000)
    parser.add_argument('--patience', type=positive_int, default=100)
    parser.add_argument('--workers', type=positive_int, default=2)


def make_parser() -> argparse.ArgumentParser:
    r"""The parser of study.py's options."""
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    add_folder_options(parser, 'study', 'where study.json, runs.jsonl, '
                       'table.md, chosen.json go')
    parser.add_argument('--methods', default='ct,adversarial,sinkhorn,mmd',
                        type=methods_option(USES))
    parser.add_argument('--search-samples', type=positive_int, default=16,
                        help='settings sampled per divergence')
    parser.add_argument('--search-seeds', type=positive_int, default=3)
    parser.add_argument('--space', type=space_option, action='append',
                        default=[], metavar='METHOD.NAME=V1,V2,...',
                        help="a divergence's own values of a setting "
                             "instead of SEARCH_SPACE's (repeatable)")
    parser.add_argument('--set', type=set_option, action='append',
                        default=[], metavar='NAME=VALUE',
                        help='a Config field for every run, e.g. '
                             'model=platonov-gt, conv=gatv2, hidden=64 '
                             '(repeatable; recorded in study.json)')
    parser.add_argument('--peers', default=','.join(PEERS),
                        type=methods_option(METHODS, empty=True),
                        help="methods run beside the divergences in the "
                             "final stage ('' for none)")
    parser.add_argument('--final-seeds', type=positive_int, default=30)
    parser.add_argument('--peer-seeds', type=non_negative_int, default=10,
                        help='seeds of the other divergences and the peers '
                        '(0: none)')
    parser.add_argument('--epochs', type=positive_int, default=1000)
    parser.add_argument('--patience', type=positive_int, default=100)
    parser.add_argument('--workers', type=positive_int, default=2,
                        help='processes (2 on 2 cores: 1.71x one, measured)')
    parser.add_argument('--device', type=device_option,
                        choices=['cpu', 'cuda'], default='cpu',
                        help='where each run trains (cuda: the workers '
                        'share the GPU)')
    parser.add_argument('--stage', choices=['search', 'all'], default='all')
    parser.add_argument('--measure-workers', action='store_true')
    parser.add_argument('--measure-runs', type=positive_int, default=4)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    r"""study.py's options, each checked where it acts (:data:`MODES`);
    --space and --set as dictionaries."""
    parser = make_parser()
    args = parser.parse_args(argv)
    check_modes(parser, args, MODES, given_options(parser, argv))
    space = {}
    for method, name, values in args.space:
        space.setdefault(method, {})[name] = values
    args.space = space
    args.set = dict(args.set)
    return args


def fail(message: str):
    r"""Ends the script with a one-line error, code 2: a mistake found
    before anything is written (as the parser's own errors, and
    train_gat.py's)."""
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def load_json(path: str) -> Optional[Dict]:
    r"""The JSON in :obj:`path` (a study folder's file), :obj:`None` if there
    is no such file; a file that is not valid JSON is a one-line error
    (:func:`fail`)."""
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        fail(f"'{path}' is not valid JSON ({e}): restore it or delete it "
             f"(the folder's runs files keep the runs)")


def recorded_options(parser: argparse.ArgumentParser,
                     not_recorded: Dict[str, str] = NOT_RECORDED
                     ) -> List[argparse.Action]:
    r"""The options of :obj:`parser` that its script's manifest records: all
    but --help and :obj:`not_recorded` (the script's own
    :data:`NOT_RECORDED`)."""
    return [action for action in parser._actions
            if action.dest not in ('help', *not_recorded)]


def as_options(action: argparse.Action, value) -> str:
    r""":obj:`value` of :obj:`action` (as a manifest holds it) as
    command-line words."""
    def word(text) -> str:
        return shlex.quote(text if isinstance(text, str) else
                           json.dumps(text))

    option = action.option_strings[0]
    if isinstance(value, dict):  # --set NAME=VALUE ...
        return ' '.join(f'{option} ' + shlex.quote(
            f'{name}={item if isinstance(item, str) else json.dumps(item)}')
            for name, item in value.items()) or f'no {option}'
    if action.nargs == 0:  # a flag
        return option if value else f'no {option}'
    return f'{option} {word(value)}'


def check_folder(parser: argparse.ArgumentParser, folder: str,
                 outputs: Iterable[str], journal: Optional[str] = None):
    r"""Exits with one line (code 2) if a file :obj:`outputs` of
    :obj:`folder` cannot be written, or if its runs file :obj:`journal`
    holds a damaged line (a study's, diagnose.py's, selection.py's)."""
    for name in outputs:
        try:
            check_writable(osp.join(folder, name))
        except OSError as err:
            parser.error(f"argument --folder: cannot write "
                         f"'{osp.join(folder, name)}' ({err}); choose a "
                         f"writable folder")
    if journal is not None:
        try:  # a damaged line: one line naming it, no traceback
            Store(osp.join(folder, journal), repair=False)
        except ValueError as err:
            fail(str(err))


def check_manifest(parser: argparse.ArgumentParser, args, path: str,
                   journal: str, not_recorded: Dict[str, str],
                   write: bool = True) -> Optional[Dict]:
    r"""The runs of a journal (study.py's runs.jsonl, diagnose.py's
    diagnose.jsonl, selection.py's runs.jsonl) are reused only with the
    options they were made with: the manifest :obj:`path` beside
    :obj:`journal` holds the value of every option of :obj:`parser` but
    :obj:`not_recorded` (:func:`recorded_options`). Compares them with
    :obj:`args` and refuses the first that differs (:obj:`parser.error`:
    one line, code 2, naming the option, both values and what to do). A
    manifest that lacks options (of an older script), or none beside a
    journal that holds runs, is completed with the values of :obj:`args`
    (a note on stderr says so): the runs are taken to have been made with
    them. Writes the manifest (with :obj:`write`) and returns it;
    :obj:`None`: the file is up to date."""
    recorded = recorded_options(parser, not_recorded)
    manifest = {action.dest: json.loads(json.dumps(getattr(args,
                                                           action.dest)))
                for action in recorded}
    name, runs = osp.basename(path), osp.basename(journal)
    held = load_json(path)
    if held is None and osp.isfile(journal) and osp.getsize(journal):
        print(f"note: '{journal}' holds runs but there is no '{path}' "
              f"(an older version): they are taken to have been made with "
              + ' '.join(as_options(a, manifest[a.dest]) for a in recorded)
              + f', which {name} now records', file=sys.stderr)
    elif held is not None:
        if not isinstance(held, dict):
            fail(f"'{path}' is not a {name} (not a JSON object): restore it "
                 f"or delete it (the folder's {runs} keeps the runs)")
        for action in recorded:
            if action.dest in held and held[action.dest] != \
                    manifest[action.dest]:
                was = as_options(action, held[action.dest])
                parser.error(
                    f"argument {action.option_strings[0]}: the runs in "
                    f"'{journal}' were made with {was} (recorded in "
                    f"'{path}'), not "
                    f'{as_options(action, manifest[action.dest])}: resume '
                    f'them with {was}, or give another --folder for new '
                    f'runs')
        missing = [action for action in recorded if action.dest not in held]
        if not missing:
            return None
        print(f"note: '{path}' does not record "
              f"{', '.join(a.option_strings[0] for a in missing)} (an older"
              f" version): its runs are taken to have been made with "
              + ' '.join(as_options(a, manifest[a.dest]) for a in missing)
              + ', and it now records them', file=sys.stderr)
        manifest = {**manifest, **held}
    if write:
        write_manifest(path, manifest)
    return manifest


def write_manifest(path: str, manifest: Dict):
    r"""Writes a manifest of :func:`check_manifest` (atomically)."""
    atomic_write(path, lambda f: json.dump(manifest, f, indent=2))


def validate(args):
    r"""Checks everything the study is given before anything is written:
    the configuration of every run it may make (the --set fields, every
    sampled --space setting of each divergence, the peers), that its
    files can be written in --folder and its runs.jsonl is readable, the
    graph (it is loaded) and its fixed splits, and last the recorded
    options against the folder's study.json (:func:`check_manifest`; the
    manifest to write is kept in :obj:`args.manifest`); exits with a
    one-line error, code 2."""
    parser = make_parser()
    runs = [(method, setting) for method in args.methods
            for setting in sample_settings(method, args.search_samples,
                                           space=args.space.get(method))]
    runs += [(method, {}) for method in ('none', *args.peers)]
    for method, setting in runs:
        try:
            config(method, setting, 0, args.dataset, args.epochs,
                   args.patience, args.set, device=args.device)
        except (ValueError, TypeError) as err:
            fail(f'the runs of {method} '
                 f'{json.dumps({**args.set, **setting})}: {err}')
    acting = {name for method in {method for method, _ in runs}
              for name in acting_options(args.set, args.dataset, [method])}
    for name in args.set.keys() - acting:
        parser.error(f'argument --set: {name}={args.set[name]!r} acts in no '
                     f'run of this study ({name} acts only '
                     f'{SCOPES[name][1]})')
    check_folder(parser, args.folder,
                 (MANIFEST, JOURNAL, 'table.md', 'chosen.json'), JOURNAL)
    try:
        args.splits = num_splits(graph(args.dataset, args.root, args.set))
    except ValueError as err:  # `DataError` included
        fail(str(err))
    if args.splits and max(args.search_seeds, args.final_seeds,
                           args.peer_seeds) > args.splits:
        fail(f'{args.dataset} has {args.splits} fixed splits, and a run uses '
             f'the split of its seed: use at most {args.splits} '
             f'--search-seeds, --final-seeds and --peer-seeds')
    args.manifest = check_manifest(
        parser, args, osp.join(args.folder, MANIFEST),
        osp.join(args.folder, JOURNAL), NOT_RECORDED, write=False)


def main(argv=None):
    args = parse_args(argv)
    if args.measure_workers:
        return measure_workers(args)
    validate(args)
    try:
        return _study(args, argv)
    except ValueError as err:  # a failed write while running: code 1
        sys.exit(f'error: {err}')


def _study(args, argv):
    store = Store(osp.join(args.folder, JOURNAL))
    if args.manifest is not None:  # checked by validate()
        write_manifest(osp.join(args.folder, MANIFEST), args.manifest)
    ran = run_tasks(search_tasks(args), store, args)
    best = best_settings(store, args)
    print(f'search: {ran} new run(s); best on validation: '
          f'{json.dumps(best)}')
    if args.stage == 'search':
        return
    tasks = final_tasks(best, args)
    ran = run_tasks(tasks, store, args)
    metric = getattr(graph(args.dataset, args.root, args.set), 'metric',
                     'acc')
    text, rows = table(tasks, store, metric)
    command = shlex.join(['python', 'benchmarks/study.py',
                          *(sys.argv[1:] if argv is None else argv)])
    atomic_write(osp.join(args.folder, 'table.md'), lambda f: f.write(
        f'{args.dataset}, {time.strftime("%Y-%m-%d")}, `{command}`\n\n'
        + text))
    atomic_write(
        osp.join(args.folder, 'chosen.json'),
        lambda f: json.dump(dict(best=best, rows=rows), f, indent=2))
    print(f'final: {ran} new run(s)\n{text}')


if __name__ == '__main__':
    main()
