r"""Time and peak memory of one training epoch of ArxivGAT on a random graph
of ogbn-arxiv's size (169,343 nodes, 1,166,243 citations made undirected,
128 features, 40 classes), full-batch against neighbour-sampled minibatches,
for plain and aligned attention. The graph is random (no arXiv data here), so
this measures cost, not accuracy. Each setting runs in its own process so
that peak memory (max RSS) is its own. Minibatch epochs are projected from
the mean time of the first --steps steps (an epoch has about 89 of them at
batch size 1024).

    python benchmarks/bench_arxiv_scale.py
    python benchmarks/bench_arxiv_scale.py --methods none --batch-size 1024
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from align_gnn import training
from align_gnn.config import Config
from align_gnn.divergences import DIVERGENCES

NUM_NODES, NUM_EDGES, NUM_FEATURES, NUM_CLASSES = 169_343, 1_166_243, 128, 40


def random_arxiv(seed: int = 0) -> Data:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(NUM_NODES, (2, NUM_EDGES), generator=gen)
    split = torch.rand(NUM_NODES, generator=gen)
    return Data(x=torch.randn(NUM_NODES, NUM_FEATURES, generator=gen),
                edge_index=to_undirected(edge_index, num_nodes=NUM_NODES),
                y=torch.randint(NUM_CLASSES, (NUM_NODES, ), generator=gen),
                train_mask=split < 0.54, val_mask=(split >= 0.54) &
                (split < 0.72), test_mask=split >= 0.72,
                num_classes=NUM_CLASSES)


def one_setting(method: str, batch_size: int, epochs: int,
                steps: int) -> dict:
    graph = random_arxiv()
    config = Config(dataset='ogbn-arxiv', methods=[method],
                    epochs=epochs, patience=epochs, device='cpu',
                    batch_size=batch_size or None)
    torch.manual_seed(0)
    model = training.make_model(method, graph, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    weight = (config.alignment(method)['align_weight']
              if method in DIVERGENCES else 0.0)
    if batch_size:
        loader = training.neighbor_loader(
            graph, graph.train_mask.nonzero().view(-1), config.fanout,
            batch_size)
    seconds = []
    if batch_size:
        batches = iter(loader)
        for _ in range(steps):
            start = time.perf_counter()
            training.train_epoch_minibatch(model, [next(batches)], optimizer,
                                           weight, torch.device('cpu'))
            seconds.append(time.perf_counter() - start)
        epoch_s = sum(seconds) / steps * len(loader)
    else:
        for _ in range(epochs):
            start = time.perf_counter()
            training.train_epoch(model, graph, optimizer, weight)
            seconds.append(time.perf_counter() - start)
        epoch_s = min(seconds)
    start = time.perf_counter()
    training.evaluate(model, graph)
    return dict(method=method, batch_size=batch_size, epoch_s=epoch_s,
                eval_s=time.perf_counter() - start,
                peak_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss /
                2**20)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--methods', default='none,ct')
    parser.add_argument('--batch-size', type=int, default=1024,
                        help='minibatch size to compare with full-batch')
    parser.add_argument('--epochs', type=int, default=2,
                        help='full-batch epochs (the best is reported)')
    parser.add_argument('--steps', type=int, default=5,
                        help='minibatch steps timed to project an epoch')
    parser.add_argument('--one', nargs=2, metavar=('METHOD', 'BATCH_SIZE'),
                        help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_setting(args.one[0], int(args.one[1]),
                                     args.epochs, args.steps)))
        return
    rows = []
    for method in args.methods.split(','):
        for batch_size in (0, args.batch_size):
            out = subprocess.run(
                [sys.executable, __file__, '--epochs', str(args.epochs),
                 '--steps', str(args.steps), '--one', method,
                 str(batch_size)],
                check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.splitlines()[-1]))
    print(f'ArxivGAT on a random graph of ogbn-arxiv\'s size, CPU, '
          f'{torch.get_num_threads()} threads; full-batch: best of '
          f'{args.epochs} epoch(s); minibatch: epoch projected from '
          f'{args.steps} steps:')
    print(f'{"method":<8}{"training":>16}{"s/epoch":>10}{"eval s":>9}'
          f'{"peak GiB":>10}')
    for row in rows:
        mode = (f'batches of {row["batch_size"]}' if row['batch_size'] else
                'full-batch')
        print(f'{row["method"]:<8}{mode:>16}{row["epoch_s"]:>10.1f}'
              f'{row["eval_s"]:>9.1f}{row["peak_gib"]:>10.2f}')


if __name__ == '__main__':
    main()
