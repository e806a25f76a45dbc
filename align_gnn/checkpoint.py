r"""Checkpoints: the progress of an experiment in one file, written
atomically, from which :func:`~align_gnn.training.run_many` and
:func:`~align_gnn.experiment.experiment` continue exactly; and the states of
the random number generators they save."""
import glob
import hashlib
import os
import os.path as osp
import random
from dataclasses import asdict, fields
from functools import partial
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from align_gnn import distributed
from align_gnn.config import Config, config_record
from align_gnn.data.utils import _require
from align_gnn.outputs import FileLock, atomic_write
from align_gnn.results import RunResult

# What a data fingerprint covers, and how an error names each part:
FINGERPRINT = dict(x='the features x', y='the labels y',
                   edge_index='the edges', train_mask='the training split',
                   val_mask='the validation split',
                   test_mask='the test split')


def data_fingerprint(data) -> Dict[str, str]:
    r"""A fingerprint of the graph :obj:`data`: per part of
    :data:`FINGERPRINT` its shape, dtype and a SHA-256 hash of its values,
    and the number of classes; checkpoints record it, so that a resume on
    other data (edited files, another data root) is refused."""
    fingerprint = {}
    for name in FINGERPRINT:
        value = getattr(data, name, None)
        if value is None:
            fingerprint[name] = 'none'
            continue
        value = value.detach().cpu()
        if value.layout != torch.strided:
            value = value.to_dense()
        value = value.contiguous()
        digest = hashlib.sha256(value.numpy().tobytes()).hexdigest()[:16]
        fingerprint[name] = (f'{tuple(value.shape)} '
                             f'{str(value.dtype).replace("torch.", "")} '
                             f'{digest}')
    fingerprint['num_classes'] = str(getattr(data, 'num_classes', None))
    return fingerprint


def rng_state(device: torch.device) -> Dict:
    r"""The states of the random number generators of :obj:`random`,
    NumPy, PyTorch on the CPU and, if :obj:`device` is a GPU, CUDA (as
    tensors and plain Python values, for
    :obj:`torch.load(..., weights_only=True)`)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return dict(
        python=random.getstate(),
        numpy=(name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
               gauss),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if device.type == 'cuda' else None,
    )


def set_rng_state(state: Dict):
    r"""Restores the random number generators from :func:`rng_state`."""
    random.setstate(state['python'])
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos,
                         has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if state['cuda'] is not None:
        torch.cuda.set_rng_state_all(state['cuda'])


def _difference(name: str, there: Optional[str], now: Optional[str]) -> str:
    # "the labels y (other values)", or the shapes where they differ:
    shape = [value.rsplit(' ', 2)[0] if value else value
             for value in (there, now)]
    if name == 'the number of classes' or shape[0] != shape[1]:
        return f'{name} ({shape[0]} there, {shape[1]} now)'
    return f'{name} (other values)'


class Checkpoint:
    r"""The progress of an experiment in the file
    :obj:`<folder>/checkpoint.pt`, written atomically: the config, the
    finished runs' results and the full state of the current run (model,
    optimizer with the adversaries' parameters, random number generators,
    early stopping), saved every :obj:`every` epochs and after every run.
    :func:`~align_gnn.training.run_many` and
    :func:`~align_gnn.experiment.experiment` continue from it exactly (up to
    timings).

    Args:
        folder (str): The folder of the checkpoint (created if needed).
        config (Config): The experiment's settings; resuming a checkpoint
            made with other settings raises :class:`ValueError`.
        every (int, optional): Save the current run every :obj:`every`
            epochs. (default: :obj:`50`)
        resume (bool, optional): Continue from the checkpoint in
            :obj:`folder` if there is one; if :obj:`False`, an existing
            checkpoint raises :class:`ValueError` rather than being
            overwritten. (default: :obj:`False`)

    The folder is locked (:class:`~align_gnn.outputs.FileLock` on
    :obj:`<folder>/.lock`) until :meth:`close` or the end of the process: a
    second process raises :class:`~align_gnn.outputs.LockedError` at once.
    A damaged checkpoint file raises :class:`ValueError` saying so, and
    :meth:`check_data` refuses to continue on other data than the
    checkpoint's.
    """
    FILE = 'checkpoint.pt'

    def __init__(self, folder: str, config: Config, every: int = 50,
                 resume: bool = False):
        _require(every >= 1, 'every', '>= 1', every)
        if distributed.launched():
            raise ValueError('Checkpoints are not supported with several '
                             'processes yet; train without --checkpoint')
        self.path = osp.join(folder, self.FILE)
        self.every = every
        self.config = config_record(config)
        self.finished: Dict[Tuple[str, int], RunResult] = {}
        self.current: Optional[Dict] = None
        self.data: Optional[Dict[str, str]] = None  # see `check_data`
        try:
            os.makedirs(folder, exist_ok=True)
            self.lock = FileLock(osp.join(folder, '.lock'),
                                 f"The checkpoint folder '{folder}'")
        except OSError as err:
            raise ValueError(f"Cannot write the checkpoint folder '{folder}' "
                             f"({err.strerror or err}); choose a writable "
                             f"folder") from err
        if not osp.isfile(self.path):
            return
        if not resume:
            self.close()
            raise ValueError(f"'{folder}' already holds a checkpoint; resume "
                             f"it (--resume) or choose another folder")
        # Temporary files of writes that a kill interrupted:
        for tmp in glob.glob(osp.join(folder, f'.{self.FILE}-*.tmp')):
            os.unlink(tmp)
        try:
            state = torch.load(self.path, map_location='cpu',
                               weights_only=True)
            if not (isinstance(state, dict) and {'config', 'current',
                                                 'finished'} <= set(state)):
                raise ValueError('not a checkpoint of align_gnn')
        except Exception as err:
            self.close()
            first = (str(err).strip().splitlines() or [''])[0]
            raise ValueError(
                f"The checkpoint '{self.path}' is damaged ("
                f"{type(err).__name__}: {first[:200]}) and cannot be "
                f"resumed; move it away to start from scratch (its finished "
                f"runs are lost), or put back an intact copy") from None
        # A setting added since the checkpoint was made had its default:
        held = {**{field.name: field.default for field in fields(Config)},
                **state['config']}
        changed = [f'{key}={held.get(key)!r} there, {value!r} now'
                   for key, value in self.config.items()
                   if held.get(key) != value]
        if changed:
            self.close()
            raise ValueError(f"The checkpoint in '{folder}' was made with "
                             f"another config ({'; '.join(changed)})")
        self.finished = {(r['method'], r['seed']): RunResult(**r)
                         for r in state['finished']}
        self.current = state['current']
        self.data = state.get('data')

    def check_data(self, fingerprint: Dict[str, str]):
        r"""Raises :class:`ValueError` naming what differs if the checkpoint
        was made on other data than that of :obj:`fingerprint` (see
        :func:`data_fingerprint`); else records it, to be saved."""
        if self.data is not None and self.data != fingerprint:
            names = dict(FINGERPRINT, num_classes='the number of classes')
            changed = [_difference(names[key], self.data.get(key),
                                   fingerprint.get(key))
                       for key in names
                       if self.data.get(key) != fingerprint.get(key)]
            raise ValueError(
                f"The checkpoint in '{osp.dirname(self.path)}' was made on "
                f"other data: {'; '.join(changed)}. The data files or the "
                f"data root changed since; resume on the same data, or "
                f"start a new checkpoint folder")
        self.data = fingerprint

    def close(self):
        r"""Releases the folder's lock (see :class:`Checkpoint`)."""
        self.lock.release()

    def result(self, method: str, seed: int) -> Optional[RunResult]:
        r"""The result of the run, if finished."""
        return self.finished.get((method, seed))

    def run_state(self, method: str, seed: int) -> Optional[Dict]:
        r"""The saved state of the unfinished run, if any."""
        current = self.current
        if current and (current['method'], current['seed']) == (method, seed):
            return current['state']
        return None

    def save_run(self, method: str, seed: int, state: Dict):
        r"""Saves the state of the current run (see
        :func:`~align_gnn.training.run`)."""
        self.current = dict(method=method, seed=seed, state=state)
        self.save()

    def save_result(self, result: RunResult):
        r"""Saves a finished run (and forgets the current run's state)."""
        self.finished[(result.method, result.seed)] = result
        self.current = None
        self.save()

    def save(self):
        state = dict(config=self.config, current=self.current,
                     data=self.data,
                     finished=[asdict(r) for r in self.finished.values()])
        atomic_write(self.path, partial(torch.save, state), binary=True)
