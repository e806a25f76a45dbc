r"""What the data sources share: the data root, :class:`DataError` and its
checks (finite features, a download host that answers), the check that
keeps a library's :obj:`processed/` folder from standing in for other raw
files (:func:`load_processed`), and the one translation of a library
loader's errors into one-line messages (:func:`loader_error`)."""
import errno
import hashlib
import json
import os
import os.path as osp
import pickle
import socket
from typing import Callable, Dict, Optional, Sequence, TypeVar
from urllib.parse import urlparse

import torch
from torch import Tensor

from align_gnn.outputs import atomic_write

FINGERPRINT_FILE = 'raw_fingerprint.json'  # in processed/, see load_processed
T = TypeVar('T')

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


def raw_fingerprint(paths: Sequence[str]) -> Dict[str, str]:
    r"""Per file of :obj:`paths` (by its name) its size and SHA-256."""
    fingerprint = {}
    for path in paths:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
        fingerprint[osp.basename(path)] = (f'{osp.getsize(path)} '
                                           f'{digest.hexdigest()}')
    return fingerprint


def load_processed(name: str, raw_files: Sequence[str], processed_dir: str,
                   load: Callable[[bool], T]) -> T:
    r"""Loads a data set whose library (PyG, OGB) keeps what it derives
    from :obj:`raw_files` in :obj:`processed_dir`, so that
    :obj:`processed/` never stands in for other raw files: calls
    :obj:`load(rebuild)`, with :obj:`rebuild=True` (process the raw files
    again) unless the fingerprint of the raw files (see
    :func:`raw_fingerprint`) written beside the processed files when they
    were built (:data:`FINGERPRINT_FILE`) equals that of the raw files now;
    then writes the fingerprint. Missing raw files are left to the library
    (a download, or its error) and rebuild; a folder that cannot be written
    raises :class:`DataError` (see :func:`loader_error`)."""
    path = osp.join(processed_dir, FINGERPRINT_FILE)
    try:
        with open(path) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        stored = None
    present = all(osp.isfile(raw) for raw in raw_files)
    current = raw_fingerprint(raw_files) if present else None
    result = load(current is None or stored != current)
    current = current or raw_fingerprint(raw_files)
    if stored != current:
        try:
            atomic_write(path, lambda f: json.dump(current, f, indent=2))
        except OSError as err:
            raise loader_error(name, osp.dirname(processed_dir), err,
                               'cannot record the raw files it was built '
                               'from') from err
    return result


def loader_error(name: str, folder: str, err: BaseException,
                 damaged: str) -> 'DataError':
    r"""The one-line :class:`DataError` for :obj:`err`, raised by a
    library's loader (PyG, OGB, numpy) reading the data set :obj:`name` in
    :obj:`folder`: a folder that cannot be written (the library writes
    :obj:`processed/` beside :obj:`raw/`), a directory where a file
    belongs, or else :obj:`damaged` (what is wrong and what to do, e.g.
    ``"a raw file is corrupt or truncated: copy it again"``) after the
    library's message (see :func:`library_message`)."""
    cause = _os_error(err)
    if is_read_only(err):
        return DataError(
            f"{name}: the data folder '{folder}' is read-only "
            f"({type(cause).__name__}: {cause.strerror}); PyG and OGB "
            f"write '{osp.join(folder, 'processed')}' beside 'raw' (and "
            f"again when the raw files change). Copy "
            f"{osp.basename(folder)}/raw to a writable data root (--root "
            f"or ALIGN_GNN_DATA), or run once where this one is writable.")
    if cause is not None and cause.errno == errno.EISDIR:
        where = cause.filename or folder
        return DataError(f"{name}: '{where}' is a directory where a file "
                         f"belongs; move it away and copy the file there")
    return DataError(f"{name}: reading '{folder}' failed ("
                     f"{library_message(err)}): {damaged}")


def is_read_only(err: BaseException) -> bool:
    r"""Whether :obj:`err` (or its cause) says that a file or folder could
    not be written for want of permission (a read-only data root)."""
    cause = _os_error(err)
    return cause is not None and cause.errno in (errno.EACCES, errno.EPERM,
                                                 errno.EROFS)


def _os_error(err: Optional[BaseException]) -> Optional[OSError]:
    # The first OSError with an errno among `err` and its causes.
    while err is not None:
        if isinstance(err, OSError) and err.errno is not None:
            return err
        err = err.__cause__ or err.__context__
    return None


def library_message(err: BaseException) -> str:
    r"""The type and first line of :obj:`err`, raised by a library, in our
    words where the library's would give advice that does not apply (such
    as PyTorch's :obj:`weights_only=False`, numpy's
    :obj:`allow_pickle=True`)."""
    text = _first_line(err)
    if 'weights only load failed' in text.lower() or (
            isinstance(err, pickle.UnpicklingError) and 'weights_only'
            in str(err)):
        text = 'the file holds Python objects other than tensors'
    elif 'allow_pickle' in str(err):
        text = 'the file holds Python objects, not arrays of numbers'
    return f'{type(err).__name__}: {text}'


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
