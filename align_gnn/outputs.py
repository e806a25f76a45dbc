r"""What a run writes and shares with other processes: the one writer of
every output (:func:`atomic_write` for whole files, :func:`append_line` and
:func:`read_lines` for JSON-lines journals), the checks that keep it from
overwriting files it did not write or its own inputs (:func:`check_output`),
and the file locks (:class:`FileLock`) that keep two processes from writing
the same checkpoint or results file.

The writer's rules: a symbolic link is followed, never replaced (its target
gets the new content); a directory or a special file (a FIFO, a device such
as :file:`/dev/stdout`, a socket) is refused; a failed write (a full disk)
leaves the file as it was (whole files) or cut back to its last whole line
(journals) and raises :class:`WriteError`, one line, no traceback."""
import errno
import fcntl
import json
import os
import os.path as osp
import stat
import tempfile
from typing import Callable, Iterable, List, Optional

RESULTS_KEYS = ('dataset', 'config', 'runs', 'summary')
_held = {}  # this process's locks by path


class LockedError(ValueError):
    r"""Raised when another process holds a :class:`FileLock`."""


class WriteError(OSError, ValueError):
    r"""Raised when an output cannot be written (a directory or a special
    file in its place, a full disk, no permission); the file that was there
    is left as it was. An :class:`OSError` and a :class:`ValueError`, so
    that the command lines report it in one line."""


SPECIAL_FILES = (
    (stat.S_ISDIR, 'a directory'),
    (stat.S_ISFIFO, 'a FIFO (named pipe)'),
    (stat.S_ISCHR, 'a character device'),
    (stat.S_ISBLK, 'a block device'),
    (stat.S_ISSOCK, 'a socket'),
)


def output_target(path: str) -> str:
    r"""The file that writing :obj:`path` fills: :obj:`path` with its
    symbolic links followed (the links stay). Raises :class:`WriteError` if
    that is not a regular file (see :data:`SPECIAL_FILES`; e.g.
    :file:`/dev/stdout`)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # made when written
        return osp.realpath(path)
    except OSError as err:
        raise WriteError(f"cannot write '{path}' ({err.strerror or err})"
                         ) from err
    if not stat.S_ISREG(mode):
        kind = next((kind for test, kind in SPECIAL_FILES if test(mode)),
                    'not a regular file')
        raise WriteError(f"'{path}' is {kind}, not a regular file; give "
                         f"the path of a file")
    return osp.realpath(path)


def atomic_write(path: str, write: Callable, binary: bool = False):
    r"""Writes :obj:`path` atomically: :obj:`write(f)` fills a temporary
    file beside the target (see :func:`output_target`), which then replaces
    it in one step (after :func:`os.fsync`), so readers see the old file or
    the new one, never a part. On failure the temporary file is removed and
    the old file kept; an :class:`OSError` becomes :class:`WriteError`."""
    target = output_target(path)
    try:
        os.makedirs(osp.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=osp.dirname(target),
                                   prefix=f'.{osp.basename(target)}-',
                                   suffix='.tmp')
    except OSError as err:
        raise _failed(path, err) from err
    try:
        with os.fdopen(fd, 'wb' if binary else 'w') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as err:
        os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise _failed(path, err) from err
        raise


def append_line(path: str, line: str):
    r"""Appends :obj:`line` and a newline to :obj:`path` (created if need
    be), flushed to disk (:func:`os.fsync`). If the write fails (a full
    disk), the file is cut back to its former length, so that no part of a
    line is left, and :class:`WriteError` is raised."""
    target = output_target(path)
    data = (line + '\n').encode()
    try:
        os.makedirs(osp.dirname(target), exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as err:
        raise _failed(path, err) from err
    try:
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as err:
            os.ftruncate(fd, size)
            raise _failed(path, err) from err
    finally:
        os.close(fd)


def read_lines(path: str, repair: bool = False) -> List:
    r"""The JSON values of the lines of :obj:`path` (none if there is no
    such file). A last line without its newline is an append cut short (a
    kill during :func:`append_line`): it is left out and, with
    :obj:`repair`, cut off the file. Any other line that is not JSON raises
    :class:`ValueError` naming the file and the line: nothing after it is
    dropped, and nothing is cut."""
    if not osp.isfile(path):
        return []
    values, good = [], 0
    with open(path, 'rb') as f:
        lines = f.read().split(b'\n')
    for number, line in enumerate(lines, start=1):
        if number == len(lines):  # after the last newline: a cut line
            break
        try:
            values.append(json.loads(line))
        except ValueError as err:
            raise ValueError(
                f"'{path}' line {number} is damaged ({type(err).__name__}: "
                f"{err}); restore the file, or delete that line (its record "
                f"is then made again)") from None
        good += len(line) + 1
    if repair and good < osp.getsize(path):
        os.truncate(path, good)
    return values


def _failed(path: str, err: OSError) -> WriteError:
    return WriteError(f"writing '{path}' failed ({err.strerror or err}); "
                      f"the file that was there is left as it was")


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
    a directory or a special file (see :func:`output_target`),
    one of :obj:`inputs` (the run's input files, its checkpoint), a file
    that :obj:`recognise` does not take for one of this program's own
    outputs (whatever :obj:`overwrite` says), or one of its own outputs
    without :obj:`overwrite`."""
    output_target(path)
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
