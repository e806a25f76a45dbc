r"""Side-by-side timing shared by the benchmark scripts: the candidates run
interleaved (in a rotating order) within each repetition, after a warm-up,
and each is reported relative to the first by the median of the per-repetition
ratios, so that a slow phase of a shared machine hits all of them alike."""
import time
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch


def synchronize(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(candidates: Dict[str, Callable[[], object]], repeats: int,
            warmup: int = 3,
            device: torch.device = torch.device('cpu'),
            ) -> Dict[str, np.ndarray]:
    r"""Seconds per call of every candidate, :obj:`repeats` times each
    (:obj:`{name: (repeats,)}`)."""
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    synchronize(device)
    seconds = {name: [] for name in names}
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            start = time.perf_counter()
            candidates[name]()
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return {name: np.asarray(values) for name, values in seconds.items()}


def ratio_rows(seconds: Dict[str, np.ndarray]) -> List[Dict[str, float]]:
    r"""Per candidate: median milliseconds and the median, 25th and 75th
    percentile of its per-repetition ratio to the first candidate."""
    reference = next(iter(seconds.values()))
    rows = []
    for name, values in seconds.items():
        ratio = values / reference
        rows.append(dict(name=name, ms=1e3 * float(np.median(values)),
                         ratio=float(np.median(ratio)),
                         ratio_q1=float(np.percentile(ratio, 25)),
                         ratio_q3=float(np.percentile(ratio, 75))))
    return rows


def format_rows(rows: Sequence[Dict], title: str, goal: str = '') -> str:
    r"""A plain-text table of :func:`ratio_rows`' output."""
    width = max(len('candidate'), *(len(row['name']) for row in rows))
    header = (f'{"candidate":<{width}}  {"median ms":>10}  {"ratio":>6}  '
              f'{"IQR of ratio":>14}')
    lines = [title + (f'  (goal: {goal})' if goal else ''), header,
             '-' * len(header)]
    for row in rows:
        lines.append(f'{row["name"]:<{width}}  {row["ms"]:>10.2f}  '
                     f'{row["ratio"]:>6.3f}  '
                     f'{row["ratio_q1"]:>6.3f}–{row["ratio_q3"]:<6.3f}')
    return '\n'.join(lines)
