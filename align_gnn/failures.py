r"""Runs that could not finish, each said in one line (results files record
them as failed runs and the other runs go on): :class:`NonFiniteError`,
:class:`OutOfMemory` (see :func:`gpu_memory`)."""
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

import torch


class RunFailed(ValueError):
    r"""A run that could not finish (:obj:`method`, :obj:`seed`, the
    :obj:`epoch` it stopped at if known), said in one line: see
    :class:`NonFiniteError`, :class:`OutOfMemory`."""
    def __init__(self, message: str, method: str, seed: int,
                 epoch: Optional[int] = None):
        super().__init__(message)
        self.method, self.seed, self.epoch = method, seed, epoch

    def record(self) -> Dict:
        r"""The failed run as results files record it."""
        return dict(method=self.method, seed=self.seed, epoch=self.epoch,
                    reason=str(self))


class NonFiniteError(RunFailed):
    r"""Raised by :func:`fit` when the training loss, the alignment loss or
    a parameter becomes NaN or infinite: the run stops at that epoch.
    :obj:`what` says which value."""
    def __init__(self, method: str, seed: int, epoch: int, what: str):
        super().__init__(
            f"{method} seed {seed}: {what} at epoch {epoch}; the run stopped "
            f"(a smaller learning rate may help)", method, seed, epoch)
        self.what = what


class OutOfMemory(RunFailed):
    r"""A run that ran out of GPU memory (see :func:`gpu_memory`)."""
    def __init__(self, method: str, seed: int):
        super().__init__(
            f"{method} seed {seed}: out of GPU memory; the run stopped (lower "
            f"--hidden, --heads or --batch-size, use --precision bf16, or "
            f"train on the CPU with --device cpu)", method, seed)


@contextmanager
def gpu_memory(method: str, seed: int) -> Iterator[None]:
    r"""Turns running out of GPU memory inside the block (building or
    training the run :obj:`method`, :obj:`seed`) into :class:`OutOfMemory`,
    after giving the cached memory back."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        torch.cuda.empty_cache()
        raise OutOfMemory(method, seed) from err


class CaptureFailed(RuntimeError):
    r"""Capturing a run's epoch as a CUDA graph failed (see
    :class:`~align_gnn.device_loop.DeviceLoop`); said in one line with the
    way around it, training without capture."""
    def __init__(self, reason: str, run: str = ''):
        super().__init__(
            f"{run + ': ' if run else ''}capturing the epoch as a CUDA graph "
            f"failed ({reason}); train without it: --no-capture "
            f"(Config(capture=False))")
        self.reason = reason
