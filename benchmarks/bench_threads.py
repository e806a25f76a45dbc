r"""The price of reproducibility across thread counts: one training step of
the Planetoid GAT (plain and aligned) with MKL's products on one thread
(what training does, see :mod:`align_gnn.reproducibility`) against MKL on
all of PyTorch's threads, interleaved in one process.

    python benchmarks/bench_threads.py --dataset cora --methods none,ct
"""
import argparse

import torch

from align_gnn import loops
from align_gnn.config import default_hyperparameters
from align_gnn.data import FEATURES, load_dataset, prepare_data
from align_gnn.divergences import DIVERGENCES
from align_gnn.models import build_model
from align_gnn.reproducibility import cpu_model, single_threaded_blas
from timing import format_rows, measure, ratio_rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--dataset', default='cora')
    parser.add_argument('--root', default=None, help='data root')
    parser.add_argument('--methods', default='none,ct',
                        help='comma-separated')
    parser.add_argument('--features', default='sparse',
                        choices=FEATURES)
    parser.add_argument('--align-samples', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=5)
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    if not single_threaded_blas():
        raise SystemExit('error: this PyTorch does not use MKL; nothing to '
                         'measure')

    graph = load_dataset(args.dataset, args.root)
    data = prepare_data(graph, args.features)
    hyper = default_hyperparameters(args.dataset)

    def step(model, optimizer, weight, blas_threads):
        if blas_threads == 1:
            single_threaded_blas()
        else:
            torch.set_num_threads(threads)  # MKL on all threads again
        loops.train_epoch(model, data, optimizer, weight)

    candidates = {}
    for method in args.methods.split(','):
        torch.manual_seed(0)
        model = build_model(method, graph.num_features,
                                     graph.num_classes, hyper['output_heads'],
                                     args.align_samples)
        optimizer = torch.optim.Adam(model.parameters(), lr=hyper['lr'])
        weight = 0.1 if method in DIVERGENCES else 0.0
        for blas in (threads, 1):
            candidates[f'{method}, MKL on {blas} thread(s)'] = (
                lambda m=model, o=optimizer, w=weight, b=blas: step(
                    m, o, w, b))

    seconds = measure(candidates, args.repeats, args.warmup)
    print(format_rows(
        ratio_rows(seconds),
        f'training step, {args.dataset} ({args.features} features), '
        f'm = {args.align_samples}, {args.repeats} repetitions, '
        f'{cpu_model()}, {threads} PyTorch threads'))


if __name__ == '__main__':
    main()
