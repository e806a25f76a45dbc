r"""What a run writes and shares with other processes: the checks that keep
it from overwriting files it did not write or its own inputs
(:func:`check_output`), and the file locks (:class:`FileLock`) that keep two
processes from writing the same checkpoint or results file."""
import errno
import fcntl
import json
import os
import os.path as osp
from typing import Iterable, Optional

RESULTS_KEYS = ('dataset', 'config', 'runs', 'summary')
_held = {}  # this process's locks by path


class LockedError(ValueError):
    r"""Raised when another process holds a :class:`FileLock`."""


class FileLock:
    r"""An exclusive OS lock (:func:`fcntl.flock`) on the file :obj:`path`
    (created if needed, with this process's pid in it), taken at once or
    not at all: if another process holds it, raises :class:`LockedError`
    naming :obj:`what` and that process's pid. The OS releases it when the
    process ends, however it ends; :meth:`release` removes the file. Within
    one process, a new lock on the same file replaces the old one (an
    object that was dropped without :meth:`release`, say).

    Args:
        path (str): The lock file.
        what (str): What the lock protects, for the error message (e.g.
            :obj:`"the checkpoint folder 'ckpt'"`).
    """
    def __init__(self, path: str, what: str):
        self.path = path
        key = osp.realpath(path)
        if key in _held:
            _held[key].release()
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise LockedError(
                    f"{what} is in use by another run (pid "
                    f"{_read_pid(path)}, lock file '{path}'); wait for it to "
                    f"finish or choose another") from None
            # The holder may have removed the file between open and lock:
            # then ours is a lock on a file nobody else sees; take it again.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()}\n'.encode())
        self.fd: Optional[int] = fd
        _held[key] = self

    def release(self):
        r"""Removes the lock file and releases the lock."""
        if self.fd is None:
            return
        if _held.get(osp.realpath(self.path)) is self:
            del _held[osp.realpath(self.path)]
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing releases the lock
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _read_pid(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip() or '?'
    except OSError:
        return '?'


def lock_path(path: str) -> str:
    r"""The lock file of the file :obj:`path`: :obj:`.<name>.lock` beside
    it."""
    folder, name = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{name}.lock')


def is_results_file(path: str) -> bool:
    r"""Whether :obj:`path` holds a results file of this program (a JSON
    object with :data:`RESULTS_KEYS`), recognised by its content."""
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(results, dict) and all(key in results
                                             for key in RESULTS_KEYS)


def is_figure_file(path: str) -> bool:
    r"""Whether :obj:`path` holds a PNG written by matplotlib (as this
    program's figures are)."""
    try:
        with open(path, 'rb') as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b'\x89PNG') and b'Matplotlib' in head


def same_file(a: str, b: str) -> bool:
    r"""Whether the paths :obj:`a` and :obj:`b` name the same file (links
    followed; a path that does not exist is the same as none)."""
    try:
        return osp.samefile(a, b)
    except OSError:
        return osp.realpath(a) == osp.realpath(b)


def check_output(path: str, inputs: Iterable[str] = (),
                 overwrite: bool = False, recognise=is_results_file,
                 kind: str = 'a results file of train_gat.py'):
    r"""Raises :class:`ValueError` if writing :obj:`path` would overwrite
    one of :obj:`inputs` (the run's input files, its checkpoint), a file
    that :obj:`recognise` does not take for one of this program's own
    outputs (whatever :obj:`overwrite` says), or one of its own outputs
    without :obj:`overwrite`."""
    for source in inputs:
        if source and same_file(path, source):
            raise ValueError(f"'{path}' is an input of this run ('{source}'); "
                             f"writing it would destroy it: choose another "
                             f"file")
    if not osp.isfile(path):
        return
    if not recognise(path):
        raise ValueError(f"'{path}' exists and is not {kind}; it is left "
                         f"alone: choose another file or move it away")
    if not overwrite:
        raise ValueError(f"'{path}' exists (from an earlier run); give "
                         f"--overwrite to replace it, or choose another file")
