r"""Interrupts (SIGINT, SIGTERM, and SIGHUP: a closed terminal) that end a
run cleanly: :func:`handle` turns each signal of :data:`SIGNALS` into
:class:`Interrupted`; while :func:`deferring` is iterated (the
epoch loop of :func:`~align_gnn.training.fit`) the first signal only sets a
flag, which :func:`check` turns into :class:`Interrupted` where the state is
whole (after an epoch, when the checkpoint can be saved). A second signal
interrupts at once."""
import signal
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_requested: Optional[str] = None  # the pending signal's name
_deferring = 0


class Interrupted(KeyboardInterrupt):
    r"""An interrupt by :obj:`signal` (its name, e.g. :obj:`"SIGINT"`).
    :func:`~align_gnn.training.run_many` and
    :func:`~align_gnn.experiment.experiment` attach what had finished as
    :obj:`finished` (the results) and :obj:`results` (the experiment's
    dictionary, marked incomplete)."""
    def __init__(self, signal: str = 'SIGINT'):
        super().__init__(signal)
        self.signal = signal


def _handler(signum, frame):
    global _requested
    name = signal.Signals(signum).name
    if _deferring and _requested is None:
        _requested = name
        return
    _requested = None
    raise Interrupted(name)


@contextmanager
def handle() -> Iterator[None]:
    r"""Within, the signals of :data:`SIGNALS` raise :class:`Interrupted`
    (or are deferred, see :func:`deferring`); the former handlers come back
    after."""
    global _requested, _deferring
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    _requested = None
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _requested = None
        _deferring = 0


def deferring(iterable: Iterable) -> Iterator:
    r"""The items of :obj:`iterable`; while it is iterated, a first signal
    is held until :func:`check`."""
    global _deferring
    _deferring += 1
    try:
        yield from iterable
    finally:
        _deferring -= 1


def requested() -> Optional[str]:
    r"""The name of the signal held by :func:`deferring`, if any."""
    return _requested


def check():
    r"""Raises :class:`Interrupted` if a signal is held."""
    global _requested
    name, _requested = _requested, None
    if name is not None:
        raise Interrupted(name)
