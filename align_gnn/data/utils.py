r"""What the data sources share: the data root, :class:`DataError` and its
checks (finite features, a download host that answers)."""
import os
import socket
from typing import Callable, Optional
from urllib.parse import urlparse

import torch
from torch import Tensor

DOWNLOAD_TIMEOUT = 5.0  # seconds to wait for the download host to answer


class DataError(ValueError):
    r"""Raised when a data set is neither on disk nor downloadable."""


def data_root(root: Optional[str] = None) -> str:
    r"""The data root: :obj:`root`, else the environment variable
    :obj:`ALIGN_GNN_DATA`, else :obj:`"datasets"` (relative to the current
    directory)."""
    return root or os.environ.get('ALIGN_GNN_DATA') or 'datasets'


def _check_finite(name: str, x: Tensor, raw_dir: str):
    if not torch.isfinite(x).all():
        rows = (~torch.isfinite(x)).any(dim=-1).nonzero().view(-1)
        raise DataError(
            f"{name}: the features of {rows.numel()} node(s) contain NaN or "
            f"inf (first: node {int(rows[0])}); the raw files in "
            f"'{raw_dir}' are damaged: copy them again")


def _require(condition: bool, name: str, requirement: str, value):
    if not condition:
        raise ValueError(f"'{name}' must be {requirement} (got {value!r})")


def _check_download_host(url: str, message: Callable[[Exception], str]):
    # Downloads wait minutes on a silent network; fail fast instead:
    url = urlparse(url)
    port = url.port or (443 if url.scheme == 'https' else 80)
    try:
        socket.create_connection((url.hostname, port),
                                 timeout=DOWNLOAD_TIMEOUT).close()
    except OSError as err:
        raise DataError(message(err)) from err


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [''])[0]


def add_edge_noise(data, p: float, seed: int = 0):
    r"""A shallow copy of the graph :obj:`data` with
    :math:`\mathrm{round}(p \cdot |E| / 2)` uniformly random undirected
    non-edges added (each in both directions, after the existing edges;
    :math:`|E|` counts the entries of :obj:`edge_index`): pairs of distinct
    nodes with an edge in neither direction, drawn without repeats with
    :obj:`seed`. :obj:`p = 0` returns :obj:`data` itself."""
    import copy

    if not p >= 0:
        raise ValueError(f"'edge_noise' must be >= 0 (got {p!r})")
    count = round(p * data.edge_index.size(1) / 2)
    if count == 0:
        return data
    n = data.num_nodes
    row, col = data.edge_index
    existing = torch.unique(torch.minimum(row, col) * n +
                            torch.maximum(row, col))
    free = n * (n - 1) // 2 - int(((existing // n) !=
                                    (existing % n)).sum())
    if count > free:
        raise ValueError(f"'edge_noise' {p} asks for {count} new undirected "
                         f"edges, but the graph has only {free} non-edges")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.empty(0, dtype=torch.long)
    while chosen.numel() < count:
        draws = torch.randint(n, (2, 2 * (count - chosen.numel()) + 16),
                              generator=generator)
        u, v = draws.min(0).values, draws.max(0).values
        key = (u * n + v)[u != v]
        key = key[~torch.isin(key, existing) & ~torch.isin(key, chosen)]
        # The first occurrence of each pair, in order of the draws:
        unique, inverse = torch.unique(key, return_inverse=True)
        first = torch.full((unique.numel(), ), key.numel(), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(key.numel()), 'amin')
        chosen = torch.cat([chosen, key[first.sort().values]])
    chosen = chosen[:count]
    u, v = chosen // n, chosen % n
    data = copy.copy(data)
    data.edge_index = torch.cat([data.edge_index.cpu(), torch.stack(
        [torch.cat([u, v]), torch.cat([v, u])])], dim=1).to(
            data.edge_index.device)
    return data
