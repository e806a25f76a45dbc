r"""Checkpoints: the progress of an experiment in one file, written
atomically, from which :func:`~align_gnn.training.run_many` and
:func:`~align_gnn.training.experiment` continue exactly; and the states of
the random number generators they save."""
import glob
import os
import os.path as osp
import random
from dataclasses import asdict
from functools import partial
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from align_gnn import distributed
from align_gnn.config import Config, config_record
from align_gnn.data.utils import _require
from align_gnn.results import RunResult, atomic_write


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


class Checkpoint:
    r"""The progress of an experiment in the file
    :obj:`<folder>/checkpoint.pt`, written atomically: the config, the
    finished runs' results and the full state of the current run (model,
    optimizer with the adversaries' parameters, random number generators,
    early stopping), saved every :obj:`every` epochs and after every run.
    :func:`~align_gnn.training.run_many` and
    :func:`~align_gnn.training.experiment` continue from it exactly (up to
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
        if not osp.isfile(self.path):
            return
        if not resume:
            raise ValueError(f"'{folder}' already holds a checkpoint; resume "
                             f"it (--resume) or choose another folder")
        # Temporary files of writes that a kill interrupted:
        for tmp in glob.glob(osp.join(folder, f'.{self.FILE}-*.tmp')):
            os.unlink(tmp)
        state = torch.load(self.path, map_location='cpu', weights_only=True)
        changed = [f'{key}={state["config"].get(key)!r} there, {value!r} now'
                   for key, value in self.config.items()
                   if state['config'].get(key) != value]
        if changed:
            raise ValueError(f"The checkpoint in '{folder}' was made with "
                             f"another config ({'; '.join(changed)})")
        self.finished = {(r['method'], r['seed']): RunResult(**r)
                         for r in state['finished']}
        self.current = state['current']

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
                     finished=[asdict(r) for r in self.finished.values()])
        atomic_write(self.path, partial(torch.save, state), binary=True)
