r"""Planetoid epochs with the bag-of-words features stored dense or as a
sparse CSR matrix: epoch time (training step + evaluation) side by side,
then full runs on the same seeds in both layouts to check that accuracy is
unchanged (paired tests).

    python benchmarks/bench_features.py --dataset citeseer
    python benchmarks/bench_features.py --dataset cora --runs 10
"""
import argparse

import torch

from align_gnn import loops, training
from align_gnn.config import Config, default_hyperparameters
from align_gnn.data import DATASETS, FEATURES, load_dataset, prepare_data
from align_gnn.divergences import DIVERGENCES
from align_gnn.models import build_model
from align_gnn.results import format_table, summarize
from timing import format_rows, measure, ratio_rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--dataset', default='citeseer',
                        choices=list(DATASETS))
    parser.add_argument('--root', default=None, help='data root')
    parser.add_argument('--methods', default='none,ct',
                        help='comma-separated methods to time and run')
    parser.add_argument('--repeats', type=int, default=50,
                        help='timed epochs per candidate')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--runs', type=int, default=5,
                        help='seeded runs per method and layout for the '
                        'accuracy check (0: timing only)')
    parser.add_argument('--epochs', type=int, default=1000)
    parser.add_argument('--patience', type=int, default=100)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    methods = args.methods.split(',')

    graph = load_dataset(args.dataset, args.root)
    hyper = default_hyperparameters(args.dataset)
    density = graph.x.count_nonzero() / graph.x.numel()
    candidates = {}
    for method in methods:
        for features in FEATURES:
            data = prepare_data(graph, features).to(device)
            torch.manual_seed(0)
            model = build_model(method, graph.num_features,
                                graph.num_classes,
                                hyper['output_heads']).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=hyper['lr'])
            weight = 0.1 if method in DIVERGENCES else 0.0

            def epoch(model=model, data=data, optimizer=optimizer,
                      weight=weight):
                loops.train_epoch(model, data, optimizer, weight)
                loops.evaluate(model, data)

            candidates[f'{method}, {features}'] = epoch
    seconds = measure(candidates, args.repeats, args.warmup, device)
    print(format_rows(
        ratio_rows(seconds),
        f'epoch (step + evaluation), {args.dataset}: '
        f'{graph.num_features:,} features, {100 * density:.2f}% non-zero, '
        f'{args.repeats} repetitions, {device}'))

    if args.runs == 0:
        return
    print()
    for method in methods:
        results = []
        for features in FEATURES:
            config = Config(args.dataset, [method], runs=args.runs,
                            epochs=args.epochs,
                            patience=args.patience,
                            device=args.device, features=features)
            for seed in range(args.runs):
                result = training.run(graph, method, seed, config)
                result.method = f'{method}, {features}'
                results.append(result)
        print(format_table(summarize(results)))
        print()


if __name__ == '__main__':
    main()
