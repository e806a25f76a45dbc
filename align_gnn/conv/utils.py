import warnings
from contextlib import contextmanager
from typing import Optional

import torch
from torch import Tensor

PERMUTATION_MAX_ROWS = 1 << 16


def sample_rows(num_rows: int, num_samples: int,
                device: torch.device) -> Optional[Tensor]:
    r"""Indices of a uniform sample without replacement of
    :obj:`min(num_rows, num_samples)` rows, or :obj:`None` for all rows.

    Up to :obj:`max(65536, 4 * num_samples)` rows, the head of a random
    permutation. Beyond, the first distinct values among
    :obj:`2 * num_samples` uniform draws, in order of appearance (a uniform
    sample without replacement): :math:`O(m \log m)` time, no tensor of
    size :obj:`num_rows` and no host synchronization. Fewer than
    :obj:`num_samples` distinct draws (probability below :math:`10^{-14}`)
    would let some rows repeat."""
    if num_rows <= num_samples:
        return None
    if num_rows <= max(PERMUTATION_MAX_ROWS, 4 * num_samples):
        return torch.randperm(num_rows, device=device)[:num_samples]
    draws = torch.randint(num_rows, (2 * num_samples, ), device=device)
    sorted_draws, position = torch.sort(draws, stable=True)
    repeat = torch.zeros_like(sorted_draws, dtype=torch.bool)
    repeat[1:] = sorted_draws[1:] == sorted_draws[:-1]
    # First occurrences ranked by position, repeats after all of them:
    rank = position + repeat * draws.numel()
    return sorted_draws[rank.argsort()[:num_samples]]


def select_rows(x: Tensor, index: Tensor) -> Tensor:
    r"""The rows :obj:`index` of a dense, sparse COO or sparse CSR matrix
    :obj:`x`, in the same layout."""
    if x.layout == torch.sparse_coo:
        return x.index_select(0, index)
    if x.layout != torch.sparse_csr:
        return x[index]
    crow, col, value = x.crow_indices(), x.col_indices(), x.values()
    start, count = crow[index], crow[index + 1] - crow[index]
    new_crow = torch.cat([crow.new_zeros(1), count.cumsum(0)])
    position = torch.arange(int(new_crow[-1]), device=x.device)
    position += (start - new_crow[:-1]).repeat_interleave(count)
    with quiet_sparse_csr():
        return torch.sparse_csr_tensor(new_crow, col[position],
                                       value[position],
                                       (index.numel(), x.size(1)),
                                       check_invariants=False)


@contextmanager
def quiet_sparse_csr():
    r"""Silences PyTorch's warning that sparse CSR support is in beta."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'Sparse CSR tensor support')
        yield
