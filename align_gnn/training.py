r"""The run driver of node classification with (aligned) graph attention
networks on Planetoid, ogbn-arxiv and graph files: the model of a method,
a run with early stopping (in one process or several, by the epoch loop
here or kept on the device, see :mod:`align_gnn.device_runs`) and many
seeded runs (one at a time, or several at once on a GPU). The optimizer
lives in :mod:`align_gnn.optimization`, failed runs in
:mod:`align_gnn.failures`, the end of a run in :mod:`align_gnn.outcome`,
the epoch loops and the evaluation in
:mod:`align_gnn.loops`, experiments (data, runs, results) in
:mod:`align_gnn.experiment`, the settings in :mod:`align_gnn.config`,
checkpoints in :mod:`align_gnn.checkpoint`, summaries and results files in
:mod:`align_gnn.results`. :file:`train_gat.py` is a thin command line over
them."""
import math
import time
from functools import partial
from typing import Dict, List, Optional, Tuple

import torch
from torch.nn.parallel import DistributedDataParallel
from ogb.nodeproppred import Evaluator
from tqdm import tqdm

from torch_geometric import seed_everything
from torch_geometric.data import Data

from align_gnn import device_loop, distributed, interrupts
from align_gnn.checkpoint import Checkpoint, rng_state, set_rng_state
from align_gnn.config import Config, default_hyperparameters, resolve_device
from align_gnn.data import prepare_data, select_split
from align_gnn.device_runs import Run, device_run, finish, interleave
from align_gnn.divergences import DIVERGENCES
from align_gnn.failures import NonFiniteError, RunFailed, gpu_memory
from align_gnn.hetero_models import PLATONOV_MODELS, build_platonov_model
from align_gnn.loops import (
    evaluate,
    neighbor_loader,
    non_finite,
    train_epoch,
    train_epoch_minibatch,
)
from align_gnn.models import build_arxiv_model, build_model
from align_gnn.optimization import make_optimizer, set_learning_rate
from align_gnn.outcome import final_metrics, run_result
from align_gnn.precision import precision
from align_gnn.recipe import LabelInput, loss_function
from align_gnn.reproducibility import single_threaded_blas
from align_gnn.results import RunResult
from align_gnn.schedule import alignment_weight
from align_gnn.selection import BestAccuracy, make_selection


def make_model(method: str, data: Data, config: Config) -> torch.nn.Module:
    r"""The model of :obj:`method` for :obj:`config.dataset`:
    :class:`~align_gnn.models.GAT` for Planetoid,
    :class:`~align_gnn.models.ArxivGAT` for ogbn-arxiv (DGL's recipe, input
    dropout 0.25 with label reuse; :obj:`config.hidden` channels per head,
    :obj:`config.heads`, :obj:`config.layers` and :obj:`config.dropout`
    where set), with :obj:`data.num_features` inputs
    (plus :obj:`data.num_classes` with labels as input) and
    :obj:`data.num_classes` outputs."""
    setting = config.alignment(method)
    options = (setting['align_samples'], setting['rho'], config.conv,
               setting['adversary_channels'], config.align_over)
    in_channels = data.num_features + (data.num_classes
                                       if config.labels != 'none' else 0)
    if config.model in PLATONOV_MODELS:
        return build_platonov_model(
            config.model, method, in_channels, data.num_classes,
            *options[:4], hidden=config.hidden, heads=config.heads,
            layers=config.layers, dropout=config.dropout,
            align_over=config.align_over)
    if config.dataset == 'ogbn-arxiv':
        return build_arxiv_model(
            method, in_channels, data.num_classes, *options,
            att_dst=config.att_dst, edge_dropout=config.edge_drop,
            normalize=config.norm_adj,
            input_dropout=0.25 if config.labels == 'reuse' else 0.1,
            **{name: value for name, value in (
                ('hidden_channels', config.hidden), ('heads', config.heads),
                ('num_layers', config.layers), ('dropout', config.dropout))
               if value is not None})
    output_heads = default_hyperparameters(config.dataset)['output_heads']
    return build_model(method, data.num_features, data.num_classes,
                       output_heads, *options)


def run(data: Data, method: str, seed: int, config: Config,
        progress: bool = False,
        checkpoint: Optional[Checkpoint] = None) -> RunResult:
    r"""Builds the model of :obj:`method` (see :func:`make_model`) from seed
    :obj:`seed` and trains it (see :func:`fit`).

    Args:
        data (Data): The graph (see :func:`~align_gnn.data.load_dataset`).
        method (str): One of :data:`~align_gnn.models.METHODS`.
        seed (int): The seed of every random number generator.
        config (Config): The hyper-parameters.
        progress (bool, optional): Show a progress bar over epochs.
            (default: :obj:`False`)
        checkpoint (Checkpoint, optional): Continue from its saved state of
            this run, if any, and save the state every
            :obj:`checkpoint.every` epochs. (default: :obj:`None`)
    """
    # With fixed splits (heterophilous sets), run i uses split i:
    data = select_split(data, seed - config.seed)
    seed_everything(seed)
    model = make_model(method, data, config).to(resolve_device(config.device))
    return fit(model, data, method, seed, config, progress, checkpoint)


def fit(model: torch.nn.Module, data: Data, method: str, seed: int,
        config: Config, progress: bool = False,
        checkpoint: Optional[Checkpoint] = None) -> RunResult:
    r"""Trains :obj:`model` (in place, on its device) with early stopping on
    validation accuracy (validation loss breaks ties), restores the best
    weights (those of epoch 1 at least) and evaluates them; arguments as in
    :func:`run`.

    The alignment weight is ramped up over the first
    :obj:`config.align_warmup` epochs (see
    :func:`~align_gnn.alignment_weight`).

    Full-batch, or with :obj:`config.batch_size` on neighbour-sampled
    subgraphs of the training nodes, evaluated on the full graph. In a
    process group of several processes (see :mod:`align_gnn.distributed`),
    the model is wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel` (the adversaries'
    gradients are all-reduced with the rest), each rank trains on its shard
    of the training nodes, rank 0 evaluates and every rank takes its
    decisions, so that all ranks end with the same weights and result.

    Raises :class:`NonFiniteError` at the epoch where the loss or a
    parameter becomes NaN or infinite. Under
    :func:`~align_gnn.interrupts.handle`, an interrupt ends the current
    epoch, saves it to :obj:`checkpoint` (if given) and raises
    :class:`~align_gnn.interrupts.Interrupted`.

    Training and evaluation run in :obj:`config.precision` (see
    :func:`~align_gnn.precision.precision`). With :obj:`config.capture`,
    full-batch training is kept on the device where it can be (see
    :mod:`~align_gnn.device_loop`; on CUDA as CUDA graphs, the status read
    every :data:`~align_gnn.device_loop.READ_EVERY` epochs).
    """
    with precision(config.precision, next(model.parameters()).device):
        return finish(_fit(model, data, method, seed, config, progress,
                           checkpoint))


def run_turns(data: Data, method: str, seed: int, config: Config) -> Run:
    r""":func:`run` as a generator (see
    :func:`~align_gnn.device_runs.interleave`): where the run is kept on the
    device, it pauses before each read of its status, else it runs whole at
    once; runs out of GPU memory raise :class:`OutOfMemory`. Training and
    evaluation run in the :func:`~align_gnn.precision.precision` context
    of the caller's."""
    data = select_split(data, seed - config.seed)
    seed_everything(seed)
    with gpu_memory(method, seed):
        model = make_model(method, data, config).to(
            resolve_device(config.device))
        return (yield from _fit(model, data, method, seed, config, False,
                                None))


def _fit(model: torch.nn.Module, data: Data, method: str, seed: int,
         config: Config, progress: bool,
         checkpoint: Optional[Checkpoint]) -> Run:
    # `fit`, pausing where the run is kept on the device.
    single_threaded_blas()  # the same bits on any number of threads
    device = next(model.parameters()).device
    full = prepare_data(data, config.features).to(device)
    evaluator = (Evaluator(config.dataset)
                 if config.dataset == 'ogbn-arxiv' else None)
    loader = None
    if config.batch_size is not None:
        train_nodes = distributed.shard(data.train_mask.nonzero().view(-1))
        loader = neighbor_loader(data, train_nodes, config.fanout,
                                 config.batch_size)
    if config.capture and device_loop.unsupported(
            model, full.x, loader is None, labels_given(config),
            distributed.world_size(), checkpoint is not None) is None:
        return (yield from device_run(model, full, method, seed, config,
                                      evaluator, progress))
    return _fit_epochs(model, data, full, loader, evaluator, method, seed,
                       config, progress, checkpoint)


def _fit_epochs(model: torch.nn.Module, data: Data, full: Data,
                loader: Optional[object], evaluator: Optional[Evaluator],
                method: str, seed: int, config: Config, progress: bool,
                checkpoint: Optional[Checkpoint]) -> RunResult:
    # `fit` by the epoch loop, reading each epoch on the host.
    device = full.x.device
    module = model
    if distributed.world_size() > 1:
        model = DistributedDataParallel(
            module, device_ids=[device.index] if device.type == 'cuda' else
            None)
    optimizer = make_optimizer(module, config, method)
    align_weight = (config.alignment(method)['align_weight']
                    if method in DIVERGENCES else 0.0)
    labels = (None if not labels_given(config) else LabelInput(
        data.num_classes, reuse=int(config.labels == 'reuse')))
    loss_fn = loss_function(config.loss)

    best_acc, best_nll, best_epoch, best_state = -1.0, math.inf, 0, None
    selection = make_selection(config.selection, config.patience)
    epoch, elapsed = 0, 0.0  # epochs done and their seconds
    curves, val_accs = [], []  # (loss, alignment loss) per epoch
    saved = checkpoint.run_state(method, seed) if checkpoint else None
    if saved is not None:
        (best_acc, best_nll, best_epoch, best_state, epoch, elapsed, curves,
         val_accs) = _resume(saved, module, optimizer, selection)

    bar = tqdm(range(epoch + 1, config.epochs + 1), initial=epoch,
               total=config.epochs, desc=f'{method} seed {seed}',
               leave=False, disable=not (progress and distributed.is_main()))
    start = time.perf_counter()
    for epoch in interrupts.deferring(bar):
        weight = alignment_weight(epoch - 1, align_weight,
                                  config.align_warmup)
        set_learning_rate(optimizer, epoch, config.lr_warmup)
        if loader is None:
            losses = train_epoch(model, full, optimizer, weight, labels,
                                 loss_fn)
        else:
            losses = train_epoch_minibatch(model, loader, optimizer, weight,
                                           device, loss_fn)
        curves.append(distributed.mean(torch.stack(losses)))
        what = non_finite(curves[-1], module)
        if what is not None:
            bar.close()
            raise NonFiniteError(method, seed, epoch, what)
        distributed.sync_buffers(module)
        metrics = distributed.broadcast_object(
            evaluate(module, full, evaluator, labels, loss_fn)
            if distributed.is_main() else None)
        val_acc, val_loss = metrics['val_acc'], metrics['val_loss']
        val_accs.append(val_acc)
        keep, stop = selection.step(val_acc, val_loss)
        if keep:
            best_acc, best_nll, best_epoch = val_acc, val_loss, epoch
            best_state = {k: v.clone() for k, v in module.state_dict().items()}
        elif stop:
            break
        signal = interrupts.requested()
        if checkpoint is not None and (epoch % checkpoint.every == 0
                                       or signal is not None):
            checkpoint.save_run(method, seed, dict(
                epoch=epoch, model=module.state_dict(),
                optimizer=optimizer.state_dict(), rng=rng_state(device),
                best_acc=best_acc, best_nll=best_nll, best_epoch=best_epoch,
                best_model=best_state, curves=torch.stack(curves),
                val_accs=val_accs, selection=selection.state_dict(),
                seconds=elapsed + time.perf_counter() - start))
        interrupts.check()
        bar.set_postfix(val_acc=f'{val_acc:.3f}', best=f'{best_acc:.3f}')
    seconds = elapsed + time.perf_counter() - start
    bar.close()

    module.load_state_dict(best_state)
    metrics = distributed.broadcast_object(
        final_metrics(module, full, evaluator, seed, config, labels)
        if distributed.is_main() else None)
    train_loss, align_loss = torch.stack(curves).t().tolist()
    history = dict(train_loss=train_loss, align_loss=align_loss,
                   val_acc=val_accs)
    return run_result(module, method, seed, metrics, history, epoch,
                      best_epoch, seconds)


def labels_given(config: Config) -> bool:
    r"""Whether the runs of :obj:`config` take training labels as input."""
    return config.labels != 'none'


def _resume(saved: Dict, model: torch.nn.Module,
            optimizer: torch.optim.Optimizer,
            selection: BestAccuracy) -> Tuple:
    # Loads a checkpoint's run state into the model, the optimizer, the
    # random generators and the selection rule; returns the rest of it, as
    # `fit` keeps it.
    model.load_state_dict(saved['model'])
    optimizer.load_state_dict(saved['optimizer'])
    set_rng_state(saved['rng'])
    if 'selection' in saved:
        selection.load_state_dict(saved['selection'])
    else:  # a checkpoint from before selection.py
        selection.load_state_dict(dict(
            best_acc=saved['best_acc'], best_loss=saved['best_nll'],
            epoch=saved['epoch'], best_epoch=saved['best_epoch']))
    return (saved['best_acc'], saved['best_nll'], saved['best_epoch'],
            saved['best_model'], saved['epoch'], saved['seconds'],
            list(saved['curves']), saved['val_accs'])


def run_many(data: Data, config: Config, progress: bool = False,
             checkpoint: Optional[Checkpoint] = None,
             failed: Optional[List[Dict]] = None,
             at_once: Optional[int] = None) -> List[RunResult]:
    r"""Runs every method of :obj:`config` on the seeds
    :obj:`config.seed, ..., config.seed + config.runs - 1`, the methods
    interleaved within each seed (so that slow phases of a shared machine
    hit all methods alike). With a :obj:`checkpoint`, runs it holds as
    finished are not trained again, the interrupted one continues, and
    every finished run is saved.

    On CUDA with :obj:`config.capture` (and no checkpoint, one process),
    the runs go several at once (see
    :func:`~align_gnn.device_runs.interleave`): :obj:`at_once` of them, or
    (:obj:`None`) as many as the free GPU memory holds; the results are
    those of one run at a time, in the same order. :obj:`at_once` above 1
    interleaves them on the CPU too (no faster there).

    A run that becomes non-finite raises :class:`NonFiniteError` (one that
    runs out of GPU memory:
    :class:`~align_gnn.failures.OutOfMemory`), or, if a list
    :obj:`failed` is given, is appended to it (see
    :meth:`RunFailed.record`) and the other runs go on. An interrupt
    (:class:`KeyboardInterrupt`) carries the finished runs as its
    :obj:`finished` attribute."""
    keys = [(seed, method)
            for seed in range(config.seed, config.seed + config.runs)
            for method in config.methods]
    device = resolve_device(config.device)
    together = (checkpoint is None and config.capture
                and distributed.world_size() == 1
                and (device.type == 'cuda' if at_once is None else
                     at_once > 1))
    bar = tqdm(total=len(keys), desc='runs',
               disable=not (progress and distributed.is_main()))
    outcomes: Dict[Tuple[int, str], object] = {}
    try:
        if together:
            with precision(config.precision, device):
                for key, outcome in interleave(_starts(data, config, keys),
                                               device, at_once):
                    _finished(outcomes, key, outcome, failed, bar)
        else:
            for seed, method in keys:
                interrupts.check()
                outcome = (checkpoint.result(method, seed) if checkpoint
                           else None)
                if outcome is None:
                    try:
                        with gpu_memory(method, seed):
                            outcome = run(data, method, seed, config,
                                          progress, checkpoint)
                    except RunFailed as err:
                        outcome = err
                    if checkpoint is not None and not isinstance(
                            outcome, RunFailed):
                        checkpoint.save_result(outcome)
                _finished(outcomes, (seed, method), outcome, failed, bar)
    except KeyboardInterrupt as err:
        err.finished = _in_order(outcomes, keys, failed=None)
        raise
    finally:
        bar.close()
    return _in_order(outcomes, keys, failed)


def _starts(data: Data, config: Config, keys: List[Tuple[int, str]]):
    # The runs for `interleave`, each taken up after a check for signals.
    for seed, method in keys:
        interrupts.check()
        yield (seed, method), partial(run_turns, data, method, seed, config)


def _finished(outcomes: Dict, key: Tuple[int, str], outcome: object,
              failed: Optional[List[Dict]], bar: tqdm):
    # A run's result or failure (raised unless `failed` collects them).
    if isinstance(outcome, RunFailed) and failed is None:
        raise outcome
    outcomes[key] = outcome
    if not isinstance(outcome, RunFailed):
        bar.set_postfix(method=key[1], test_acc=f'{outcome.test_acc:.3f}',
                        refresh=False)
    bar.update()


def _in_order(outcomes: Dict, keys: List[Tuple[int, str]],
              failed: Optional[List[Dict]]) -> List[RunResult]:
    # The results in the order of `keys`; failures appended to `failed`.
    results = []
    for key in keys:
        outcome = outcomes.get(key)
        if isinstance(outcome, RunFailed):
            if failed is not None:
                failed.append(outcome.record())
        elif outcome is not None:
            results.append(outcome)
    return results
