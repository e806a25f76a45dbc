r"""The arithmetic of training (``--precision``): float32, TF32 matrix
products on CUDA, or bfloat16 autocast."""
from contextlib import contextmanager
from typing import Iterator

import torch

PRECISIONS = ('fp32', 'tf32', 'bf16')


def check_precision(name: str, device: torch.device):
    r"""Raises :class:`ValueError` in one line unless :obj:`name` is one of
    :data:`PRECISIONS` that acts on :obj:`device` (TF32: CUDA only)."""
    if name not in PRECISIONS:
        raise ValueError(f"'precision' must be one of {PRECISIONS} (got "
                         f"{name!r})")
    if name == 'tf32' and device.type != 'cuda':
        raise ValueError("'precision' must be 'fp32' or 'bf16' on the CPU "
                         "(TF32 is a matrix mode of CUDA GPUs) (got 'tf32')")


@contextmanager
def precision(name: str, device: torch.device) -> Iterator[None]:
    r"""Runs the block in precision :obj:`name` on :obj:`device`:
    :obj:`"fp32"` (float32 throughout, TF32 off), :obj:`"tf32"` (CUDA:
    float32 tensors, matrix products and convolutions in TF32) or
    :obj:`"bf16"` (:func:`torch.autocast` to bfloat16 on :obj:`device`;
    autocast keeps losses, softmax and reductions in float32, and the
    parameters and their gradients stay float32; no cast is cached, so the
    block may span optimizer steps). The TF32 switches are restored after
    the block."""
    check_precision(name, device)
    matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = name == 'tf32'
    torch.backends.cudnn.allow_tf32 = name == 'tf32'
    try:
        # No cast cache: the block spans many optimizer steps, and a cached
        # bfloat16 copy of a parameter would hide its updates.
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=name == 'bf16', cache_enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn
