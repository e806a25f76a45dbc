r"""The speed of the training paths against PyG's own example (issue 27), in
one run: every group of candidates is timed side by side (interleaved
repetitions after a warm-up, medians of the per-repetition ratios; see
timing.py), then a table (what, time, against what, ratio) and, on the last
line, the ratios to PyG's example epoch with the goals. Every timed call
ends with the device synchronised (timing.measure), so CUDA times are the
GPU's work, not the launches.

What one timed call of each candidate is:

1. PyG's example: ``examples/gat.py`` of PyG as written there, on Cora
   (NormalizeFeatures, dense features): build ``GATConv(in, 8, heads=8,
   dropout=0.6) -> ELU -> GATConv(64, classes, heads=1, concat=False,
   dropout=0.6)`` and Adam (lr 0.005, weight decay 5e-4), then ``--epochs``
   epochs of its ``train()`` (one step, ``float(loss)``) and ``test()``
   (forward in eval mode, the accuracies of the three masks) with its
   best-validation bookkeeping (its per-epoch ``log`` line is left out). Per
   epoch: the call over ``--epochs``. The anchor of every ratio "to PyG's
   example".
2. ``train_gat.py``'s plain (none) and CT epoch on Cora:
   ``align_gnn.training.run(data, method, 0, config)``, the call
   ``train_gat.py --compare none,ct`` makes per run (experiment ->
   run_many -> run), with ``Config(dataset='cora', epochs=E, patience=E)``
   (E = ``--epochs``: early stopping out of the way) and the study's CT
   settings: seeding, the model, the features as ``fit`` lays them out on
   the device (dense on CUDA, sparse CSR on the CPU), then E epochs of
   ``fit``: by default kept on the device (align_gnn/device_loop.py: on
   CUDA the warm-up, the capture and E replays of one CUDA graph holding
   the training step, the finiteness check, the validation score, model
   selection and the copy of the kept weights; the status read every 25
   epochs), and ``--no-capture`` (``Config(capture=False)``: the epoch
   loop, a training step, the finiteness check, the full evaluation read
   on the host, a copy of the weights at each better validation score);
   then the best weights restored and evaluated, the run's result; no
   progress bar (as ``--quiet``). Per epoch: the call over E, so a run's
   one-off costs (the capture included) are spread over E epochs (as they
   are over a real run's epochs). Interleaved with 1.
3. The regulariser: the CT model of 2 (``training.make_model``), after one
   training step; a call is ``bench_scaling.regulariser``: per aligned layer
   the keys and queries sampled and projected from the layer's recorded
   input, the weighted ``alignment_loss``, its backward pass, and the step of
   Adam over the adversaries' parameters (lr times the adversary scale);
   interleaved with a plain and a CT training step of
   ``align_gnn.loops.train_epoch`` (as bench_step.py times them).
4. The Platonov GT (5 blocks, 8 heads, width 512; ``--quick``: 64) on
   minesweeper, split 0: ``training.run`` of ``Config(dataset='minesweeper',
   model='platonov-gt', methods=['none'], epochs=E, patience=E)`` against
   its bare PyG loop: the same model (``hetero_models``) and Adam (lr 3e-5),
   E epochs of forward, cross-entropy on the training nodes, backward, step,
   then a forward in eval mode and the validation ROC-AUC
   (``align_gnn.metrics.roc_auc``). Per epoch: the call over E. Also with
   ``--no-capture``.
5. The ogbn-arxiv recipe's full-batch epoch, plain and CT:
   ``bench_arxiv_scale.full_batch_epoch`` (a training step with labels as
   input, then the evaluation) on ``bench_arxiv_scale.random_arxiv``, a
   random graph of ogbn-arxiv's size (``--quick``: 20,000 nodes with as many
   edges per node). A call is one epoch.
6. ``--compare none,ct --runs 10`` on Cora: ``align_gnn.experiment.experiment``
   of ``Config(dataset='cora', methods=['none', 'ct'], runs=10)`` in this
   process, once (``--quick``: 2 runs of 20 epochs), timed whole (loading
   the data included); the sum of the runs' own seconds is shown beside it.

    python benchmarks/gpu_speed.py --device cuda --json gpu_speed.json
    python benchmarks/gpu_speed.py --device cpu --quick
"""
import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
import warnings
from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

import torch_geometric.transforms as T
from torch_geometric.datasets import Planetoid
from torch_geometric.nn import GATConv

from align_gnn import adversary_parameters
from align_gnn.config import Config
from align_gnn.data import (
    DataError,
    data_root,
    load_dataset,
    prepare_data,
    select_split,
)
from align_gnn.experiment import experiment, load_data
from align_gnn.hetero_models import build_platonov_model
from align_gnn.loops import train_epoch
from align_gnn.metrics import roc_auc
from align_gnn.outputs import atomic_write, check_output
from align_gnn.results import environment, hardware, strict_json
from align_gnn.training import make_model, make_optimizer, run
from bench_arxiv_scale import (
    NUM_EDGES,
    NUM_NODES,
    full_batch_epoch,
    random_arxiv,
    recipe,
)
from bench_scaling import regulariser
from timing import format_rows, measure, ratio_rows, synchronize

GOALS = dict(plain=0.5, ct_over_plain=1.2, regulariser_ms=2.0,
             gt_over_bare=0.8, arxiv_s=0.15, compare_s=5.0)
# Per mode: epochs per timed call (Cora, GT), repetitions and warm-up calls
# of each group, the GT's width, the random arxiv graph's nodes, and the
# runs and epochs of the comparison (None: the data set's default).
MODES = dict(
    full=dict(epochs=50, gt_epochs=10, repeats=15, warmup=2,
              reg_repeats=50, reg_warmup=5, gt_repeats=10, arxiv_repeats=5,
              width=512, arxiv_nodes=NUM_NODES, compare_runs=10,
              compare_epochs=None),
    quick=dict(epochs=5, gt_epochs=3, repeats=5, warmup=1, reg_repeats=10,
               reg_warmup=2, gt_repeats=3, arxiv_repeats=3, width=64,
               arxiv_nodes=20_000, compare_runs=2, compare_epochs=20),
)


# 1. PyG's examples/gat.py, as written there (the anchor) -------------------
class GAT(torch.nn.Module):
    def __init__(self, in_channels, hidden_channels, out_channels, heads):
        super().__init__()
        self.conv1 = GATConv(in_channels, hidden_channels, heads, dropout=0.6)
        self.conv2 = GATConv(hidden_channels * heads, out_channels, heads=1,
                             concat=False, dropout=0.6)

    def forward(self, x, edge_index):
        x = F.dropout(x, p=0.6, training=self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.6, training=self.training)
        x = self.conv2(x, edge_index)
        return x


def pyg_example(dataset, data, epochs: int):
    model = GAT(dataset.num_features, 8, dataset.num_classes, 8).to(
        data.x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005,
                                 weight_decay=5e-4)

    def train():
        model.train()
        optimizer.zero_grad()
        out = model(data.x, data.edge_index)
        loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        optimizer.step()
        return float(loss)

    @torch.no_grad()
    def test():
        model.eval()
        pred = model(data.x, data.edge_index).argmax(dim=-1)

        accs = []
        for mask in [data.train_mask, data.val_mask, data.test_mask]:
            accs.append(int((pred[mask] == data.y[mask]).sum()) /
                        int(mask.sum()))
        return accs

    best_val_acc = test_acc = 0
    for epoch in range(1, epochs + 1):
        train()
        train_acc, val_acc, tmp_test_acc = test()
        if val_acc > best_val_acc:
            best_val_acc = val_acc
            test_acc = tmp_test_acc
    return test_acc


# 4. The bare PyG loop of the Platonov GT -----------------------------------
def bare_gt(data, width: int, epochs: int):
    torch.manual_seed(0)
    model = build_platonov_model('platonov-gt', 'none', data.num_features,
                                 data.num_classes, hidden=width, heads=8,
                                 layers=5).to(data.x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-5)
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        out = model(data.x, data.edge_index)
        loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.eval()
            out = model(data.x, data.edge_index)[data.val_mask]
            val_auc = roc_auc(out[:, 1] - out[:, 0], data.y[data.val_mask])
    return val_auc


# The measurements -----------------------------------------------------------
def per_epoch(seconds: Dict[str, np.ndarray],
              epochs: Dict[str, int]) -> Dict[str, np.ndarray]:
    return {name: values / epochs[name] for name, values in seconds.items()}


def paired(seconds: Dict[str, np.ndarray], name: str, against: str) -> Dict:
    r"""The median (and quartiles) of the per-repetition ratio of
    :obj:`name` to :obj:`against`, both timed in the same repetitions."""
    ratio = seconds[name] / seconds[against]
    return dict(ratio=float(np.median(ratio)),
                ratio_q1=float(np.percentile(ratio, 25)),
                ratio_q3=float(np.percentile(ratio, 75)))


def cora_epochs(s: SimpleNamespace) -> Dict:
    r"""1 and 2: PyG's example epoch and train_gat.py's plain and CT epoch
    on Cora, interleaved."""
    options = dict(dataset='cora', methods=['none', 'ct'], epochs=s.epochs,
                   patience=s.epochs, device=s.device.type)
    config, eager = Config(**options), Config(**options, capture=False)
    graph = load_data(config, s.root)  # as train_gat.py loads it
    dataset = Planetoid(data_root(s.root), 'Cora',
                        transform=T.NormalizeFeatures())  # as the example
    data = dataset[0].to(s.device)
    candidates = {
        "PyG's example": lambda: pyg_example(dataset, data, s.epochs),
        'train_gat.py none': lambda: run(graph, 'none', 0, config),
        'train_gat.py ct': lambda: run(graph, 'ct', 0, config),
        'no-capture none': lambda: run(graph, 'none', 0, eager),
        'no-capture ct': lambda: run(graph, 'ct', 0, eager),
    }
    seconds = per_epoch(measure(candidates, s.repeats, s.warmup, s.device),
                        dict.fromkeys(candidates, s.epochs))
    return dict(seconds=seconds, graph=graph, config=config)


def regulariser_ms(s: SimpleNamespace, graph, config: Config) -> Dict:
    r"""3: the CT model's regulariser alone, interleaved with a plain and a
    CT training step."""
    full = prepare_data(graph, config.features).to(s.device)
    weight = config.alignment('ct')['align_weight']
    steps = {}
    for name, method in (('plain step', 'none'), ('ct step', 'ct')):
        torch.manual_seed(0)
        model = make_model(method, graph, config).to(s.device)
        optimizer = make_optimizer(model, config, method)
        steps[name] = (lambda model=model, optimizer=optimizer,
                       w=weight if method == 'ct' else 0.0:
                       train_epoch(model, full, optimizer, w))
    torch.manual_seed(0)
    model = make_model('ct', graph, config).to(s.device)
    adversaries = torch.optim.Adam(
        adversary_parameters(model),
        lr=config.lr * config.alignment('ct')['adversary_lr_scale'],
        weight_decay=config.weight_decay)
    alone = regulariser(model, adversaries, weight)
    train_epoch(model, full, make_optimizer(model, config, 'ct'), weight)
    return dict(seconds=measure(dict(steps, regulariser=alone),
                                s.reg_repeats, s.reg_warmup, s.device))


def gt_epochs(s: SimpleNamespace) -> Dict:
    r"""4: the Platonov GT on minesweeper, train_gat.py's loop against the
    bare PyG loop."""
    options = dict(dataset='minesweeper', methods=['none'],
                   model='platonov-gt', hidden=s.width, heads=8, layers=5,
                   epochs=s.gt_epochs, patience=s.gt_epochs,
                   device=s.device.type)
    config, eager = Config(**options), Config(**options, capture=False)
    graph = load_data(config, s.root)
    data = select_split(graph, 0).to(s.device)
    candidates = {
        'bare PyG loop': lambda: bare_gt(data, s.width, s.gt_epochs),
        'train_gat.py platonov-gt': lambda: run(graph, 'none', 0, config),
        'no-capture platonov-gt': lambda: run(graph, 'none', 0, eager),
    }
    seconds = per_epoch(measure(candidates, s.gt_repeats, 1, s.device),
                        dict.fromkeys(candidates, s.gt_epochs))
    return dict(seconds=seconds)


def arxiv_epochs(s: SimpleNamespace) -> Dict:
    r"""5: the arxiv recipe's full-batch epoch, plain and CT."""
    edges = round(NUM_EDGES * s.arxiv_nodes / NUM_NODES)
    graph = random_arxiv(s.arxiv_nodes, edges)
    candidates = {}
    for method in ('none', 'ct'):
        train, evaluate = full_batch_epoch(recipe(method, graph, s.device))
        candidates[f'arxiv {method}'] = (lambda train=train,
                                         evaluate=evaluate:
                                         (train(), evaluate()))
    return dict(seconds=measure(candidates, s.arxiv_repeats, 1, s.device),
                nodes=s.arxiv_nodes, edges=int(graph.num_edges))


def compare_runs(s: SimpleNamespace) -> Dict:
    r"""6: the training wall time of --compare none,ct on Cora."""
    config = Config(dataset='cora', methods=['none', 'ct'],
                    runs=s.compare_runs, epochs=s.compare_epochs,
                    device=s.device.type)
    synchronize(s.device)
    start = time.perf_counter()
    results = experiment(config, s.root)
    synchronize(s.device)
    wall = time.perf_counter() - start
    runs = results['runs']
    return dict(wall_s=wall, runs=s.compare_runs, epochs=config.epochs,
                training_s=sum(r['seconds'] for r in runs),
                epochs_run=sum(r['epochs'] for r in runs),
                per_method={m: sum(r['seconds'] for r in runs
                                   if r['method'] == m)
                            for m in config.methods})


# The table, the last line and the JSON --------------------------------------
def row(what: str, seconds: np.ndarray, against: str = '',
        ratio: Optional[Dict] = None) -> Dict:
    return dict(what=what, ms=1e3 * float(np.median(seconds)),
                against=against, **(ratio or dict(ratio=None)))


def table_rows(s: SimpleNamespace, out: Dict) -> List[Dict]:
    cora, reg, gt, arxiv = (out[name]['seconds'] for name in
                            ('cora', 'regulariser', 'gt', 'arxiv'))
    anchor, none, ct = "PyG's example", 'train_gat.py none', 'train_gat.py ct'
    width, nodes = s.width, f'{out["arxiv"]["nodes"]:,} nodes'
    compare = out['compare']
    return [
        row("PyG's example epoch, Cora", cora[anchor], 'the anchor'),
        row('train_gat.py epoch, Cora, none', cora[none],
            "PyG's example epoch", paired(cora, none, anchor)),
        row('train_gat.py epoch, Cora, ct', cora[ct],
            "PyG's example epoch", paired(cora, ct, anchor)),
        row('train_gat.py epoch, Cora, ct', cora[ct],
            'train_gat.py epoch, none', paired(cora, ct, none)),
        row('--no-capture epoch, Cora, none', cora['no-capture none'],
            "PyG's example epoch", paired(cora, 'no-capture none', anchor)),
        row('train_gat.py epoch, Cora, none', cora[none],
            '--no-capture epoch, none', paired(cora, none,
                                               'no-capture none')),
        row('--no-capture epoch, Cora, ct', cora['no-capture ct'],
            '--no-capture epoch, none', paired(cora, 'no-capture ct',
                                               'no-capture none')),
        row('training step, Cora, none (loops.train_epoch)',
            reg['plain step']),
        row('training step, Cora, ct', reg['ct step'],
            'training step, none', paired(reg, 'ct step', 'plain step')),
        row('regulariser alone, Cora, ct', reg['regulariser'],
            'training step, none', paired(reg, 'regulariser',
                                          'plain step')),
        row(f'bare PyG loop epoch, minesweeper GT width {width}',
            gt['bare PyG loop']),
        row(f'train_gat.py epoch, minesweeper GT width {width}',
            gt['train_gat.py platonov-gt'], 'bare PyG loop epoch',
            paired(gt, 'train_gat.py platonov-gt', 'bare PyG loop')),
        row(f'--no-capture epoch, minesweeper GT width {width}',
            gt['no-capture platonov-gt'], 'bare PyG loop epoch',
            paired(gt, 'no-capture platonov-gt', 'bare PyG loop')),
        row(f'arxiv recipe full-batch epoch, none, {nodes}',
            arxiv['arxiv none']),
        row(f'arxiv recipe full-batch epoch, ct, {nodes}', arxiv['arxiv ct'],
            'arxiv epoch, none', paired(arxiv, 'arxiv ct', 'arxiv none')),
        row(f'--compare none,ct --runs {compare["runs"]} '
            f'({compare["epochs"]} epochs at most), wall',
            np.asarray([compare['wall_s']]),
            f'(training alone {compare["training_s"]:.1f} s, '
            f'{compare["epochs_run"]} epochs)'),
    ]


def show_time(ms: float) -> str:
    return f'{ms:.2f} ms' if ms < 1000 else f'{ms / 1e3:.2f} s'


def format_table(rows: List[Dict]) -> str:
    width = max(len(r['what']) for r in rows)
    against = max(len('against'), *(len(r['against']) for r in rows))
    header = (f'{"what":<{width}}  {"time":>10}  {"against":<{against}}  '
              f'{"ratio":>6}  {"IQR of ratio":>13}')
    lines = [header, '-' * len(header)]
    for r in rows:
        ratio = ('' if r['ratio'] is None else
                 f'{r["ratio"]:>6.2f}  {r["ratio_q1"]:>6.2f}–'
                 f'{r["ratio_q3"]:<6.2f}')
        lines.append(f'{r["what"]:<{width}}  {show_time(r["ms"]):>10}  '
                     f'{r["against"]:<{against}}  {ratio}'.rstrip())
    return '\n'.join(lines)


def headline(out: Dict) -> Dict:
    r"""The figures of the goals (see :data:`GOALS`)."""
    cora, reg, gt, arxiv = (out[name]['seconds'] for name in
                            ('cora', 'regulariser', 'gt', 'arxiv'))
    anchor = "PyG's example"
    return dict(
        plain=paired(cora, 'train_gat.py none', anchor)['ratio'],
        ct=paired(cora, 'train_gat.py ct', anchor)['ratio'],
        ct_over_plain=paired(cora, 'train_gat.py ct',
                             'train_gat.py none')['ratio'],
        regulariser_ms=1e3 * float(np.median(reg['regulariser'])),
        gt_over_bare=paired(gt, 'train_gat.py platonov-gt',
                            'bare PyG loop')['ratio'],
        arxiv_s=float(np.median(arxiv['arxiv none'])),
        compare_s=out['compare']['wall_s'])


def last_line(s: SimpleNamespace, h: Dict, out: Dict) -> str:
    g, c = GOALS, out['compare']
    full = MODES['full']
    gt = '' if s.width == full['width'] else f' at width {s.width}'
    arxiv = ('' if s.arxiv_nodes == NUM_NODES else
             f' at {s.arxiv_nodes:,} nodes')
    runs = (f'{c["runs"]} run{"s" * (c["runs"] != 1)}'
            + ('' if s.compare_epochs is None else
                                   f' x {c["epochs"]} epochs'))
    return (f"ratios to PyG's example epoch: plain {h['plain']:.2f}, "
            f"ct {h['ct']:.2f} = {h['ct_over_plain']:.2f} x plain (goals: "
            f"plain <= {g['plain']}, ct <= {g['ct_over_plain']} x plain); "
            f"regulariser {h['regulariser_ms']:.1f} ms (goal <= "
            f"{g['regulariser_ms']:g}); GT/bare {h['gt_over_bare']:.2f}{gt} "
            f"(goal <= {g['gt_over_bare']}); arxiv {h['arxiv_s']:.2f} s"
            f"{arxiv} (goal <= {g['arxiv_s']}); compare {runs} "
            f"{h['compare_s']:.1f} s (goal <= {g['compare_s']:g})")


def gpu_driver() -> Optional[str]:
    try:
        return subprocess.run(
            ['nvidia-smi', '--query-gpu=driver_version',
             '--format=csv,noheader'], capture_output=True, text=True,
            check=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def machine(device: torch.device) -> Dict:
    r"""The CPU (:func:`~align_gnn.results.hardware`) and, on CUDA, the
    GPU's name, memory, driver, and the CUDA version of torch."""
    out = dict(cpu=hardware('cpu'), platform=platform.platform())
    if device.type == 'cuda':
        out.update(gpu=torch.cuda.get_device_name(device),
                   gpu_hardware=hardware(str(device)), driver=gpu_driver(),
                   cuda=torch.version.cuda)
    return out


def is_gpu_speed_file(path: str) -> bool:
    try:
        with open(path) as f:
            return json.load(f).get('benchmark') == 'gpu_speed'
    except (OSError, ValueError, AttributeError):
        return False


def write_json(path: str, record: Dict):
    record, nulls = strict_json(record)
    if nulls:
        record['nulls'] = nulls
    text = json.dumps(record, indent=2, allow_nan=False)
    atomic_write(path, lambda f: f.write(text + '\n'))


def record(s: SimpleNamespace, argv: List[str], out: Dict, rows: List[Dict],
           h: Dict) -> Dict:
    settings = {k: v for k, v in vars(s).items() if k not in ('device',
                                                              'root')}
    groups = {name: dict(rows=ratio_rows(out[name]['seconds']),
                         seconds={k: v.tolist() for k, v in
                                  out[name]['seconds'].items()})
              for name in ('cora', 'regulariser', 'gt', 'arxiv')}
    groups['cora']['per'] = groups['gt']['per'] = 'epoch (call / epochs)'
    return dict(
        benchmark='gpu_speed', command=shlex.join(
            ['python', 'benchmarks/gpu_speed.py', *argv]),
        date=time.strftime('%Y-%m-%dT%H:%M:%S%z'), device=str(s.device),
        machine=machine(s.device), environment=environment(),
        settings=settings, goals=GOALS, headline=h, rows=rows, groups=groups,
        compare=out['compare'],
        arxiv_graph=dict(nodes=out['arxiv']['nodes'],
                         edges=out['arxiv']['edges']))


def parse_args(argv: List[str]) -> SimpleNamespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    parser.add_argument('--device', choices=['cuda', 'cpu'],
                        help='unset: cuda if available, else cpu')
    parser.add_argument('--quick', action='store_true',
                        help='small sizes and few repetitions (GT width 64, '
                        'a random arxiv graph of 20,000 nodes, the '
                        'comparison 2 runs x 20 epochs): runs on a CPU in '
                        'minutes')
    parser.add_argument('--root', help='data root (Cora and minesweeper); '
                        'unset: $ALIGN_GNN_DATA, else datasets/')
    parser.add_argument('--json', metavar='PATH',
                        help='also write the figures, the machine and the '
                        'versions to PATH (strict JSON)')
    for name, what in (('repeats', 'repetitions of every group'),
                       ('epochs', 'epochs per timed call on Cora and of '
                        'the GT'),
                       ('width', 'width of the GT'),
                       ('arxiv-nodes', 'nodes of the random arxiv graph'),
                       ('compare-runs', 'runs per method of the comparison'),
                       ('compare-epochs', 'epochs at most of each run of '
                        'the comparison')):
        parser.add_argument(f'--{name}', type=int, metavar='N',
                            help=f'{what}; unset: the mode\'s')
    args = parser.parse_args(argv)
    for name in ('repeats', 'epochs', 'width', 'arxiv_nodes',
                 'compare_runs', 'compare_epochs'):
        value = getattr(args, name)
        if value is not None and value < (2 if name == 'repeats' else 1):
            parser.error(f'argument --{name.replace("_", "-")}: must be at '
                         f'least {2 if name == "repeats" else 1}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('argument --device: CUDA is not available')
    s = SimpleNamespace(**MODES['quick' if args.quick else 'full'])
    if args.repeats is not None:
        s.repeats = s.reg_repeats = s.gt_repeats = s.arxiv_repeats = (
            args.repeats)
    if args.epochs is not None:
        s.epochs = s.gt_epochs = args.epochs
    for name in ('width', 'arxiv_nodes', 'compare_runs', 'compare_epochs'):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    if s.width % 8:
        parser.error(f'argument --width: must be a multiple of the 8 heads '
                     f'(got {s.width})')
    s.quick, s.root, s.json = args.quick, args.root, args.json
    s.device = torch.device(args.device or ('cuda' if torch.cuda.is_available()
                                            else 'cpu'))
    if s.json:
        try:
            check_output(s.json, recognise=is_gpu_speed_file, overwrite=True,
                         kind='an output of gpu_speed.py')
        except ValueError as err:
            parser.error(f'argument --json: {err}')
    return s


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    s = parse_args(argv)
    # PyG's example's `float(loss)` warns on newer torch; kept as written:
    warnings.filterwarnings('ignore', 'Converting a tensor with requires_grad')
    try:  # both data sets there before anything is timed
        for name in ('cora', 'minesweeper'):
            load_dataset(name, s.root)
    except DataError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    info = machine(s.device)
    print(f'gpu_speed.py on {s.device}: '
          + (f'{info["gpu"]} (driver {info["driver"]}, CUDA {info["cuda"]}), '
             if s.device.type == 'cuda' else '')
          + f'{info["cpu"]}; torch {torch.__version__}, PyG '
          f'{environment()["torch_geometric"]}; '
          f'{time.strftime("%Y-%m-%d %H:%M")}', flush=True)
    if s.quick:
        print('--quick: small sizes (GT width, arxiv graph, comparison as '
              'shown); the goals are for the full sizes on an H200',
              flush=True)
    out = {}
    steps: List = [
        ('cora', 'Cora epochs: PyG\'s example, train_gat.py none and ct',
         cora_epochs),
        ('regulariser', 'the regulariser alone', None),
        ('gt', f'minesweeper GT width {s.width}', gt_epochs),
        ('arxiv', f'arxiv recipe epochs ({s.arxiv_nodes:,} nodes)',
         arxiv_epochs),
        ('compare', f'--compare none,ct --runs {s.compare_runs}',
         compare_runs),
    ]
    for number, (name, what, step) in enumerate(steps, 1):
        print(f'[{number}/{len(steps)}] {what}', file=sys.stderr, flush=True)
        out[name] = (regulariser_ms(s, out['cora']['graph'],
                                    out['cora']['config'])
                     if name == 'regulariser' else step(s))
        if 'seconds' in out[name]:  # kept in the log if a limit cuts the run
            print(format_rows(ratio_rows(out[name]['seconds']), what),
                  file=sys.stderr, flush=True)
    rows = table_rows(s, out)
    h = headline(out)
    print(f'per epoch: a timed call over its epochs (see --help); median of '
          f'interleaved repetitions on {s.device}')
    print(format_table(rows))
    if s.json:
        write_json(s.json, record(s, argv, out, rows, h))
        print(f'figures written to {s.json}')
    print(last_line(s, h, out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
