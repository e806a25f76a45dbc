r"""Planetoid node classification with (aligned) graph attention networks:
data loading, the two-layer GAT of PyG's `examples/gat.py`, training with
early stopping, many seeded runs, calibration, paired comparisons and results
files, checkpoints. :file:`train_gat.py` is a thin command line over this
module."""
import copy
import glob
import json
import math
import os
import os.path as osp
import random
import socket
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor
from tqdm import tqdm

import torch_geometric.transforms as T
from torch_geometric import seed_everything
from torch_geometric.data import Data
from torch_geometric.datasets import Planetoid
from torch_geometric.nn import GATConv, GATv2Conv, SuperGATConv

from align_gnn.conv import (
    AlignedGATConv,
    alignment_loss,
    quiet_sparse_csr,
)
from align_gnn.divergences import DIVERGENCES

DATASETS = {'cora': 'Cora', 'citeseer': 'CiteSeer', 'pubmed': 'PubMed'}
METHODS = ('none', *DIVERGENCES, 'gatv2', 'supergat')
DEVICES = ('auto', 'cpu', 'cuda')
FEATURES = ('dense', 'sparse')
RAW_NAMES = ('x', 'y', 'tx', 'ty', 'allx', 'ally', 'graph', 'test.index')
SUPERGAT_LOSS_WEIGHT = 4.0  # as in PyG's examples/super_gat.py
DOWNLOAD_TIMEOUT = 5.0  # seconds to wait for the download host to answer


class DataError(ValueError):
    r"""Raised when a data set is neither on disk nor downloadable."""


# Data ########################################################################


def data_root(root: Optional[str] = None) -> str:
    r"""The data root: :obj:`root`, else the environment variable
    :obj:`ALIGN_GNN_DATA`, else :obj:`"datasets"` (relative to the current
    directory)."""
    return root or os.environ.get('ALIGN_GNN_DATA') or 'datasets'


def raw_paths(name: str, root: Optional[str] = None) -> List[str]:
    r"""The raw files that :class:`~torch_geometric.datasets.Planetoid` reads
    for the data set :obj:`name`, e.g.
    :obj:`<root>/Cora/raw/ind.cora.{x,y,tx,ty,allx,ally,graph,test.index}`."""
    name = _dataset_name(name)
    raw_dir = osp.join(data_root(root), name, 'raw')
    prefix = f'ind.{name.lower()}'
    return [osp.join(raw_dir, f'{prefix}.{raw}') for raw in RAW_NAMES]


def load_planetoid(name: str, root: Optional[str] = None) -> Planetoid:
    r"""Loads :obj:`"cora"`, :obj:`"citeseer"` or :obj:`"pubmed"`
    (case-insensitive) with its public split and row-normalized features.
    Missing raw files are downloaded; if that fails, raises
    :class:`DataError` saying where the files belong and how to get them.

    Args:
        name (str): The name of the data set.
        root (str, optional): The data root (see :func:`data_root`).
            (default: :obj:`None`)
    """
    name, root = _dataset_name(name), data_root(root)
    paths = raw_paths(name, root)
    missing = [path for path in paths if not osp.isfile(path)]
    if missing:
        _check_download_host(name, paths, missing)
    try:
        dataset = Planetoid(root, name, split='public',
                            transform=T.NormalizeFeatures())
    except Exception as err:
        if all(osp.isfile(path) for path in paths):
            raise DataError(_unreadable_message(name, paths, err)) from err
        raise DataError(_missing_message(name, paths, missing, err)) from err
    x = dataset._data.x
    if not torch.isfinite(x).all():
        rows = (~torch.isfinite(x)).any(dim=-1).nonzero().view(-1)
        raise DataError(
            f"{name}: the features of {rows.numel()} node(s) contain NaN or "
            f"inf (first: node {int(rows[0])}); the raw files in "
            f"'{osp.dirname(paths[0])}' are damaged: copy them again")
    return dataset


def _dataset_name(name: str) -> str:
    if name.lower() not in DATASETS:
        raise ValueError(f"Unknown data set {name!r} (choose from "
                         f"{', '.join(DATASETS)})")
    return DATASETS[name.lower()]


def _check_download_host(name: str, paths: List[str], missing: List[str]):
    # PyG's download waits minutes on a silent network; fail fast instead:
    url = urlparse(Planetoid.url)
    try:
        socket.create_connection((url.hostname, url.port or 443),
                                 timeout=DOWNLOAD_TIMEOUT).close()
    except OSError as err:
        raise DataError(_missing_message(name, paths, missing, err)) from err


def _unreadable_message(name: str, paths: List[str], err: Exception) -> str:
    raw_dir = osp.dirname(paths[0])
    processed_dir = osp.join(osp.dirname(raw_dir), 'processed')
    return (f"{name}: reading the raw files in '{raw_dir}' failed "
            f"({type(err).__name__}: {err}): one is corrupt or truncated, "
            f"or '{processed_dir}' is stale. Delete '{processed_dir}' and, "
            f"if that does not help, copy the raw files again (e.g. from "
            f"../shared/datasets/{name}/raw).")


def _missing_message(name: str, paths: List[str], missing: List[str],
                     err: Exception) -> str:
    raw_dir = osp.dirname(paths[0])
    expected = f"ind.{name.lower()}.{{{','.join(RAW_NAMES)}}}"
    return (f"{name}: {len(missing)} of the {len(paths)} raw files are "
            f"missing in '{raw_dir}' (expected {expected}) and downloading "
            f"them failed ({type(err).__name__}: {err}). "
            f"Copy them there (e.g. `cp -r ../shared/datasets/{name} "
            f"{osp.dirname(osp.dirname(raw_dir))}/`), point the data root "
            f"(--root or ALIGN_GNN_DATA) at a folder that holds "
            f"{name}/raw/, or run once with internet access.")


def prepare_data(data: Data, features: str = 'sparse') -> Data:
    r"""A shallow copy of :obj:`data` whose node features are a dense tensor
    (:obj:`"dense"`) or a sparse CSR tensor (:obj:`"sparse"`; Planetoid's
    bag-of-words features are 98-99% zeros)."""
    _require(features in FEATURES, 'features', f'one of {FEATURES}',
             features)
    data = copy.copy(data)
    if features == 'sparse':
        with quiet_sparse_csr():
            data.x = data.x.to_sparse_csr()
    return data


def dropout_features(x: Tensor, p: float, training: bool) -> Tensor:
    r""":func:`torch.nn.functional.dropout` of a dense or sparse CSR matrix
    (in the latter case, of its stored values: zeros stay zeros either
    way)."""
    if x.layout != torch.sparse_csr:
        return F.dropout(x, p=p, training=training)
    with quiet_sparse_csr():
        return torch.sparse_csr_tensor(
            x.crow_indices(), x.col_indices(),
            F.dropout(x.values(), p=p, training=training), x.size(),
            check_invariants=False)


# Model #######################################################################


def default_hyperparameters(dataset: str) -> Dict[str, float]:
    r"""The learning rate, weight decay and number of output heads of PyG's
    `examples/gat.py` for :obj:`dataset`."""
    if _dataset_name(dataset) == 'PubMed':
        return dict(lr=0.01, weight_decay=0.001, output_heads=8)
    return dict(lr=0.005, weight_decay=5e-4, output_heads=1)


class GAT(torch.nn.Module):
    r"""The two-layer graph attention network of PyG's `examples/gat.py`:
    dropout, a multi-head layer with ELU, dropout, and an output layer whose
    heads are averaged.

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Number of classes.
        conv (callable): Builds a layer from
            :obj:`(in_channels, out_channels, heads=, concat=, dropout=)`,
            e.g. :class:`~torch_geometric.nn.conv.GATConv`.
        hidden_channels (int, optional): Channels per hidden head.
            (default: :obj:`8`)
        heads (int, optional): Number of hidden heads. (default: :obj:`8`)
        output_heads (int, optional): Number of output heads.
            (default: :obj:`1`)
        dropout (float, optional): Dropout probability of the features and
            of the attention coefficients. (default: :obj:`0.6`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` (dense or
          sparse CSR),
          edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** logits :math:`(|\mathcal{V}|, F_{out})`
    """
    def __init__(self, in_channels: int, out_channels: int, conv: Callable,
                 hidden_channels: int = 8, heads: int = 8,
                 output_heads: int = 1, dropout: float = 0.6):
        super().__init__()
        self.dropout = dropout
        self.conv1 = conv(in_channels, hidden_channels, heads=heads,
                          dropout=dropout)
        self.conv2 = conv(hidden_channels * heads, out_channels,
                          heads=output_heads, concat=False, dropout=dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = dropout_features(x, self.dropout, self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, p=self.dropout, training=self.training)
        return self.conv2(x, edge_index)


def build_model(method: str, in_channels: int, out_channels: int,
                output_heads: int = 1, num_samples: int = 256,
                rho: float = 0.5) -> GAT:
    r"""The :class:`GAT` for :obj:`method`: :obj:`"none"`
    (:class:`~torch_geometric.nn.conv.GATConv`), an alignment divergence
    (:obj:`"ct"`, :obj:`"adversarial"`, :obj:`"sinkhorn"`, :obj:`"mmd"`;
    :class:`~align_gnn.AlignedGATConv`), :obj:`"gatv2"`
    (:class:`~torch_geometric.nn.conv.GATv2Conv`) or :obj:`"supergat"`
    (:class:`~torch_geometric.nn.conv.SuperGATConv` as in PyG's
    `examples/super_gat.py`, always with 8 output heads)."""
    if method == 'none':
        conv = GATConv
    elif method in DIVERGENCES:
        conv = partial(AlignedGATConv, divergence=method,
                       num_samples=num_samples, rho=rho)
    elif method == 'gatv2':
        conv = GATv2Conv
    elif method == 'supergat':
        conv = partial(SuperGATConv, attention_type='MX',
                       edge_sample_ratio=0.8, is_undirected=True)
        output_heads = 8
    else:
        raise ValueError(f"Unknown method {method!r} (choose from "
                         f"{', '.join(METHODS)})")
    return GAT(in_channels, out_channels, conv, output_heads=output_heads)


def num_parameters(model: torch.nn.Module) -> int:
    r"""The number of trained parameters, adversaries included."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def auxiliary_loss(model: torch.nn.Module, align_weight: float) -> Tensor:
    r""":obj:`align_weight` times :func:`~align_gnn.alignment_loss` plus
    :obj:`4.0` times the self-supervised attention losses of
    :class:`~torch_geometric.nn.conv.SuperGATConv` layers (0-dim)."""
    loss = align_weight * alignment_loss(model)
    for module in model.modules():
        if isinstance(module, SuperGATConv):
            loss = loss + SUPERGAT_LOSS_WEIGHT * module.get_attention_loss()
    return loss


# Training and evaluation #####################################################


def expected_calibration_error(probs: Tensor, labels: Tensor,
                               n_bins: int = 15) -> float:
    r"""The expected calibration error of the `"On Calibration of Modern
    Neural Networks" <https://arxiv.org/abs/1706.04599>`_ paper: samples are
    grouped by their confidence :math:`\max_c p_{ic}` into :obj:`n_bins`
    equal-width bins :math:`B_b = (\frac{b-1}{n}, \frac{b}{n}]` and

    .. math::
        \mathrm{ECE} = \sum_{b=1}^{n} \frac{|B_b|}{N}
        \left| \mathrm{acc}(B_b) - \mathrm{conf}(B_b) \right|.

    Args:
        probs (torch.Tensor): Class probabilities :math:`(N, C)`.
        labels (torch.Tensor): True classes :math:`(N,)`.
        n_bins (int, optional): Number of bins. (default: :obj:`15`)
    """
    conf, pred = probs.max(dim=-1)
    correct = pred.eq(labels).to(conf.dtype)
    edges = torch.linspace(0, 1, n_bins + 1, device=conf.device)
    bins = torch.bucketize(conf, edges[1:-1])  # (lower, upper]
    gap = conf.new_zeros(n_bins).index_add_(0, bins, conf - correct)
    return float(gap.abs().sum() / max(labels.numel(), 1))


def train_epoch(model: torch.nn.Module, data: Data,
                optimizer: torch.optim.Optimizer,
                align_weight: float) -> Tensor:
    r"""One full-batch step on cross-entropy plus :func:`auxiliary_loss`;
    returns the loss (detached, 0-dim: reading it is left to the caller, as
    it waits for the device)."""
    model.train()
    optimizer.zero_grad()
    out = model(data.x, data.edge_index)
    loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
    loss = loss + auxiliary_loss(model, align_weight)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Data) -> Dict[str, float]:
    r"""Accuracy and mean negative log-likelihood on the train, validation
    and test nodes (keys :obj:`"train_acc"`, :obj:`"train_nll"`, ...) and
    the test expected calibration error (:obj:`"test_ece"`)."""
    model.eval()
    out = model(data.x, data.edge_index)
    metrics = {}
    for split in ('train', 'val', 'test'):
        mask = data[f'{split}_mask']
        logits, y = out[mask], data.y[mask]
        metrics[f'{split}_acc'] = int(logits.argmax(-1).eq(y).sum()) / len(y)
        metrics[f'{split}_nll'] = float(F.cross_entropy(logits, y))
    metrics['test_ece'] = expected_calibration_error(
        out[data.test_mask].softmax(dim=-1), data.y[data.test_mask])
    return metrics


@dataclass
class Config:
    r"""The settings of an experiment; :obj:`lr` and :obj:`weight_decay`
    default to the data set's (see :func:`default_hyperparameters`).

    Args:
        dataset (str): :obj:`"cora"`, :obj:`"citeseer"` or :obj:`"pubmed"`.
        methods (list of str): Methods to train on the same seeds; the first
            is the reference of the paired tests (see :data:`METHODS`).
        align_weight (float): Weight :math:`\lambda` of the alignment loss.
        align_samples (int): Keys and queries sampled per forward pass.
        rho (float): Forward-transport weight of conditional transport.
        runs (int): Number of seeds :obj:`seed, seed + 1, ...`.
        seed (int): The first seed.
        epochs (int): Maximum number of epochs.
        patience (int): Epochs without a better validation accuracy (or an
            equal one with a lower validation loss) before stopping.
        lr (float, optional): Adam learning rate.
        weight_decay (float, optional): Adam weight decay.
        device (str): :obj:`"auto"`, :obj:`"cpu"` or :obj:`"cuda"`.
        features (str): Node feature layout, :obj:`"dense"` or
            :obj:`"sparse"` (see :func:`prepare_data`).
    """
    dataset: str = 'cora'
    methods: Sequence[str] = ('ct', )
    align_weight: float = 0.1
    align_samples: int = 256
    rho: float = 0.5
    runs: int = 10
    seed: int = 0
    epochs: int = 1000
    patience: int = 100
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    device: str = 'auto'
    features: str = 'sparse'

    def __post_init__(self):
        self.dataset = self.dataset.lower()
        _dataset_name(self.dataset)
        self.methods = [method.lower() for method in self.methods]
        _require(len(self.methods) > 0 and set(self.methods) <= set(METHODS)
                 and len(set(self.methods)) == len(self.methods), 'methods',
                 f'distinct names from {", ".join(METHODS)}', self.methods)
        for name in ('runs', 'epochs', 'patience'):
            _require(getattr(self, name) >= 1, name, '>= 1',
                     getattr(self, name))
        _require(self.seed >= 0, 'seed', '>= 0', self.seed)
        _require(self.align_weight >= 0, 'align_weight', '>= 0',
                 self.align_weight)
        _require(self.align_samples >= 2, 'align_samples', '>= 2',
                 self.align_samples)
        _require(0 <= self.rho <= 1, 'rho', 'in [0, 1]', self.rho)
        _require(self.device in DEVICES, 'device', f'one of {DEVICES}',
                 self.device)
        _require(self.features in FEATURES, 'features', f'one of {FEATURES}',
                 self.features)
        defaults = default_hyperparameters(self.dataset)
        if self.lr is None:
            self.lr = defaults['lr']
        if self.weight_decay is None:
            self.weight_decay = defaults['weight_decay']
        _require(self.lr > 0, 'lr', '> 0', self.lr)
        _require(self.weight_decay >= 0, 'weight_decay', '>= 0',
                 self.weight_decay)


def _require(condition: bool, name: str, requirement: str, value):
    if not condition:
        raise ValueError(f"'{name}' must be {requirement} (got {value!r})")


def config_record(config: Config) -> Dict:
    r""":obj:`config` as a dictionary, with the device it resolves to (as
    results files and checkpoints record it)."""
    return dict(asdict(config), device=str(resolve_device(config.device)))


def resolve_device(device: str = 'auto') -> torch.device:
    r"""The device named :obj:`device`; :obj:`"auto"` picks CUDA if
    available."""
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError("'device' is 'cuda' but CUDA is not available "
                         "(use 'cpu' or 'auto')")
    return torch.device(device)


@dataclass
class RunResult:
    r"""The outcome of one run: the best-validation model's metrics."""
    method: str
    seed: int
    val_acc: float
    test_acc: float
    ece: float
    nll: float
    epochs: int
    best_epoch: int
    seconds: float
    seconds_per_epoch: float
    params: int


def run(dataset: Planetoid, method: str, seed: int, config: Config,
        progress: bool = False,
        checkpoint: Optional['Checkpoint'] = None) -> RunResult:
    r"""Trains :obj:`method` from seed :obj:`seed` with early stopping on
    validation accuracy (validation loss breaks ties), restores the best
    weights (those of epoch 1 at least) and evaluates them.

    Args:
        dataset (Planetoid): The data set (see :func:`load_planetoid`).
        method (str): One of :data:`METHODS`.
        seed (int): The seed of every random number generator.
        config (Config): The hyper-parameters.
        progress (bool, optional): Show a progress bar over epochs.
            (default: :obj:`False`)
        checkpoint (Checkpoint, optional): Continue from its saved state of
            this run, if any, and save the state every
            :obj:`checkpoint.every` epochs. (default: :obj:`None`)
    """
    seed_everything(seed)
    device = resolve_device(config.device)
    data = prepare_data(dataset[0], config.features).to(device)
    output_heads = default_hyperparameters(config.dataset)['output_heads']
    model = build_model(method, dataset.num_features, dataset.num_classes,
                        output_heads, config.align_samples,
                        config.rho).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    align_weight = config.align_weight if method in DIVERGENCES else 0.0

    best_acc, best_nll, best_epoch, best_state = -1.0, math.inf, 0, None
    epoch, elapsed = 0, 0.0  # epochs done and their seconds
    saved = checkpoint.run_state(method, seed) if checkpoint else None
    if saved is not None:
        model.load_state_dict(saved['model'])
        optimizer.load_state_dict(saved['optimizer'])
        set_rng_state(saved['rng'])
        best_acc, best_nll = saved['best_acc'], saved['best_nll']
        best_epoch, best_state = saved['best_epoch'], saved['best_model']
        epoch, elapsed = saved['epoch'], saved['seconds']

    bar = tqdm(range(epoch + 1, config.epochs + 1), initial=epoch,
               total=config.epochs, desc=f'{method} seed {seed}',
               leave=False, disable=not progress)
    start = time.perf_counter()
    for epoch in bar:
        train_epoch(model, data, optimizer, align_weight)
        metrics = evaluate(model, data)
        val_acc, val_nll = metrics['val_acc'], metrics['val_nll']
        if val_acc > best_acc or (val_acc == best_acc and val_nll < best_nll):
            best_acc, best_nll, best_epoch = val_acc, val_nll, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
        if checkpoint is not None and epoch % checkpoint.every == 0:
            checkpoint.save_run(method, seed, dict(
                epoch=epoch, model=model.state_dict(),
                optimizer=optimizer.state_dict(), rng=rng_state(device),
                best_acc=best_acc, best_nll=best_nll, best_epoch=best_epoch,
                best_model=best_state,
                seconds=elapsed + time.perf_counter() - start))
        bar.set_postfix(val_acc=f'{val_acc:.3f}', best=f'{best_acc:.3f}')
    seconds = elapsed + time.perf_counter() - start
    bar.close()

    model.load_state_dict(best_state)
    metrics = evaluate(model, data)
    return RunResult(method=method, seed=seed, val_acc=metrics['val_acc'],
                     test_acc=metrics['test_acc'], ece=metrics['test_ece'],
                     nll=metrics['test_nll'], epochs=epoch,
                     best_epoch=best_epoch, seconds=seconds,
                     seconds_per_epoch=seconds / epoch,
                     params=num_parameters(model))


def run_many(dataset: Planetoid, config: Config, progress: bool = False,
             checkpoint: Optional['Checkpoint'] = None) -> List[RunResult]:
    r"""Runs every method of :obj:`config` on the seeds
    :obj:`config.seed, ..., config.seed + config.runs - 1`, the methods
    interleaved within each seed (so that slow phases of a shared machine
    hit all methods alike). With a :obj:`checkpoint`, runs it holds as
    finished are not trained again, the interrupted one continues, and
    every finished run is saved."""
    seeds = range(config.seed, config.seed + config.runs)
    bar = tqdm(total=len(seeds) * len(config.methods), desc='runs',
               disable=not progress)
    results = []
    for seed in seeds:
        for method in config.methods:
            result = checkpoint.result(method, seed) if checkpoint else None
            if result is None:
                result = run(dataset, method, seed, config, progress,
                             checkpoint)
                if checkpoint is not None:
                    checkpoint.save_result(result)
            results.append(result)
            bar.set_postfix(method=method,
                            test_acc=f'{results[-1].test_acc:.3f}',
                            refresh=False)
            bar.update()
    bar.close()
    return results


# Checkpoints #################################################################


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
    :func:`run_many` and :func:`experiment` continue from it exactly (up to
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
        r"""Saves the state of the current run (see :func:`run`)."""
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
        _atomic_write(self.path, partial(torch.save, state), binary=True)


# Results #####################################################################


def paired_test(
    x: Sequence[float],
    y: Sequence[float],
) -> Tuple[float, Optional[float], Optional[float]]:
    r"""The mean paired difference :math:`\overline{x - y}` and the p-values
    of the paired t-test and of the Wilcoxon signed-rank test; a p-value is
    :obj:`None` where the test is undefined (fewer than two pairs, all
    differences equal (t-test) or all zero (Wilcoxon))."""
    diff = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    mean = float(diff.mean()) if diff.size else math.nan
    t_p = w_p = None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if diff.size >= 2 and np.ptp(diff) > 1e-12:
            t_p = _finite(stats.ttest_rel(x, y).pvalue)
        if diff.size >= 2 and np.any(np.abs(diff) > 1e-12):
            w_p = _finite(stats.wilcoxon(x, y).pvalue)
    return mean, t_p, w_p


def _finite(value) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def summarize(results: Sequence[RunResult]) -> Dict[str, Dict]:
    r"""Per method (in order of appearance): mean and standard deviation of
    test and validation accuracy, mean ECE, NLL and epochs, the median
    seconds per epoch, the number of parameters, and for every method after
    the first the paired comparison of test accuracy against the first
    (:obj:`"test_acc_diff"`, :obj:`"ttest_p"`, :obj:`"wilcoxon_p"`, see
    :func:`paired_test`)."""
    methods = list(dict.fromkeys(result.method for result in results))
    by_method = {m: [r for r in results if r.method == m] for m in methods}
    summary = {}
    for method, runs in by_method.items():
        test = [r.test_acc for r in runs]
        val = [r.val_acc for r in runs]
        summary[method] = dict(
            test_acc_mean=_mean(test),
            test_acc_std=_std(test),
            val_acc_mean=_mean(val),
            val_acc_std=_std(val),
            ece_mean=_mean([r.ece for r in runs]),
            nll_mean=_mean([r.nll for r in runs]),
            epochs_mean=_mean([r.epochs for r in runs]),
            seconds_per_epoch=float(
                np.median([r.seconds_per_epoch for r in runs])),
            params=runs[0].params,
        )
        if method != methods[0]:
            ref = {r.seed: r.test_acc for r in by_method[methods[0]]}
            pairs = [(r.test_acc, ref[r.seed]) for r in runs if r.seed in ref]
            diff, t_p, w_p = paired_test(*zip(*pairs)) if pairs else (
                math.nan, None, None)
            summary[method].update(test_acc_diff=diff, ttest_p=t_p,
                                   wilcoxon_p=w_p)
    return summary


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def format_table(summary: Dict[str, Dict]) -> str:
    r"""A plain-text table of :func:`summarize`'s output (accuracies and ECE
    in percent; differences and p-values against the first method)."""
    def p_value(value: Optional[float]) -> str:
        return 'n/a' if value is None else f'{value:.3g}'

    def mean_std(s: Dict, key: str) -> str:
        return f'{100 * s[key + "_mean"]:.2f} ± {100 * s[key + "_std"]:.2f}'

    header = (f'{"method":<12}{"test acc":>16}{"val acc":>16}{"ECE":>8}'
              f'{"s/epoch":>9}{"#params":>10}{"Δtest":>8}{"t-test p":>10}'
              f'{"Wilcoxon p":>12}')
    lines = [header, '-' * len(header)]
    for method, s in summary.items():
        if 'test_acc_diff' in s:
            diff = f'{100 * s["test_acc_diff"]:+.2f}'
            t_p, w_p = p_value(s['ttest_p']), p_value(s['wilcoxon_p'])
        else:
            diff, t_p, w_p = 'ref', '', ''
        lines.append(f'{method:<12}{mean_std(s, "test_acc"):>16}'
                     f'{mean_std(s, "val_acc"):>16}'
                     f'{100 * s["ece_mean"]:>8.2f}'
                     f'{s["seconds_per_epoch"]:>9.4f}{s["params"]:>10,}'
                     f'{diff:>8}{t_p:>10}{w_p:>12}')
    return '\n'.join(lines)


def experiment(config: Config, root: Optional[str] = None,
               progress: bool = False,
               checkpoint: Optional[Checkpoint] = None) -> Dict:
    r"""Loads the data set, runs every method of :obj:`config` on every seed
    (continuing from :obj:`checkpoint`, if given, see :func:`run_many`) and
    returns the results as
    :obj:`{"dataset", "config", "runs": [...], "summary": {method: ...}}`
    (accuracies as fractions)."""
    dataset = load_planetoid(config.dataset, root)
    results = run_many(dataset, config, progress, checkpoint)
    return dict(dataset=config.dataset, config=config_record(config),
                runs=[asdict(result) for result in results],
                summary=summarize(results))


def default_output_path(config: Config) -> str:
    r"""A timestamped results file under :obj:`results/`."""
    name = '-'.join([config.dataset, *config.methods,
                     time.strftime('%Y%m%d-%H%M%S')])
    return osp.join('results', f'{name}.json')


def check_writable(path: str):
    r"""Raises :class:`OSError` if a results file cannot be written at
    :obj:`path`, so that a long experiment fails before it starts, not after
    (creates nothing)."""
    if osp.isdir(path):
        raise IsADirectoryError(f"'{path}' is a directory")
    folder = osp.dirname(osp.abspath(path))
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        raise NotADirectoryError(f"'{folder}' is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"'{folder}' is not writable")


def save_results(results: Dict, path: str):
    r"""Writes :obj:`results` as JSON to :obj:`path` atomically (a temporary
    file in the same folder, then :func:`os.replace`)."""
    def write(f):
        json.dump(results, f, indent=2)
        f.write('\n')

    _atomic_write(path, write)


def _atomic_write(path: str, write: Callable, binary: bool = False):
    # `write(f)` fills a temporary file in the same folder, which then
    # replaces `path` in one step: readers see the old file or the new one.
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}-',
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb' if binary else 'w') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
