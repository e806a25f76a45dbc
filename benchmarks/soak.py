r"""Numerical soak: many Adam steps of one :class:`AlignedGATConv` per
divergence, on the alignment loss alone and on alignment + a task loss
(cross-entropy on random labels), for input regimes that stress the
divergences: random features, features scaled by 1e4 and by 1e-4, all-zero
feature rows (every other row, and all rows), duplicated points (all nodes
identical) and a single-node graph. After every step the loss, every
gradient and every parameter must be finite; the first step where one is not
is reported as FAILED. The exit code is non-zero if anything failed.

    python benchmarks/soak.py
    python benchmarks/soak.py --steps 200 --divergences ct,mmd
"""
import argparse
import math
import sys
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from align_gnn import AlignedGATConv
from align_gnn.divergences import DIVERGENCES

REGIMES = ('random', 'scale1e4', 'scale1e-4', 'zero-rows', 'all-zero',
           'duplicated', 'single-node')
OBJECTIVES = ('align', 'align+task')


def make_graph(regime: str, num_nodes: int, features: int,
               generator: torch.Generator):
    r"""Node features :obj:`(N, F)` and a random :obj:`edge_index` for
    :obj:`regime`."""
    if regime == 'single-node':
        num_nodes = 1
    x = torch.randn(num_nodes, features, generator=generator)
    if regime == 'scale1e4':
        x = x * 1e4
    elif regime == 'scale1e-4':
        x = x * 1e-4
    elif regime == 'zero-rows':
        x[::2] = 0  # every other row
    elif regime == 'all-zero':
        x = torch.zeros_like(x)
    elif regime == 'duplicated':
        x = x[:1].expand(num_nodes, features).clone()
    elif regime not in ('random', 'single-node'):
        raise ValueError(f'unknown regime {regime!r}')
    if num_nodes == 1:
        edge_index = torch.empty(2, 0, dtype=torch.long)
    else:
        edge_index = torch.randint(num_nodes, (2, 4 * num_nodes),
                                   generator=generator)
    return x, edge_index


def soak(divergence: str, regime: str, objective: str = 'align',
         steps: int = 10_000, num_nodes: int = 24, features: int = 8,
         heads: int = 2, channels: int = 4, num_samples: int = 16,
         lr: float = 0.01, lam: float = 1.0, seed: int = 0) -> Dict:
    r"""Runs :obj:`steps` Adam steps and returns :obj:`dict(steps, loss,
    max_param, failed)`, where :obj:`failed` names the first step (1-based)
    and what went non-finite, or is :obj:`None`."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, edge_index = make_graph(regime, num_nodes, features, generator)
    classes = heads * channels
    y = torch.randint(classes, (x.size(0), ), generator=generator)
    conv = AlignedGATConv(features, channels, heads=heads,
                          divergence=divergence, num_samples=num_samples)
    params = [p for p in conv.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    failed: Optional[str] = None
    loss_value = math.nan
    done = 0
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        out = conv(x, edge_index)
        loss = conv.get_alignment_loss()
        if objective == 'align+task':
            loss = F.cross_entropy(out, y) + lam * loss
        elif objective != 'align':
            raise ValueError(f'unknown objective {objective!r}')
        loss.backward()
        grads = [p.grad for p in params if p.grad is not None]
        # One host synchronisation per step for all the checks:
        checks = torch.stack([
            torch.isfinite(loss),
            torch.stack([torch.isfinite(g).all() for g in grads]).all(),
        ])
        if not bool(checks.all()):
            what = 'loss' if not bool(checks[0]) else 'gradient'
            failed = f'{what} at step {step}'
            loss_value = float(loss)
            break
        optimizer.step()
        if not bool(torch.stack([torch.isfinite(p).all()
                                 for p in params]).all()):
            failed = f'parameter at step {step}'
            loss_value = float(loss)
            break
        loss_value = float(loss.detach())
        done = step
    max_param = max(float(p.detach().abs().max()) for p in params)
    return dict(steps=done, loss=loss_value, max_param=max_param,
                failed=failed)


def format_table(rows: List[Dict]) -> str:
    header = (f'{"regime":<12}{"objective":<12}{"divergence":<12}'
              f'{"steps":>7}{"final loss":>13}{"max |param|":>13}  status')
    lines = [header, '-' * len(header)]
    for row in rows:
        status = 'ok' if row['failed'] is None else f'FAILED: {row["failed"]}'
        lines.append(f'{row["regime"]:<12}{row["objective"]:<12}'
                     f'{row["divergence"]:<12}{row["steps"]:>7}'
                     f'{row["loss"]:>13.4g}{row["max_param"]:>13.4g}  '
                     f'{status}')
    return '\n'.join(lines)


def run_all(divergences, regimes, objectives, steps: int, verbose=True,
            **kwargs) -> List[Dict]:
    rows = []
    for regime in regimes:
        for objective in objectives:
            for name in divergences:
                start = time.perf_counter()
                result = soak(name, regime, objective, steps, **kwargs)
                result.update(regime=regime, objective=objective,
                              divergence=name,
                              seconds=time.perf_counter() - start)
                rows.append(result)
                if verbose:  # progress, and the rows of an unfinished run
                    print(f'# {format_table([result]).splitlines()[-1]}  '
                          f'({result["seconds"]:.1f} s)', file=sys.stderr,
                          flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--steps', type=int, default=10_000,
                        help='optimisation steps per regime, objective and '
                        'divergence')
    parser.add_argument('--divergences', default=','.join(DIVERGENCES))
    parser.add_argument('--regimes', default=','.join(REGIMES))
    parser.add_argument('--objectives', default=','.join(OBJECTIVES))
    parser.add_argument('--nodes', type=int, default=24)
    parser.add_argument('--features', type=int, default=8)
    parser.add_argument('--heads', type=int, default=2)
    parser.add_argument('--channels', type=int, default=4)
    parser.add_argument('--num-samples', type=int, default=16)
    parser.add_argument('--lr', type=float, default=0.01,
                        help='Adam learning rate')
    parser.add_argument('--lam', type=float, default=1.0,
                        help='weight of the alignment loss next to the task '
                        'loss')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    rows = run_all(args.divergences.split(','), args.regimes.split(','),
                   args.objectives.split(','), args.steps,
                   num_nodes=args.nodes, features=args.features,
                   heads=args.heads, channels=args.channels,
                   num_samples=args.num_samples, lr=args.lr, lam=args.lam,
                   seed=args.seed)
    print(f'{args.steps} Adam steps (lr {args.lr}) of AlignedGATConv('
          f'{args.features}, {args.channels}, heads={args.heads}, '
          f'num_samples={args.num_samples}) on {args.nodes} nodes')
    print(format_table(rows))
    failures = sum(row['failed'] is not None for row in rows)
    print(f'{failures} of {len(rows)} runs failed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
