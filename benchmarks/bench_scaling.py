r"""How the alignment regulariser scales with the graph: full-batch training
steps of a two-layer GAT on generated graphs of growing size, plain
(:obj:`divergence=None`) and aligned with m sampled keys and queries, and
the regulariser's own work (sampling, projecting the sampled rows, the
divergence and its backward pass) timed alone.

Goals: the regulariser's share of a step on 1M nodes / 10M edges is at most
3%; step time grows linearly in the edges (log-log slope 0.9-1.1), with
alignment as without.

    python benchmarks/bench_scaling.py
    python benchmarks/bench_scaling.py --sizes 10000:100000,100000:1000000
"""
import argparse
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from align_gnn import AlignedGATConv, alignment_loss
from align_gnn.conv import AlignedAttention
from align_gnn.models import GAT
from timing import measure


def parse_sizes(text: str):
    return [tuple(int(v) for v in size.split(':')) for size in text.split(',')]


def regulariser(model: torch.nn.Module,
                optimizer: Optional[torch.optim.Optimizer] = None,
                weight: float = 1.0) -> Callable[[], None]:
    r"""The alignment regulariser of :obj:`model` alone, as a callable:
    from now on every aligned layer's input is recorded (detached) at each
    forward pass, so run one training forward pass before the first call;
    each call then samples and projects keys and queries from the recorded
    inputs, computes :func:`~align_gnn.alignment_loss` (times
    :obj:`weight`) and its backward pass and, with :obj:`optimizer` (e.g.
    over the adversaries' parameters), zeroes its gradients first and takes
    its step."""
    inputs = {}

    def record(conv, args):
        x = args[0]
        inputs[conv] = (x.detach() if isinstance(x, torch.Tensor) else
                        tuple(v if v is None else v.detach() for v in x))

    for conv in model.modules():
        if isinstance(conv, AlignedAttention) and conv.divergence is not None:
            conv.register_forward_pre_hook(record)

    def call():
        if optimizer is not None:
            optimizer.zero_grad()
        for conv, x in inputs.items():
            conv._sample_key_query(x)
        loss = alignment_loss(model)
        (loss if weight == 1.0 else weight * loss).backward()
        if optimizer is not None:
            optimizer.step()

    return call


def measure_size(num_nodes: int, num_edges: int,
                 args: argparse.Namespace) -> Dict[str, np.ndarray]:
    r"""Seconds of a plain step, an aligned step and the regulariser alone
    on a random graph with :obj:`num_nodes` nodes and :obj:`num_edges`
    edges."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(num_nodes, args.features, device=device)
    edge_index = torch.randint(num_nodes, (2, num_edges), device=device)
    y = torch.randint(args.classes, (num_nodes, ), device=device)

    def model_with(divergence):
        torch.manual_seed(0)

        def conv(*conv_args, **kwargs):
            return AlignedGATConv(*conv_args, divergence=divergence,
                                  num_samples=args.align_samples, **kwargs)

        model = GAT(args.features, args.classes, conv).to(device)
        return model, torch.optim.Adam(model.parameters(), lr=0.005)

    def step(model, optimizer):
        def call():
            model.train()
            optimizer.zero_grad()
            out = model(x, edge_index)
            loss = F.cross_entropy(out, y) + 0.1 * alignment_loss(model)
            loss.backward()
            optimizer.step()

        return call

    plain, aligned = model_with(None), model_with(args.divergence)
    alone = regulariser(aligned[0])
    step(*aligned)()  # records the layer inputs
    return measure(
        dict(plain=step(*plain), aligned=step(*aligned),
             regulariser=alone), args.repeats, args.warmup, device)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--sizes', type=parse_sizes,
        default='100000:1000000,300000:3000000,1000000:10000000',
        help='graphs as NODES:EDGES, comma-separated, smallest first')
    parser.add_argument('--features', type=int, default=128)
    parser.add_argument('--classes', type=int, default=16)
    parser.add_argument('--divergence', default='ct')
    parser.add_argument('--align-samples', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)

    print(f'two-layer GAT (8 heads x 8, {args.features} features, '
          f'{args.classes} classes), divergence={args.divergence!r}, '
          f'm = {args.align_samples}, median of {args.repeats}, '
          f'{args.device}')
    header = (f'{"nodes":>10} {"edges":>11} {"plain step s":>13} '
              f'{"aligned step s":>15} {"ratio":>6} {"regulariser ms":>15} '
              f'{"share":>6}')
    print(header)
    print('-' * len(header))
    edges, plain_times, aligned_times = [], [], []
    for num_nodes, num_edges in args.sizes:
        seconds = measure_size(num_nodes, num_edges, args)
        plain, aligned, reg = (float(np.median(seconds[name]))
                               for name in ('plain', 'aligned',
                                            'regulariser'))
        ratio = float(np.median(seconds['aligned'] / seconds['plain']))
        print(f'{num_nodes:>10,} {num_edges:>11,} {plain:>13.3f} '
              f'{aligned:>15.3f} {ratio:>6.3f} {1e3 * reg:>15.2f} '
              f'{100 * reg / plain:>5.2f}%')
        edges.append(num_edges)
        plain_times.append(plain)
        aligned_times.append(aligned)

    if len(edges) >= 2:
        for name, times in (('plain', plain_times),
                            ('aligned', aligned_times)):
            slope = np.polyfit(np.log(edges), np.log(times), 1)[0]
            print(f'log-log slope of {name} step time vs edges: '
                  f'{slope:.3f} (goal 0.9-1.1)')
    print('share = regulariser time / plain step time (goal <= 3% at 1M '
          'nodes / 10M edges)')


if __name__ == '__main__':
    main()
