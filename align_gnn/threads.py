r"""How many CPU threads a process uses: one policy for the command line
(``train_gat.py --threads``), the study's worker processes
(``benchmarks/study.py --workers``) and the test suite (one pytest-xdist
worker per core).

PyTorch starts as many threads as there are cores. Processes that share the
cores, each with all of them, spin against each other: on 2 cores, a Cora
``--compare`` beside one other busy process took 2.04x as long on PyTorch's
default two threads as on one, and the same on a quiet machine
(``benchmarks/bench_contention.py``; ``docs/cli.md``, "Threads"). So processes started together divide the cores
among them."""
import os

import torch

from align_gnn.reproducibility import single_threaded_blas


def available_threads() -> int:
    r"""The threads this process may use: :obj:`$OMP_NUM_THREADS` where it
    is set to a positive integer (the share its parent gave it), else the
    cores it may run on (its CPU affinity)."""
    value = os.environ.get('OMP_NUM_THREADS', '')
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_process(processes: int = 1) -> int:
    r"""The threads each of :obj:`processes` processes started together by
    this one gets: :func:`available_threads` divided among them, at least
    one."""
    if isinstance(processes, bool) or not isinstance(processes, int) \
            or processes < 1:
        raise ValueError(f"'processes' must be an integer >= 1 "
                         f"(got {processes!r})")
    return max(1, available_threads() // processes)


def set_threads(threads: int):
    r"""Runs PyTorch's CPU kernels on :obj:`threads` threads in this process
    (and in the processes it starts, through :obj:`OMP_NUM_THREADS`), with
    MKL's products kept on one thread (see
    :func:`~align_gnn.reproducibility.single_threaded_blas`), so that results
    do not depend on it."""
    if isinstance(threads, bool) or not isinstance(threads, int) \
            or threads < 1:
        raise ValueError(f"'threads' must be an integer >= 1 "
                         f"(got {threads!r})")
    os.environ['OMP_NUM_THREADS'] = str(threads)
    torch.set_num_threads(threads)
    single_threaded_blas()
