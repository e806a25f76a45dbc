r"""One full training step (forward, loss, backward, Adam step) of the
two-layer GAT of :file:`train_gat.py` on a Planetoid data set, for every
method, against plain GAT; optionally each also under :func:`torch.compile`.

Goal: CT alignment with m = 256 costs at most 1.25 plain GAT steps.

    python benchmarks/bench_step.py --dataset cora
    python benchmarks/bench_step.py --methods none,ct --compile
"""
import argparse

import torch

from align_gnn import training
from align_gnn.config import default_hyperparameters
from align_gnn.data import DATASETS, FEATURES, load_dataset, prepare_data
from align_gnn.divergences import DIVERGENCES
from align_gnn.models import METHODS, build_model
from timing import format_rows, measure, ratio_rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--dataset', default='cora',
                        choices=list(DATASETS))
    parser.add_argument('--root', default=None, help='data root')
    parser.add_argument('--methods', default=','.join(METHODS),
                        help='comma-separated; the first is the reference')
    parser.add_argument('--align-samples', type=int, default=256)
    parser.add_argument('--align-weight', type=float, default=0.1)
    parser.add_argument('--features', default='sparse',
                        choices=FEATURES,
                        help='node feature layout')
    parser.add_argument('--compile', action='store_true',
                        help='also time every method under torch.compile')
    parser.add_argument('--repeats', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    graph = load_dataset(args.dataset, args.root)
    data = prepare_data(graph, args.features).to(device)
    hyper = default_hyperparameters(args.dataset)
    candidates = {}
    for method in args.methods.split(','):
        for compiled in (False, True) if args.compile else (False, ):
            torch.manual_seed(0)
            model = build_model(method, graph.num_features,
                                graph.num_classes,
                                hyper['output_heads'],
                                args.align_samples).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=hyper['lr'])
            if compiled:
                model = torch.compile(model)
            weight = (args.align_weight
                      if method in DIVERGENCES else 0.0)
            name = method + (' (compiled)' if compiled else '')
            candidates[name] = (lambda model=model, optimizer=optimizer,
                                weight=weight: training.train_epoch(
                                    model, data, optimizer, weight))

    seconds = measure(candidates, args.repeats, args.warmup, device)
    print(format_rows(
        ratio_rows(seconds),
        f'training step, {args.dataset} ({args.features} features), '
        f'm = {args.align_samples}, {args.repeats} repetitions, {device}',
        goal='ct <= 1.25'))


if __name__ == '__main__':
    main()
