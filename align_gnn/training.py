r"""The run driver of node classification with (aligned) graph attention
networks on Planetoid, ogbn-arxiv and graph files: the model of a method,
its optimizer, a run with early stopping (in one process or several) and
many seeded runs. The epoch loops and the evaluation live in
:mod:`align_gnn.loops`, experiments (data, runs, results) in
:mod:`align_gnn.experiment`, the settings in :mod:`align_gnn.config`,
checkpoints in :mod:`align_gnn.checkpoint`, summaries and results files in
:mod:`align_gnn.results`. :file:`train_gat.py` is a thin command line over
them."""
import math
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch.nn.parallel import DistributedDataParallel
from ogb.nodeproppred import Evaluator
from tqdm import tqdm

from torch_geometric import seed_everything
from torch_geometric.data import Data

from align_gnn import device_loop, distributed, interrupts
from align_gnn.checkpoint import Checkpoint, rng_state, set_rng_state
from align_gnn.config import Config, default_hyperparameters, resolve_device
from align_gnn.conv import adversary_parameters, model_parameters
from align_gnn.data import prepare_data, select_split
from align_gnn.diagnostics import key_query_pca
from align_gnn.divergences import DIVERGENCES
from align_gnn.hetero_models import PLATONOV_MODELS, build_platonov_model
from align_gnn.loops import (
    evaluate,
    neighbor_loader,
    non_finite,
    train_epoch,
    train_epoch_minibatch,
)
from align_gnn.selection import BestAccuracy, DeviceSelection, make_selection
from align_gnn.models import (
    build_arxiv_model,
    build_model,
    num_parameters,
)
from align_gnn.results import RunResult
from align_gnn.recipe import LabelInput, add_label_features, loss_function
from align_gnn.precision import precision
from align_gnn.reproducibility import single_threaded_blas
from align_gnn.robustness import robustness
from align_gnn.schedule import alignment_weight, learning_rate


class RunFailed(ValueError):
    r"""A run that could not finish (:obj:`method`, :obj:`seed`, the
    :obj:`epoch` it stopped at if known), said in one line: see
    :class:`NonFiniteError`, :class:`OutOfMemory`."""
    def __init__(self, message: str, method: str, seed: int,
                 epoch: Optional[int] = None):
        super().__init__(message)
        self.method, self.seed, self.epoch = method, seed, epoch

    def record(self) -> Dict:
        r"""The failed run as results files record it."""
        return dict(method=self.method, seed=self.seed, epoch=self.epoch,
                    reason=str(self))


class NonFiniteError(RunFailed):
    r"""Raised by :func:`fit` when the training loss, the alignment loss or
    a parameter becomes NaN or infinite: the run stops at that epoch.
    :obj:`what` says which value."""
    def __init__(self, method: str, seed: int, epoch: int, what: str):
        super().__init__(
            f"{method} seed {seed}: {what} at epoch {epoch}; the run stopped "
            f"(a smaller learning rate may help)", method, seed, epoch)
        self.what = what


class OutOfMemory(RunFailed):
    r"""A run that ran out of GPU memory (see :func:`gpu_memory`)."""
    def __init__(self, method: str, seed: int):
        super().__init__(
            f"{method} seed {seed}: out of GPU memory; the run stopped (lower "
            f"--hidden, --heads or --batch-size, use --precision bf16, or "
            f"train on the CPU with --device cpu)", method, seed)


@contextmanager
def gpu_memory(method: str, seed: int) -> Iterator[None]:
    r"""Turns running out of GPU memory inside the block (building or
    training the run :obj:`method`, :obj:`seed`) into :class:`OutOfMemory`,
    after giving the cached memory back."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        torch.cuda.empty_cache()
        raise OutOfMemory(method, seed) from err


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


def make_optimizer(model: torch.nn.Module, config: Config,
                   method: str,
                   capturable: bool = False) -> torch.optim.Optimizer:
    r"""Adam or RMSprop (:obj:`config.optimizer`) over every parameter of
    :obj:`model` (of :obj:`method`) with :obj:`config.lr` and
    :obj:`config.weight_decay`; the adversaries' parameters (see
    :func:`~align_gnn.adversary_parameters`) form a second group with the
    learning rate :obj:`config.lr` times the method's
    :obj:`adversary_lr_scale` (see
    :meth:`~align_gnn.config.Config.alignment`). Each group keeps its
    learning rate after warm-up as :obj:`"initial_lr"` (see
    :func:`set_learning_rate`). With :obj:`capturable` (CUDA), the step
    can be captured in a CUDA graph: its counters and the learning rates
    are device tensors."""
    adversary = adversary_parameters(model)
    groups = [dict(params=model_parameters(model), initial_lr=config.lr)]
    if adversary:
        scale = config.alignment(method)['adversary_lr_scale']
        groups.append(dict(params=adversary, lr=config.lr * scale,
                           initial_lr=config.lr * scale))
    optimizer = (torch.optim.RMSprop if config.optimizer == 'rmsprop' else
                 torch.optim.Adam)
    if not capturable:
        return optimizer(groups, lr=config.lr,
                         weight_decay=config.weight_decay)
    device = next(model.parameters()).device
    for group in groups:
        group['lr'] = torch.tensor(group.get('lr', config.lr), device=device)
    return optimizer(groups, lr=torch.tensor(config.lr, device=device),
                     weight_decay=config.weight_decay, capturable=True)


def set_learning_rate(optimizer: torch.optim.Optimizer, epoch: int,
                      warmup: int):
    r"""Sets each group's learning rate for epoch :obj:`epoch` (from
    :obj:`1`) of a linear warm-up over :obj:`warmup` epochs to its
    :obj:`"initial_lr"` (see :func:`~align_gnn.schedule.learning_rate`)."""
    for group in optimizer.param_groups:
        lr = learning_rate(epoch, group['initial_lr'], warmup)
        if isinstance(group['lr'], torch.Tensor):  # capturable: in place
            group['lr'].fill_(lr)
        else:
            group['lr'] = lr


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
        return _fit(model, data, method, seed, config, progress, checkpoint)


def _fit(model: torch.nn.Module, data: Data, method: str, seed: int,
         config: Config, progress: bool,
         checkpoint: Optional[Checkpoint]) -> RunResult:
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
        return _fit_on_device(model, full, method, seed, config, evaluator,
                              progress)
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
        _final_metrics(module, full, evaluator, seed, config, labels)
        if distributed.is_main() else None)
    train_loss, align_loss = torch.stack(curves).t().tolist()
    history = dict(train_loss=train_loss, align_loss=align_loss,
                   val_acc=val_accs)
    return _run_result(module, method, seed, metrics, history, epoch,
                       best_epoch, seconds)


def labels_given(config: Config) -> bool:
    r"""Whether the runs of :obj:`config` take training labels as input."""
    return config.labels != 'none'


def _fit_on_device(model: torch.nn.Module, full: Data, method: str,
                   seed: int, config: Config, evaluator: Optional[Evaluator],
                   progress: bool) -> RunResult:
    # `fit` by a DeviceLoop: the same decisions, read every `every` epochs.
    device = full.x.device
    graphs = device.type == 'cuda'
    every = device_loop.READ_EVERY if graphs else 1
    optimizer = make_optimizer(model, config, method, capturable=graphs)
    align_weight = (config.alignment(method)['align_weight']
                    if method in DIVERGENCES else 0.0)
    selection = DeviceSelection(config.selection, config.patience, device)
    bar = tqdm(total=config.epochs, desc=f'{method} seed {seed}',
               leave=False, disable=not progress)
    start = time.perf_counter()
    with device_loop.self_loops(model, full.edge_index,
                                full.num_nodes) as edge_index:
        loop = device_loop.DeviceLoop(
            model, full, edge_index, optimizer, loss_function(config.loss),
            selection, config.epochs, graphs)
        for epoch in interrupts.deferring(range(1, config.epochs + 1)):
            loop.weight.fill_(alignment_weight(epoch - 1, align_weight,
                                               config.align_warmup))
            set_learning_rate(optimizer, epoch, config.lr_warmup)
            loop.epoch()
            if epoch % every and epoch < config.epochs:
                continue
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
    metrics = _final_metrics(model, full, evaluator, seed, config, None)
    train_loss, align_loss = loop.curves[:counted].t().tolist()
    history = dict(train_loss=train_loss, align_loss=align_loss,
                   val_acc=loop.scores[:counted].tolist())
    return _run_result(model, method, seed, metrics, history, counted,
                       int(selection.best_epoch), seconds)


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


def _run_result(model: torch.nn.Module, method: str, seed: int,
                metrics: Dict, history: Dict, epochs: int, best_epoch: int,
                seconds: float) -> RunResult:
    return RunResult(method=method, seed=seed, val_acc=metrics['val_acc'],
                     test_acc=metrics['test_acc'], ece=metrics['test_ece'],
                     nll=metrics['test_nll'], epochs=epochs,
                     best_epoch=best_epoch, seconds=seconds,
                     seconds_per_epoch=seconds / epochs,
                     params=num_parameters(model),
                     adversary_params=sum(
                         p.numel() for p in adversary_parameters(model)),
                     history=history, calibration=metrics['test_bins'],
                     attack=metrics['attack'],
                     keys_queries=metrics['keys_queries'])


def _final_metrics(model: torch.nn.Module, data: Data,
                   evaluator: Optional[Evaluator], seed: int,
                   config: Config, labels: Optional[LabelInput]) -> Dict:
    metrics = evaluate(model, data, evaluator, labels)
    if labels is not None:  # the attack and the PCA see the eval features
        data = data.clone()
        data.x = add_label_features(data.x, data.y,
                                    data.train_mask.nonzero().view(-1),
                                    data.num_classes)
    metrics['attack'] = {} if config.attack is None else robustness(
        model, data, config.budgets, config.attack, config.attack_epochs,
        seed)
    metrics['keys_queries'] = []
    if config.keys_queries and seed == config.seed:
        metrics['keys_queries'] = key_query_pca(model, data, seed=seed)
    return metrics


def run_many(data: Data, config: Config, progress: bool = False,
             checkpoint: Optional[Checkpoint] = None,
             failed: Optional[List[Dict]] = None) -> List[RunResult]:
    r"""Runs every method of :obj:`config` on the seeds
    :obj:`config.seed, ..., config.seed + config.runs - 1`, the methods
    interleaved within each seed (so that slow phases of a shared machine
    hit all methods alike). With a :obj:`checkpoint`, runs it holds as
    finished are not trained again, the interrupted one continues, and
    every finished run is saved.

    A run that becomes non-finite raises :class:`NonFiniteError` (one that
    runs out of GPU memory: :class:`OutOfMemory`), or, if a list
    :obj:`failed` is given, is appended to it (see
    :meth:`RunFailed.record`) and the other runs go on. An interrupt
    (:class:`KeyboardInterrupt`) carries the finished runs as its
    :obj:`finished` attribute."""
    seeds = range(config.seed, config.seed + config.runs)
    bar = tqdm(total=len(seeds) * len(config.methods), desc='runs',
               disable=not (progress and distributed.is_main()))
    results = []
    try:
        for seed in seeds:
            for method in config.methods:
                interrupts.check()
                result = (checkpoint.result(method, seed) if checkpoint else
                          None)
                if result is None:
                    try:
                        with gpu_memory(method, seed):
                            result = run(data, method, seed, config,
                                         progress, checkpoint)
                    except RunFailed as err:
                        if failed is None:
                            raise
                        failed.append(err.record())
                        bar.update()
                        continue
                    if checkpoint is not None:
                        checkpoint.save_result(result)
                results.append(result)
                bar.set_postfix(method=method,
                                test_acc=f'{results[-1].test_acc:.3f}',
                                refresh=False)
                bar.update()
    except KeyboardInterrupt as err:
        err.finished = results
        raise
    finally:
        bar.close()
    return results
