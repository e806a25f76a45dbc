r"""Forward + backward of one attention layer: :class:`AlignedGATConv` with
alignment off (:obj:`divergence=None`) against PyG's :class:`GATConv` with the
same weights, and with CT alignment on for reference, on generated graphs.

Goal: alignment off costs nothing (ratio <= 1.02).

    python benchmarks/bench_layer.py
    python benchmarks/bench_layer.py --sizes 2708:10556:1433 --repeats 200
"""
import argparse

import torch
from torch_geometric.nn import GATConv

from align_gnn import AlignedGATConv, alignment_loss
from timing import format_rows, measure, ratio_rows


def parse_size(text: str):
    nodes, edges, features = (int(value) for value in text.split(':'))
    return nodes, edges, features


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--sizes', type=lambda text: [parse_size(s) for s in text.split(',')],
        default='2708:10556:1433,200000:2000000:128',
        help='graphs as NODES:EDGES:FEATURES, comma-separated (default: '
        "Cora's size, and 200k nodes / 2M edges)")
    parser.add_argument('--heads', type=int, default=8)
    parser.add_argument('--channels', type=int, default=8,
                        help='channels per head')
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed repetitions per candidate (default: 100 '
                        'below 1M edges, else 10)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    for nodes, edges, features in args.sizes:
        torch.manual_seed(0)
        x = torch.randn(nodes, features, device=device)
        edge_index = torch.randint(nodes, (2, edges), device=device)
        gat = GATConv(features, args.channels, heads=args.heads).to(device)
        off = AlignedGATConv(features, args.channels, heads=args.heads,
                             divergence=None).to(device)
        unchecked = AlignedGATConv(features, args.channels, heads=args.heads,
                                   divergence=None).to(device)
        unchecked.check_finite = False
        ct = AlignedGATConv(features, args.channels, heads=args.heads,
                            divergence='ct').to(device)
        off.load_state_dict(gat.state_dict())
        unchecked.load_state_dict(gat.state_dict())
        ct.load_state_dict(gat.state_dict(), strict=False)

        def step(conv, aligned=False):
            def call():
                conv.zero_grad(set_to_none=True)
                loss = conv(x, edge_index).square().mean()
                if aligned:
                    loss = loss + 0.1 * alignment_loss(conv)
                loss.backward()

            return call

        repeats = args.repeats or (100 if edges < 1_000_000 else 10)
        seconds = measure(
            {
                'GATConv': step(gat),
                'AlignedGATConv(divergence=None)': step(off),
                '  the same, check_finite=False': step(unchecked),
                'AlignedGATConv(divergence="ct")': step(ct, aligned=True),
            }, repeats, args.warmup, device)
        print(format_rows(
            ratio_rows(seconds),
            f'forward+backward, {nodes:,} nodes, {edges:,} edges, '
            f'{features} features, {args.heads} heads x {args.channels}, '
            f'{repeats} repetitions, {device}',
            goal='divergence=None <= 1.02'))
        print()


if __name__ == '__main__':
    main()
