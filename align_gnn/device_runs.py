r"""Runs kept on the device (see :mod:`align_gnn.device_loop`), one or
several at once. :func:`device_run` is a run as a generator that pauses
before each read of its status; :func:`fit_on_device` runs one to its end,
as :func:`align_gnn.training.fit` does; :func:`interleave` runs several in
turns, each with its own random generators and, on CUDA, its own stream, so
that their CUDA graphs overlap on one GPU while their results stay those of
running them one at a time."""
import random
import time
from typing import (Callable, Generator, Hashable, Iterable, Iterator, List,
                    Optional, Tuple, Union)

import numpy as np
import torch
from ogb.nodeproppred import Evaluator

from torch_geometric.data import Data

from align_gnn import device_loop, interrupts
from align_gnn.config import Config
from align_gnn.divergences import DIVERGENCES
from align_gnn.failures import CaptureFailed, NonFiniteError, RunFailed
from align_gnn.loops import non_finite
from align_gnn.optimization import make_optimizer, set_learning_rate
from align_gnn.outcome import final_metrics, run_result
from align_gnn.recipe import loss_function
from align_gnn.results import RunResult
from align_gnn.schedule import alignment_weight
from align_gnn.selection import DeviceSelection

Run = Generator[None, None, RunResult]
MAX_AT_ONCE = 16  # runs in flight on one GPU at most
MEMORY_SHARE = 0.8  # of the free GPU memory that concurrent runs may take


def device_run(model: torch.nn.Module, full: Data, method: str, seed: int,
               config: Config, evaluator: Optional[Evaluator] = None,
               progress: bool = False) -> Run:
    r""":func:`align_gnn.training.fit` of :obj:`model` on the prepared graph
    :obj:`full` by a :class:`~align_gnn.device_loop.DeviceLoop`, as a
    generator that yields before each read of the status (every
    :data:`~align_gnn.device_loop.READ_EVERY` epochs on CUDA, every epoch
    on the CPU) and returns the :class:`~align_gnn.results.RunResult`."""
    device = full.x.device
    graphs = device.type == 'cuda'
    every = device_loop.READ_EVERY if graphs else 1
    optimizer = make_optimizer(model, config, method, capturable=graphs)
    align_weight = (config.alignment(method)['align_weight']
                    if method in DIVERGENCES else 0.0)
    selection = DeviceSelection(config.selection, config.patience, device)
    bar = _bar(config.epochs, f'{method} seed {seed}', progress)
    start = time.perf_counter()
    with device_loop.self_loops(model, full.edge_index,
                                full.num_nodes) as edge_index:
        try:
            loop = device_loop.DeviceLoop(
                model, full, edge_index, optimizer,
                loss_function(config.loss), selection, config.epochs, graphs)
        except CaptureFailed as err:
            raise CaptureFailed(err.reason, f'{method} seed {seed}') from err
        for epoch in interrupts.deferring(range(1, config.epochs + 1)):
            loop.weight.fill_(alignment_weight(epoch - 1, align_weight,
                                               config.align_warmup))
            set_learning_rate(optimizer, epoch, config.lr_warmup)
            loop.epoch()
            if epoch % every and epoch < config.epochs:
                continue
            yield
            counted, stopped, failed = loop.read()
            if failed:
                bar.close()
                raise NonFiniteError(method, seed, failed, non_finite(
                    loop.curves[failed - 1], model) or 'a value became '
                    'non-finite')
            bar.update(counted - bar.n)
            bar.set_postfix(val_acc=f'{loop.scores[counted - 1]:.3f}',
                            best=f'{selection.best_acc:.3f}')
            if stopped:
                break
            interrupts.check()
    seconds = time.perf_counter() - start
    bar.close()
    model.load_state_dict(loop.best_state())
    optimizer.zero_grad(set_to_none=True)  # a graph's gradients
    metrics = final_metrics(model, full, evaluator, seed, config, None)
    train_loss, align_loss = loop.curves[:counted].t().tolist()
    history = dict(train_loss=train_loss, align_loss=align_loss,
                   val_acc=loop.scores[:counted].tolist())
    return run_result(model, method, seed, metrics, history, counted,
                      int(selection.best_epoch), seconds)


def _bar(total: int, description: str, progress: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=description, leave=False,
                disable=not progress)


def fit_on_device(*args, **kwargs) -> RunResult:
    r""":func:`device_run` to its end (the same arguments)."""
    return finish(device_run(*args, **kwargs))


def finish(run: Run) -> RunResult:
    r"""Resumes :obj:`run` until it returns its result."""
    while True:
        try:
            next(run)
        except StopIteration as stop:
            return stop.value


class _Turns:
    # The random generators of one run, swapped in for each of its turns
    # (CUDA: a graph-safe state of the device's generator, which the run's
    # CUDA graphs register when captured), and its CUDA stream.
    def __init__(self, device: torch.device):
        self.cpu = None  # the states after the run's last turn
        self.stream = self.cuda = None
        if device.type == 'cuda':
            self.stream = torch.cuda.Stream(device)
            self.cuda = torch.cuda.default_generators[
                device.index or 0].clone_state()

    def swap_in(self, generator: Optional[torch.Generator]):
        if self.cpu is not None:
            torch.set_rng_state(self.cpu[0])
            np.random.set_state(self.cpu[1])
            random.setstate(self.cpu[2])
        if generator is not None:
            generator.graphsafe_set_state(self.cuda)

    def swap_out(self):
        self.cpu = (torch.get_rng_state(), np.random.get_state(),
                    random.getstate())


def interleave(starts: Iterable[Tuple[Hashable, Callable[[], Run]]],
               device: torch.device, at_once: Optional[int] = None
               ) -> Iterator[Tuple[Hashable, Union[RunResult, RunFailed]]]:
    r"""Runs the generators made by each :obj:`(key, start)` of
    :obj:`starts` (a run, as :func:`device_run`), up to :obj:`at_once` at a
    time, in turns: each turn resumes one run until its next pause, with
    its own random generators (CPU, NumPy, Python and CUDA, as they were at
    the end of its previous turn; its first turn starts from the states
    when it was taken up) and, on CUDA, its own stream. A run's result (or
    its :class:`~align_gnn.failures.RunFailed`) is yielded as
    :obj:`(key, outcome)` when it ends. Since a run draws its random
    numbers and reads its status as it would alone, each result is that of
    the run alone (on CUDA, up to the order of atomic additions).

    :obj:`at_once` (:obj:`None`): on CUDA as many runs as
    :data:`MEMORY_SHARE` of the free memory holds, measured on the first
    run's first turn (at most :data:`MAX_AT_ONCE`); on the CPU one."""
    starts = iter(starts)
    cuda = device.type == 'cuda'
    if cuda:
        torch.cuda.init()  # fills torch.cuda.default_generators
    generator = (torch.cuda.default_generators[device.index or 0]
                 if cuda else None)
    original = generator.graphsafe_get_state() if cuda else None
    flight: List[Tuple[Hashable, Run, _Turns]] = []
    width, measure = at_once or 1, at_once is None and cuda
    try:
        while True:
            while len(flight) < width:
                key, start = next(starts, (None, None))
                if start is None:
                    break
                entry = (key, start(), _Turns(device))
                if measure:  # the first run's first turn sizes the rest
                    measure = False
                    torch.cuda.synchronize(device)
                    before = torch.cuda.memory_reserved(device)
                    outcome = _turn(*entry[1:], generator)
                    width = _width(device, torch.cuda.memory_reserved(
                        device) - before)
                    if outcome is not None:
                        yield key, outcome
                        continue
                flight.append(entry)
            if not flight:
                return
            for entry in list(flight):
                outcome = _turn(*entry[1:], generator)
                if outcome is not None:
                    flight.remove(entry)
                    yield entry[0], outcome
    finally:
        for _, run, _ in flight:
            run.close()
        if cuda:
            generator.graphsafe_set_state(original)


def _turn(run: Run, turns: _Turns,
          generator: Optional[torch.Generator]) -> Optional[object]:
    # One turn of `run`: None while it goes on, else its outcome.
    turns.swap_in(generator)
    try:
        if turns.stream is None:
            next(run)
        else:
            with torch.cuda.stream(turns.stream):
                next(run)
        return None
    except StopIteration as stop:
        return stop.value
    except RunFailed as err:
        return err
    finally:
        turns.swap_out()


def _width(device: torch.device, used: int) -> int:
    # Runs at once when one takes `used` bytes of GPU memory.
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(MAX_AT_ONCE,
                      int(MEMORY_SHARE * free / max(used, 1)) + 1))
