r"""Node classification with (aligned) graph attention networks on
Planetoid, ogbn-arxiv and graph files: the epoch loops (full-batch or on
neighbour samples, in one process or several), evaluation, early stopping,
many seeded runs and experiments. The settings live in
:mod:`align_gnn.config`, calibration in :mod:`align_gnn.metrics`,
checkpoints in :mod:`align_gnn.checkpoint`, summaries and results files in
:mod:`align_gnn.results`. :file:`train_gat.py` is a thin command line over
them."""
import logging
import math
import time
import warnings
from dataclasses import asdict
from typing import (Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple, Union)

import torch
import torch.nn.functional as F
import torch_geometric
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from ogb.nodeproppred import Evaluator
from tqdm import tqdm

from torch_geometric import seed_everything
from torch_geometric.data import Data
from torch_geometric.nn import SuperGATConv

from align_gnn import distributed, interrupts
from align_gnn.checkpoint import (
    Checkpoint,
    data_fingerprint,
    rng_state,
    set_rng_state,
)
from align_gnn.config import (
    SUPERGAT_LOSS_WEIGHT,
    Config,
    config_record,
    default_hyperparameters,
    recommended_alignment,
    resolve_device,
)
from align_gnn.conv import (
    adversary_parameters,
    alignment_loss,
    model_parameters,
)
from align_gnn.data import (
    add_edge_noise,
    dataset_name,
    select_split,
    is_graph_file,
    load_dataset,
    prepare_data,
)
from align_gnn.diagnostics import (
    AttentionCheck,
    attention_check,
    key_query_pca,
)
from align_gnn.divergences import DIVERGENCES
from align_gnn.hetero_models import PLATONOV_MODELS, build_platonov_model
from align_gnn.metrics import bins_ece, reliability_bins, roc_auc
from align_gnn.selection import make_selection
from align_gnn.models import (
    build_arxiv_model,
    build_model,
    num_parameters,
)
from align_gnn.results import RunResult, environment, summarize
from align_gnn.recipe import LabelInput, add_label_features, loss_function
from align_gnn.reproducibility import single_threaded_blas
from align_gnn.robustness import robustness
from align_gnn.schedule import alignment_weight, learning_rate

log = logging.getLogger('align_gnn')


class NonFiniteError(ValueError):
    r"""Raised by :func:`fit` when the training loss, the alignment loss or
    a parameter becomes NaN or infinite: the run stops at that epoch.
    :obj:`method`, :obj:`seed`, :obj:`epoch` and :obj:`what` (which value)
    say where."""
    def __init__(self, method: str, seed: int, epoch: int, what: str):
        super().__init__(
            f"{method} seed {seed}: {what} at epoch {epoch}; the run stopped "
            f"(a smaller learning rate may help)")
        self.method, self.seed, self.epoch, self.what = (method, seed, epoch,
                                                         what)

    def record(self) -> Dict:
        r"""The failed run as results files record it."""
        return dict(method=self.method, seed=self.seed, epoch=self.epoch,
                    reason=str(self))


def non_finite(losses: Tensor, model: torch.nn.Module) -> Optional[str]:
    r"""What is not finite after a training step: the training loss or the
    alignment loss (:obj:`losses`, see :func:`train_epoch`) or a parameter of
    :obj:`model` (named); :obj:`None` if all are finite. Reads one boolean
    from the device (the epoch's evaluation waits for it anyway)."""
    params = [p for p in model.parameters()]
    checks = torch.stack([torch.isfinite(losses).all(),
                          *[torch.isfinite(p).all() for p in params]])
    if bool(checks.all()):
        return None
    for name, value in zip(('training loss', 'alignment loss'),
                           losses.tolist()):
        if not math.isfinite(value):
            return f'the {name} became {value}'
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            return f"the parameter '{name}' became non-finite (NaN or inf)"
    return 'a value became non-finite'


# Model #######################################################################


def auxiliary_loss(model: torch.nn.Module, align_weight: float) -> Tensor:
    r""":obj:`align_weight` times :func:`~align_gnn.alignment_loss` plus
    :obj:`4.0` times the self-supervised attention losses of
    :class:`~torch_geometric.nn.conv.SuperGATConv` layers (0-dim)."""
    return align_weight * alignment_loss(model) + _supergat_loss(model)


def _supergat_loss(model: torch.nn.Module) -> Tensor:
    losses = [SUPERGAT_LOSS_WEIGHT * module.get_attention_loss()
              for module in model.modules()
              if isinstance(module, SuperGATConv)]
    return sum(losses) if losses else 0.0


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


# Training and evaluation #####################################################


def train_epoch(model: torch.nn.Module, data: Data,
                optimizer: torch.optim.Optimizer, align_weight: float,
                labels: Optional[LabelInput] = None,
                loss_fn=F.cross_entropy) -> Tuple[Tensor, Tensor]:
    r"""One full-batch step on :obj:`loss_fn` (cross-entropy) of the
    training nodes (with :obj:`labels` as input, of those whose labels are
    not input) plus :func:`auxiliary_loss`; returns the loss and the
    (unweighted) alignment loss, detached 0-dim tensors (reading them is
    left to the caller, as it waits for the device)."""
    model.train()
    if labels is None:
        def forward():
            return model(data.x, data.edge_index), data.train_mask
    else:
        def forward():
            return labels.train_forward(model, data)
    return _step(model, optimizer, forward, data.y, align_weight, loss_fn)


def train_epoch_minibatch(
    model: torch.nn.Module,
    loader: Iterable[Data],
    optimizer: torch.optim.Optimizer,
    align_weight: float,
    device: torch.device,
    loss_fn=F.cross_entropy,
) -> Tuple[Tensor, Tensor]:
    r"""One pass over the neighbour-sampled subgraphs of :obj:`loader` (see
    :func:`neighbor_loader`), a step per subgraph on :obj:`loss_fn`
    (cross-entropy) of its :obj:`batch_size` seed nodes plus
    :func:`auxiliary_loss` of its
    aligned layers; returns the mean loss and alignment loss over steps, as
    :func:`train_epoch`."""
    model.train()
    total = torch.zeros(2, device=device)
    for steps, batch in enumerate(loader, start=1):
        batch = batch.to(device)
        total += torch.stack(_step(
            model, optimizer, lambda: (model(batch.x, batch.edge_index),
                                       slice(0, batch.batch_size)),
            batch.y, align_weight, loss_fn))
    loss, align = total / steps
    return loss, align


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
          forward: Callable[[], Tuple[Tensor, Union[Tensor, slice]]],
          y: Tensor, align_weight: float,
          loss_fn: Callable) -> Tuple[Tensor, Tensor]:
    # `forward()`: the logits and the nodes of the loss.
    optimizer.zero_grad()
    out, target = forward()
    align = alignment_loss(model)
    loss = loss_fn(out[target], y[target])
    loss = loss + align_weight * align + _supergat_loss(model)
    loss.backward()
    optimizer.step()
    return loss.detach(), align.detach()


def neighbor_loader(data: Data, input_nodes: Tensor, fanout: Sequence[int],
                    batch_size: int) -> Iterable[Data]:
    r"""PyG's :class:`~torch_geometric.loader.NeighborLoader` over the
    shuffled :obj:`input_nodes` of :obj:`data`, sampling :obj:`fanout[l]`
    neighbours per node at hop :obj:`l` (:obj:`-1`: all)."""
    require_neighbor_sampling()
    from torch_geometric.loader import NeighborLoader
    data = Data(x=data.x, edge_index=data.edge_index, y=data.y,
                num_nodes=data.num_nodes)
    with warnings.catch_warnings():  # torch-sparse's sampler is deprecated
        warnings.filterwarnings('ignore', "Using 'NeighborSampler' without")
        return NeighborLoader(data, num_neighbors=list(fanout),
                              input_nodes=input_nodes, batch_size=batch_size,
                              shuffle=True)


def require_neighbor_sampling():
    r"""Raises :class:`ImportError` with what to install if neither
    :obj:`torch-sparse` nor :obj:`pyg-lib` is there (PyG's neighbour
    sampling needs one of them)."""
    if not (torch_geometric.typing.WITH_TORCH_SPARSE
            or torch_geometric.typing.WITH_PYG_LIB):
        raise ImportError(
            "Neighbour sampling (batch_size, --batch-size) needs torch-sparse "
            "or pyg-lib: install the 'scale' extra with `pip install "
            "--no-build-isolation -e '.[scale]'`")


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Data,
             evaluator: Optional[Evaluator] = None,
             labels: Optional[LabelInput] = None,
             loss_fn: Callable = F.cross_entropy) -> Dict[str, float]:
    r"""Accuracy, mean negative log-likelihood and :obj:`loss_fn` on the
    train, validation and test nodes (keys :obj:`"train_acc"`,
    :obj:`"train_nll"`, :obj:`"train_loss"`, ...) and the test expected
    calibration error (:obj:`"test_ece"`), from one full-graph forward pass
    (with :obj:`labels`, the training labels as input, see
    :meth:`~align_gnn.recipe.LabelInput.eval_forward`). Accuracies are
    :obj:`evaluator`'s, if given
    (e.g. :class:`ogb.nodeproppred.Evaluator`). On a graph whose
    :obj:`metric` is :obj:`"roc_auc"` (two classes), the :obj:`"*_acc"`
    entries hold the ROC-AUC of the logit difference instead (see
    :func:`~align_gnn.metrics.roc_auc`)."""
    model.eval()
    out = (model(data.x, data.edge_index) if labels is None else
           labels.eval_forward(model, data))
    metrics = {}
    for split in ('train', 'val', 'test'):
        mask = data[f'{split}_mask']
        logits, y = out[mask], data.y[mask]
        pred = logits.argmax(-1)
        if getattr(data, 'metric', 'acc') == 'roc_auc':
            acc = roc_auc(logits[:, 1] - logits[:, 0], y)
        elif evaluator is None:
            acc = int(pred.eq(y).sum()) / len(y)
        else:
            acc = float(evaluator.eval({'y_true': y.view(-1, 1),
                                        'y_pred': pred.view(-1, 1)})['acc'])
        metrics[f'{split}_acc'] = acc
        metrics[f'{split}_nll'] = float(F.cross_entropy(logits, y))
        metrics[f'{split}_loss'] = float(loss_fn(logits, y))
    bins = reliability_bins(out[data.test_mask].softmax(dim=-1),
                            data.y[data.test_mask])
    metrics['test_ece'], metrics['test_bins'] = bins_ece(bins), bins
    return metrics


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
                   method: str) -> torch.optim.Optimizer:
    r"""Adam or RMSprop (:obj:`config.optimizer`) over every parameter of
    :obj:`model` (of :obj:`method`) with :obj:`config.lr` and
    :obj:`config.weight_decay`; the adversaries' parameters (see
    :func:`~align_gnn.adversary_parameters`) form a second group with the
    learning rate :obj:`config.lr` times the method's
    :obj:`adversary_lr_scale` (see
    :meth:`~align_gnn.config.Config.alignment`). Each group keeps its
    learning rate after warm-up as :obj:`"initial_lr"` (see
    :func:`set_learning_rate`)."""
    adversary = adversary_parameters(model)
    groups = [dict(params=model_parameters(model), initial_lr=config.lr)]
    if adversary:
        scale = config.alignment(method)['adversary_lr_scale']
        groups.append(dict(params=adversary, lr=config.lr * scale,
                           initial_lr=config.lr * scale))
    optimizer = (torch.optim.RMSprop if config.optimizer == 'rmsprop' else
                 torch.optim.Adam)
    return optimizer(groups, lr=config.lr, weight_decay=config.weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, epoch: int,
                      warmup: int):
    r"""Sets each group's learning rate for epoch :obj:`epoch` (from
    :obj:`1`) of a linear warm-up over :obj:`warmup` epochs to its
    :obj:`"initial_lr"` (see :func:`~align_gnn.schedule.learning_rate`)."""
    for group in optimizer.param_groups:
        group['lr'] = learning_rate(epoch, group['initial_lr'], warmup)


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
    """
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
    module = model
    if distributed.world_size() > 1:
        model = DistributedDataParallel(
            module, device_ids=[device.index] if device.type == 'cuda' else
            None)
    optimizer = make_optimizer(module, config, method)
    align_weight = (config.alignment(method)['align_weight']
                    if method in DIVERGENCES else 0.0)
    labels = (None if config.labels == 'none' else LabelInput(
        data.num_classes, reuse=int(config.labels == 'reuse')))
    loss_fn = loss_function(config.loss)

    best_acc, best_nll, best_epoch, best_state = -1.0, math.inf, 0, None
    selection = make_selection(config.selection, config.patience)
    epoch, elapsed = 0, 0.0  # epochs done and their seconds
    curves, val_accs = [], []  # (loss, alignment loss) per epoch
    saved = checkpoint.run_state(method, seed) if checkpoint else None
    if saved is not None:
        module.load_state_dict(saved['model'])
        optimizer.load_state_dict(saved['optimizer'])
        set_rng_state(saved['rng'])
        best_acc, best_nll = saved['best_acc'], saved['best_nll']
        best_epoch, best_state = saved['best_epoch'], saved['best_model']
        epoch, elapsed = saved['epoch'], saved['seconds']
        curves, val_accs = list(saved['curves']), saved['val_accs']
        if 'selection' in saved:
            selection.load_state_dict(saved['selection'])
        else:  # a checkpoint from before selection.py
            selection.load_state_dict(dict(
                best_acc=best_acc, best_loss=best_nll, epoch=epoch,
                best_epoch=best_epoch))

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
    return RunResult(method=method, seed=seed, val_acc=metrics['val_acc'],
                     test_acc=metrics['test_acc'], ece=metrics['test_ece'],
                     nll=metrics['test_nll'], epochs=epoch,
                     best_epoch=best_epoch, seconds=seconds,
                     seconds_per_epoch=seconds / epoch,
                     params=num_parameters(module),
                     adversary_params=sum(
                         p.numel() for p in adversary_parameters(module)),
                     history=dict(train_loss=train_loss,
                                  align_loss=align_loss, val_acc=val_accs),
                     calibration=metrics['test_bins'],
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

    A run that becomes non-finite raises :class:`NonFiniteError`, or, if a
    list :obj:`failed` is given, is appended to it (see
    :meth:`NonFiniteError.record`) and the other runs go on. An interrupt
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
                        result = run(data, method, seed, config, progress,
                                     checkpoint)
                    except NonFiniteError as err:
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


# Experiments #################################################################


def experiment(config: Config, root: Optional[str] = None,
               progress: bool = False,
               checkpoint: Optional[Checkpoint] = None) -> Dict:
    r"""Loads the data set (see :func:`~align_gnn.data.load_dataset`; with
    several processes, rank 0 first), builds each method's model once (so
    that bad arguments fail before any training), checks it against
    :obj:`checkpoint`'s data (see
    :meth:`~align_gnn.checkpoint.Checkpoint.check_data`), runs every method of :obj:`config` on
    every seed (continuing from :obj:`checkpoint`, if given, see
    :func:`run_many`) and returns the results as
    :obj:`{"dataset", "config", "runs": [...], "summary": {method: ...},
    "environment": {...}}` (accuracies as fractions). Runs that became
    non-finite are left out of :obj:`"runs"` and listed under
    :obj:`"failed"` (see :class:`NonFiniteError`), counted per method in
    the summary's :obj:`"failed"`; an interrupt carries the finished runs'
    dictionary, marked :obj:`"incomplete"`, as its :obj:`results`."""
    with distributed.main_first():
        data = load_data(config, root)
    if checkpoint is not None:
        checkpoint.check_data(data_fingerprint(data))
    for method in config.methods:  # the layers' arguments, before training
        make_model(method, data, config)
    for method in config.methods:
        unset = [name for name in recommended_alignment(config.dataset,
                                                        method)
                 if getattr(config, name) is None]
        if unset and distributed.is_main():
            log.info(f"{method} on {dataset_name(config.dataset)}: the "
                     f"study's choice of {', '.join(unset)} (all: "
                     f"{config.alignment(method)})")
    metric = getattr(data, 'metric', 'acc')
    failed = []
    try:
        results = run_many(data, config, progress, checkpoint, failed)
    except KeyboardInterrupt as err:
        err.results = _results(config, getattr(err, 'finished', []), failed,
                               metric)
        err.results.update(incomplete=True, interrupted=getattr(
            err, 'signal', 'SIGINT'))
        raise
    return _results(config, results, failed, metric)


def check_attention(config: Config, root: Optional[str] = None,
                    progress: bool = False) -> Tuple[Dict, AttentionCheck]:
    r"""One run of the one method of :obj:`config` (the plain model:
    :obj:`"none"`) from seed :obj:`config.seed` (on fixed splits, split 0;
    see :func:`run`), then :func:`~align_gnn.diagnostics.attention_check`
    of the trained model on the validation nodes. Returns
    :func:`experiment`'s dictionary of the run, with the check under
    :obj:`"attention_check"` (see
    :meth:`~align_gnn.diagnostics.AttentionCheck.to_dict`), and the
    check."""
    if len(config.methods) != 1:
        raise ValueError(f"The attention check trains one method (got "
                         f"{', '.join(config.methods)})")
    method = config.methods[0]
    data = load_data(config, root)
    split = select_split(data, 0)
    seed_everything(config.seed)
    model = make_model(method, split, config).to(resolve_device(config.device))
    result = fit(model, split, method, config.seed, config, progress)
    check = attention_check(model, prepare_data(split, config.features))
    results = _results(config, [result], [], getattr(data, 'metric', 'acc'))
    results['attention_check'] = check.to_dict()
    return results, check


def _results(config: Config, results: List[RunResult], failed: List[Dict],
             metric: str = 'acc') -> Dict:
    summary = summarize(results)
    for record in failed:
        method = record['method']
        if method not in summary:
            summary[method] = dict(runs=0, test_acc_mean=None, reason=(
                'every run failed (see "failed")'))
        summary[method]['failed'] = summary[method].get('failed', 0) + 1
    summary = {method: summary[method] for method in config.methods
               if method in summary}
    out = dict(dataset=config.dataset, config=config_record(config),
               metric=metric, runs=[asdict(result) for result in results],
               summary=summary, environment=environment())
    if failed:
        out['failed'] = failed
    return out


def load_data(config: Config, root: Optional[str] = None) -> Data:
    r"""The graph of :obj:`config`: its data set (see
    :func:`~align_gnn.data.load_dataset`, with :func:`graph_file_options`)
    with :obj:`config.edge_noise` random edges added (drawn with
    :obj:`config.seed`)."""
    data = load_dataset(config.dataset, root, **graph_file_options(config))
    return add_edge_noise(data, config.edge_noise, seed=config.seed)


def graph_file_options(config: Config) -> Dict:
    r"""The arguments of :func:`~align_gnn.data.graph_files.load_graph_file` in
    :obj:`config` (none for the named data sets)."""
    if config.dataset == 'dictionary-lookup':
        return dict(k=config.k, seed=config.seed)
    if not is_graph_file(config.dataset):
        return {}
    return dict(label_attr=config.label_attr,
                feature_attr=config.feature_attr,
                node_attributes=config.node_attributes, split=config.split,
                seed=config.seed)
