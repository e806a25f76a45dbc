r"""Time and peak memory of one training epoch of the ogbn-arxiv GAT (DGL's
leaderboard recipe, :class:`~align_gnn.models.ArxivGAT`) on a random graph
of ogbn-arxiv's size (169,343 nodes, 1,166,243 citations made undirected,
128 features, 40 classes), full-batch (labels as input, one training step
and one evaluation per epoch, as :func:`~align_gnn.training.fit` runs them)
against neighbour-sampled minibatches (labels not input), for plain and
aligned attention, on the CPU or on CUDA. The graph is random (no arXiv data
here), so this measures cost, not accuracy. Each setting runs in its own
process so that peak memory (max RSS on the CPU, the allocator's peak on
CUDA) is its own. Minibatch epochs are projected from the mean time of the
first --steps steps (an epoch has about 89 of them at batch size 1024).
Prints the expected wall time of the 10-seed, 2000-epoch submission.

    python benchmarks/bench_arxiv_scale.py --methods none --batch-size 0
    python benchmarks/bench_arxiv_scale.py --device cuda --epochs 5
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Callable, Tuple

import torch

from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from align_gnn import loops, training
from align_gnn.config import Config, resolve_device
from align_gnn.divergences import DIVERGENCES
from align_gnn.models import num_parameters
from align_gnn.recipe import LabelInput, loss_function
from align_gnn.reproducibility import single_threaded_blas
from align_gnn.results import hardware

NUM_NODES, NUM_EDGES, NUM_FEATURES, NUM_CLASSES = 169_343, 1_166_243, 128, 40


def random_arxiv(num_nodes: int = NUM_NODES, num_edges: int = NUM_EDGES,
                 seed: int = 0) -> Data:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(num_nodes, (2, num_edges), generator=gen)
    split = torch.rand(num_nodes, generator=gen)
    return Data(x=torch.randn(num_nodes, NUM_FEATURES, generator=gen),
                edge_index=to_undirected(edge_index, num_nodes=num_nodes),
                y=torch.randint(NUM_CLASSES, (num_nodes, ), generator=gen),
                train_mask=split < 0.54, val_mask=(split >= 0.54) &
                (split < 0.72), test_mask=split >= 0.72,
                num_classes=NUM_CLASSES)


def recipe(method: str, graph: Data, device: torch.device,
           batch_size: int = 0) -> SimpleNamespace:
    r"""What :func:`~align_gnn.training.fit` sets up for the recipe's model
    of :obj:`method` (built from seed 0) on :obj:`graph`: the config, the
    model and its optimizer on :obj:`device`, the alignment weight, the
    labels as input (none with :obj:`batch_size`), the loss and the graph
    on :obj:`device`."""
    config = Config(dataset='ogbn-arxiv', methods=[method],
                    device=device.type, batch_size=batch_size or None)
    torch.manual_seed(0)
    model = training.make_model(method, graph, config).to(device)
    return SimpleNamespace(
        config=config, model=model,
        optimizer=training.make_optimizer(model, config, method),
        weight=(config.alignment(method)['align_weight']
                if method in DIVERGENCES else 0.0),
        labels=(None if config.labels == 'none' else
                LabelInput(graph.num_classes)),
        loss_fn=loss_function(config.loss), data=graph.to(device))


def full_batch_epoch(setting: SimpleNamespace
                     ) -> Tuple[Callable[[], None], Callable[[], None]]:
    r"""The two halves of a full-batch epoch of :obj:`setting` (see
    :func:`recipe`): the training step (labels as input) and the evaluation
    on the full graph, as :func:`~align_gnn.training.fit` runs them."""
    s = setting

    def train():
        loops.train_epoch(s.model, s.data, s.optimizer, s.weight, s.labels,
                          s.loss_fn)

    def evaluate():
        loops.evaluate(s.model, s.data, None, s.labels, s.loss_fn)

    return train, evaluate


def one_setting(method: str, batch_size: int, epochs: int, steps: int,
                device: str, num_nodes: int, num_edges: int) -> dict:
    single_threaded_blas()  # as training.fit runs
    device = resolve_device(device)
    graph = random_arxiv(num_nodes, num_edges)
    s = recipe(method, graph, device, batch_size)
    train, evaluate = full_batch_epoch(s)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    train_s, eval_s = [], []
    if batch_size:
        loader = loops.neighbor_loader(
            graph, graph.train_mask.nonzero().view(-1), s.config.fanout,
            batch_size)
        batches = iter(loader)
        for _ in range(steps):
            start = time.perf_counter()
            loops.train_epoch_minibatch(s.model, [next(batches)],
                                        s.optimizer, s.weight, device,
                                        s.loss_fn)
            sync()
            train_s.append(time.perf_counter() - start)
        train_s = [sum(train_s) / steps * len(loader)]
        epochs = 1
    for _ in range(epochs):
        if not batch_size:
            start = time.perf_counter()
            train()
            sync()
            train_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluate()
        sync()
        eval_s.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return dict(method=method, batch_size=batch_size, train_s=min(train_s),
                eval_s=min(eval_s), epoch_s=min(train_s) + min(eval_s),
                peak_gib=peak / 2**30, params=num_parameters(s.model),
                hardware=hardware(str(device)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--methods', default='none,ct')
    parser.add_argument('--batch-size', type=int, default=1024,
                        help='minibatch size to compare with full-batch '
                        '(0: full-batch only)')
    parser.add_argument('--epochs', type=int, default=2,
                        help='full-batch epochs (the best is reported)')
    parser.add_argument('--steps', type=int, default=5,
                        help='minibatch steps timed to project an epoch')
    parser.add_argument('--device', default='auto',
                        choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--nodes', type=int, default=NUM_NODES)
    parser.add_argument('--edges', type=int, default=NUM_EDGES,
                        help='directed edges drawn, then made undirected')
    parser.add_argument('--one', nargs=2, metavar=('METHOD', 'BATCH_SIZE'),
                        help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_setting(args.one[0], int(args.one[1]),
                                     args.epochs, args.steps, args.device,
                                     args.nodes, args.edges)))
        return
    rows = []
    for method in args.methods.split(','):
        for batch_size in dict.fromkeys((0, args.batch_size)):
            out = subprocess.run(
                [sys.executable, __file__, '--epochs', str(args.epochs),
                 '--steps', str(args.steps), '--device', args.device,
                 '--nodes', str(args.nodes), '--edges', str(args.edges),
                 '--one', method, str(batch_size)],
                check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.splitlines()[-1]))
    print(f'ogbn-arxiv GAT recipe on a random graph of {args.nodes:,} '
          f'nodes and {args.edges:,} edges, {rows[0]["hardware"]}; '
          f'full-batch: best of {args.epochs} '
          f'epoch(s) (a training step with labels as input and an '
          f'evaluation); minibatch: epoch projected from {args.steps} steps:')
    print(f'{"method":<8}{"#params":>11}{"training":>18}{"train s":>9}'
          f'{"eval s":>8}{"s/epoch":>9}{"peak GiB":>10}{"10 x 2000 epochs":>18}')
    for row in rows:
        mode = (f'batches of {row["batch_size"]}' if row['batch_size'] else
                'full-batch')
        total = 10 * 2000 * row['epoch_s'] / 3600
        print(f'{row["method"]:<8}{row["params"]:>11,}{mode:>18}'
              f'{row["train_s"]:>9.2f}{row["eval_s"]:>8.2f}'
              f'{row["epoch_s"]:>9.2f}{row["peak_gib"]:>10.2f}'
              f'{total:>16.1f} h')


if __name__ == '__main__':
    main()
