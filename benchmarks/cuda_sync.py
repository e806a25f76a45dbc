r"""Checks on a CUDA device that the alignment regulariser (sampling,
projecting the sampled rows, the divergence and its backward pass) never
waits for the GPU: it runs under
:func:`torch.cuda.set_sync_debug_mode('error')`. Exits non-zero on a
synchronization.

    python benchmarks/cuda_sync.py
"""
import argparse
import sys

import torch

from align_gnn import AlignedGATConv, alignment_loss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--divergences', default='ct,adversarial,sinkhorn,mmd')
    parser.add_argument('--nodes', default='5000,100000',
                        help='graph sizes (below and above 65,536 nodes: '
                        'both sampling paths)')
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print('error: needs a CUDA device', file=sys.stderr)
        return 2
    device, failed = torch.device('cuda'), 0
    for num_nodes in map(int, args.nodes.split(',')):
        x = torch.randn(num_nodes, 16, device=device)
        edge_index = torch.randint(0, num_nodes, (2, 4 * num_nodes),
                                   device=device)
        for divergence in args.divergences.split(','):
            conv = AlignedGATConv(16, 8, heads=4,
                                  divergence=divergence).to(device)
            conv(x, edge_index)
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode('error')
            try:
                conv._sample_key_query(x)
                alignment_loss(conv).backward()
                status = 'no host synchronization'
            except RuntimeError as err:
                status, failed = f'SYNCHRONIZES: {err}', failed + 1
            finally:
                torch.cuda.set_sync_debug_mode(0)
            print(f'{num_nodes:>8,} nodes  {divergence:<12}{status}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
