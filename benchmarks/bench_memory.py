r"""Memory of the alignment regulariser of one layer (sampling, projecting
the sampled rows, the divergence) at several sample sizes m: the bytes its
autograd graph holds until the backward pass (saved tensors, counted by
:func:`torch.autograd.graph.saved_tensors_hooks`) and, on CUDA, the peak
allocation during its forward and backward passes.

Prediction: O(heads * m^2) -- a few (heads, m, m) cost or plan matrices --
so 4x the samples costs 16x the memory, independent of the graph.

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --samples 256,1024 --device cuda
"""
import argparse

import torch

from align_gnn import AlignedGATConv
from align_gnn.divergences import DIVERGENCES


def saved_bytes(fn) -> int:
    r"""Bytes of the distinct tensors that :obj:`fn`'s autograd graph
    saves for the backward pass."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(storages.values()), out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--samples', default='256,1024',
                        help='sample sizes m, comma-separated')
    parser.add_argument('--divergences', default=','.join(DIVERGENCES))
    parser.add_argument('--nodes', type=int, default=100_000)
    parser.add_argument('--features', type=int, default=128)
    parser.add_argument('--heads', type=int, default=8)
    parser.add_argument('--channels', type=int, default=8)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    samples = [int(m) for m in args.samples.split(',')]

    x = torch.randn(args.nodes, args.features, device=device)
    unit = 4 * args.heads  # bytes of one float32 per head
    print(f'one layer, {args.heads} heads x {args.channels} channels, '
          f'{args.nodes:,} nodes, {device}; "per H*m^2" is the memory in '
          f'float32 (heads, m, m) matrices')
    header = (f'{"divergence":<12}{"m":>6}{"saved MiB":>11}'
              f'{"per H*m^2":>11}{"vs smallest m":>15}'
              + (f'{"peak MiB":>10}' if device.type == 'cuda' else ''))
    print(header)
    print('-' * len(header))
    for name in args.divergences.split(','):
        first = None
        for m in samples:
            torch.manual_seed(0)
            conv = AlignedGATConv(args.features, args.channels,
                                  heads=args.heads, divergence=name,
                                  num_samples=m).to(device)

            def regulariser():
                conv._sample_key_query(x)
                return conv.get_alignment_loss()

            regulariser().backward()  # warm-up: e.g. cuBLAS' workspace
            conv.zero_grad()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)

            held, loss = saved_bytes(regulariser)
            loss.backward()
            first = first or held
            line = (f'{name:<12}{m:>6}{held / 2**20:>11.2f}'
                    f'{held / (unit * m * m):>11.2f}{held / first:>14.1f}x')
            if device.type == 'cuda':
                peak = torch.cuda.max_memory_allocated(device) - base
                line += f'{peak / 2**20:>10.2f}'
            print(line)


if __name__ == '__main__':
    main()
