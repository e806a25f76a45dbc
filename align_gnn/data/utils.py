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
