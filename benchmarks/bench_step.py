r"""One full training step (forward, loss, backward, Adam step) of the
two-layer GAT of :file:`train_gat.py` on a Planetoid data set, for every
method, against plain GAT; optionally each also under :func:`torch.compile`,
with its divergence fused, or with the divergences of another file.

Goal: CT alignment with m = 256 costs at most 1.25 plain GAT steps.

    python benchmarks/bench_step.py --dataset cora
    python benchmarks/bench_step.py --methods none,ct --compile
    git show REV:align_gnn/divergences.py > /tmp/before.py  # REV: single file
    python benchmarks/bench_step.py --fused --before /tmp/before.py
"""
import argparse
import importlib.util
import time

import torch

from align_gnn import loops
from align_gnn.config import default_hyperparameters
from align_gnn.conv import AlignedAttention
from align_gnn.data import DATASETS, FEATURES, load_dataset, prepare_data
from align_gnn.divergences import DIVERGENCES
from align_gnn.models import METHODS, build_model
from timing import format_rows, measure, ratio_rows


def load_module(path: str):
    spec = importlib.util.spec_from_file_location('before', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def swap_divergences(model: torch.nn.Module, method: str, divergences):
    r"""Replaces every aligned layer's divergence by the one that
    :obj:`divergences.resolve_divergence` builds, with the same weights."""
    for conv in model.modules():
        if isinstance(conv, AlignedAttention) and conv.divergence is not None:
            divergence = divergences.resolve_divergence(
                method, conv.heads, conv.out_channels, conv.rho)
            divergence.load_state_dict(conv.divergence.state_dict())
            conv.divergence = divergence


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
    parser.add_argument('--fused', action='store_true',
                        help='also time every aligned method with its '
                        'divergence fused (fused=True; the warm-up of '
                        'torch.compile is printed)')
    parser.add_argument('--before', metavar='FILE',
                        help='also time every aligned method with the '
                        'divergences of FILE (align_gnn/divergences.py of '
                        'a commit before it became a package)')
    parser.add_argument('--repeats', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    graph = load_dataset(args.dataset, args.root)
    data = prepare_data(graph, args.features).to(device)
    hyper = default_hyperparameters(args.dataset)
    before = load_module(args.before) if args.before else None
    variants = ['', 'fused', 'before']
    candidates = {}
    for method in args.methods.split(','):
        aligned = method in DIVERGENCES
        for variant in variants:
            if variant == 'fused' and not (aligned and args.fused):
                continue
            if variant == 'before' and not (aligned and before):
                continue
            for compiled in (False, True) if args.compile else (False, ):
                torch.manual_seed(0)
                model = build_model(
                    method, graph.num_features, graph.num_classes,
                    hyper['output_heads'], args.align_samples).to(device)
                if variant == 'fused':
                    for module in model.modules():
                        if hasattr(module, 'fused'):
                            module.fused = True
                elif variant == 'before':
                    swap_divergences(model, method, before)
                optimizer = torch.optim.Adam(model.parameters(),
                                             lr=hyper['lr'])
                if compiled:
                    model = torch.compile(model)
                weight = args.align_weight if aligned else 0.0
                name = method + ''.join(
                    f' ({tag})' for tag in (variant, compiled and 'compiled')
                    if tag)

                def step(model=model, optimizer=optimizer, weight=weight):
                    return loops.train_epoch(model, data, optimizer,
                                                weight)

                if variant == 'fused':
                    start = time.perf_counter()
                    step()
                    print(f'{name}: first step (warm-up) '
                          f'{time.perf_counter() - start:.1f} s')
                candidates[name] = step

    seconds = measure(candidates, args.repeats, args.warmup, device)
    print(format_rows(
        ratio_rows(seconds),
        f'training step, {args.dataset} ({args.features} features), '
        f'm = {args.align_samples}, {args.repeats} repetitions, {device}',
        goal='ct <= 1.25'))


if __name__ == '__main__':
    main()
