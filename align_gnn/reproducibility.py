r"""Results that do not depend on the number of CPU threads.

PyTorch's own CPU kernels (element-wise, reductions, scatter, softmax) give
the same bits whatever number of threads runs them. Intel MKL's matrix
products do not: for products with a small output and a long inner
dimension (a :math:`7 \times 256` by :math:`256 \times 16` ``sgemm``, as in
the weight gradient of CT's critic with 16 hidden channels) MKL splits the
inner dimension across its threads, and the partial sums are added in an
order that depends on the thread count. MKL's strict conditional numerical
reproducibility mode (``MKL_CBWR=AUTO,STRICT``) removes that on Intel CPUs
with AVX2 and later, but not on AMD CPUs, where 41 of 1,620 product shapes
still differ between one and two threads (``MKL_CBWR=COMPATIBLE``: 172).

:func:`single_threaded_blas` removes the cause: MKL runs every product on
one thread (of the calling thread, which is also the one that runs autograd's
CPU backward pass), while PyTorch's kernels keep all their threads. A product
computed by a single thread sums in one fixed order, so a training run gives
the same bits on one thread as on several, on Intel and AMD alike
(``tests/test_reproducibility.py``). The price is the parallelism of large
dense products (``benchmarks/bench_threads.py`` measures it; see
``docs/cli.md``, "Reproducibility").
"""
import ctypes
import os
import os.path as osp
from typing import Optional

import torch

def _mkl() -> Optional[ctypes.CDLL]:
    r"""MKL's service functions inside PyTorch's CPU library, or
    :obj:`None` if this PyTorch does not use MKL."""
    if not torch.backends.mkl.is_available():
        return None
    path = osp.join(osp.dirname(torch.__file__), 'lib', 'libtorch_cpu.so')
    try:
        lib = ctypes.CDLL(path)
        lib.MKL_Set_Num_Threads_Local.argtypes = [ctypes.c_int]
        lib.MKL_Set_Num_Threads_Local.restype = ctypes.c_int
        lib.MKL_Get_Max_Threads.restype = ctypes.c_int
    except (OSError, AttributeError):  # another platform or MKL build
        return None
    return lib


_MKL = _mkl()


def mkl_threads() -> Optional[int]:
    r"""The number of threads MKL uses for a product started from this
    thread, or :obj:`None` without MKL."""
    return None if _MKL is None else _MKL.MKL_Get_Max_Threads()


def single_threaded_blas() -> bool:
    r"""Makes MKL run its products on one thread for the calling thread
    (PyTorch's own kernels keep their threads). Call it again after
    :func:`torch.set_num_threads`, which resets MKL's thread count. Returns
    :obj:`False` where PyTorch does not use MKL (its other BLAS backends do
    not split a product's inner dimension by thread count)."""
    if _MKL is None:
        return False
    _MKL.MKL_Set_Num_Threads_Local(1)
    return True


def reproducibility_settings() -> dict:
    r"""The machine and what the results' reproducibility rests on, for a
    results file: the CPU, MKL's mode, MKL's and PyTorch's thread counts."""
    return dict(cpu=cpu_model(), mkl_cbwr=os.environ.get('MKL_CBWR'),
                mkl_threads=mkl_threads(),
                torch_threads=torch.get_num_threads())


def cpu_model() -> str:
    r"""The CPU's model name (e.g. :obj:`'AMD EPYC'`), as results files and
    the docs' figures state it."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()
