r"""Node classification with (aligned) graph attention networks on
Planetoid, ogbn-arxiv and graph files: training full-batch or on neighbour
samples, in one process or several, with early stopping, many seeded runs,
calibration, robustness, checkpoints and experiments (summaries and files:
:mod:`align_gnn.results`). :file:`train_gat.py` is a thin command line over
this module."""
import glob
import logging
import math
import os
import os.path as osp
import platform
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import (
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np
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

import align_gnn
from align_gnn import distributed
from align_gnn.conv import alignment_loss
from align_gnn.data import (  # noqa: F401 (re-exported)
    DATASETS,
    FEATURES,
    PLANETOID,
    DataError,
    data_root,
    load_dataset,
    load_planetoid,
    prepare_data,
    raw_paths,
    _require,
    dataset_name,
    is_graph_file,
)
from align_gnn.diagnostics import key_query_pca
from align_gnn.divergences import DIVERGENCES
from align_gnn.models import (  # noqa: F401 (re-exported)
    CONVS,
    GAT,
    METHODS,
    ArxivGAT,
    adversary_parameters,
    build_arxiv_model,
    build_model,
    dropout_features,
    num_layers,
    num_parameters,
)
from align_gnn.results import (  # noqa: F401 (re-exported)
    atomic_write,
    check_writable,
    format_attack_table,
    format_leaderboard,
    format_table,
    paired_test,
    save_results,
    summarize,
)
from align_gnn.reproducibility import (
    reproducibility_settings,
    single_threaded_blas,
)
from align_gnn.robustness import ATTACKS, robustness

log = logging.getLogger('align_gnn')

DEVICES = ('auto', 'cpu', 'cuda')
SUPERGAT_LOSS_WEIGHT = 4.0  # as in PyG's examples/super_gat.py
# The alignment settings: lambda, keys and queries sampled per layer, CT's
# rho, the adversaries' width and learning-rate scale; their library
# defaults, and per data set and divergence the settings that
# benchmarks/study.py chose on validation accuracy (README "Results"):
ALIGNMENT_SETTINGS = ('align_weight', 'align_samples', 'rho',
                      'adversary_channels', 'adversary_lr_scale')
DEFAULT_ALIGNMENT = dict(align_weight=0.1, align_samples=256, rho=0.5,
                         adversary_channels=32, adversary_lr_scale=1.0)
RECOMMENDED_ALIGNMENT: Dict[str, Dict[str, Dict]] = {
    'Cora': {  # study/cora, search seeds 100-102 (16 settings each)
        'ct': dict(align_weight=0.1, align_samples=512, rho=0.25,
                   adversary_channels=16, adversary_lr_scale=0.3),
        'adversarial': dict(align_weight=0.01, align_samples=256,
                            adversary_channels=32, adversary_lr_scale=3.0),
        'sinkhorn': dict(align_weight=0.3, align_samples=128),
        'mmd': dict(align_weight=1.0, align_samples=64),
    },
    'CiteSeer': {  # study/citeseer, same search (Sinkhorn, MMD: m <= 256)
        'ct': dict(align_weight=0.003, align_samples=128, rho=0.75,
                   adversary_channels=16, adversary_lr_scale=0.1),
        'adversarial': dict(align_weight=0.003, align_samples=512,
                            adversary_channels=16, adversary_lr_scale=1.0),
        'sinkhorn': dict(align_weight=0.003, align_samples=64),
        'mmd': dict(align_weight=0.003, align_samples=256),
    },
}


# Model #######################################################################


def default_hyperparameters(dataset: str) -> Dict:
    r"""The defaults for :obj:`dataset`: learning rate, weight decay,
    maximum epochs, the neighbour sample sizes per layer (:obj:`fanout`) and,
    for the two-layer :class:`GAT`, the number of output heads. Planetoid
    and graph files follow PyG's `examples/gat.py` for Cora; ogbn-arxiv
    follows OGB's arxiv examples (no weight decay, 500 epochs) with
    :class:`ArxivGAT`'s 3 layers (not tuned here: the data set is not on
    this project's machines)."""
    name = dataset_name(dataset)
    if name == 'ogbn-arxiv':
        return dict(lr=0.005, weight_decay=0.0, epochs=500,
                    fanout=(15, 10, 5))
    defaults = dict(lr=0.005, weight_decay=5e-4, epochs=1000,
                    fanout=(10, 10), output_heads=1)
    if name == 'PubMed':
        defaults.update(lr=0.01, weight_decay=0.001, output_heads=8)
    return defaults


def recommended_alignment(dataset: str, method: str) -> Dict:
    r"""The alignment settings of divergence :obj:`method` that the study
    chose on validation accuracy for :obj:`dataset`
    (:data:`RECOMMENDED_ALIGNMENT`; empty where it did not run)."""
    return RECOMMENDED_ALIGNMENT.get(dataset_name(dataset), {}).get(method,
                                                                    {})


def alignment_defaults(dataset: str, method: str) -> Dict:
    r"""The alignment settings (:data:`ALIGNMENT_SETTINGS`) of divergence
    :obj:`method` on :obj:`dataset`: those chosen on validation accuracy
    by the study where it ran (:func:`recommended_alignment`), else
    :data:`DEFAULT_ALIGNMENT`."""
    return {**DEFAULT_ALIGNMENT, **recommended_alignment(dataset, method)}


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


def make_model(method: str, data: Data, config: 'Config') -> torch.nn.Module:
    r"""The model of :obj:`method` for :obj:`config.dataset`: :class:`GAT`
    for Planetoid, :class:`ArxivGAT` for ogbn-arxiv, with
    :obj:`data.num_features` inputs and :obj:`data.num_classes` outputs."""
    setting = config.alignment(method)
    options = (setting['align_samples'], setting['rho'], config.conv,
               setting['adversary_channels'])
    if config.dataset == 'ogbn-arxiv':
        return build_arxiv_model(method, data.num_features, data.num_classes,
                                 *options)
    output_heads = default_hyperparameters(config.dataset)['output_heads']
    return build_model(method, data.num_features, data.num_classes,
                       output_heads, *options)


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
    return bins_ece(reliability_bins(probs, labels, n_bins))


def bins_ece(bins: Dict[str, List[float]]) -> float:
    r"""The expected calibration error of :func:`reliability_bins`' output
    (see :func:`expected_calibration_error`)."""
    gap = sum(abs(conf - correct)
              for conf, correct in zip(bins['confidence'], bins['correct']))
    return gap / max(sum(bins['count']), 1)


def reliability_bins(probs: Tensor, labels: Tensor,
                     n_bins: int = 15) -> Dict[str, List[float]]:
    r"""Per confidence bin :math:`B_b` (as in
    :func:`expected_calibration_error`): the number of samples
    (:obj:`"count"`), the sum of their confidences (:obj:`"confidence"`)
    and the number of correct predictions (:obj:`"correct"`); sums, so
    that bins of several runs add up."""
    conf, pred = probs.max(dim=-1)
    correct = pred.eq(labels).to(conf.dtype)
    edges = torch.linspace(0, 1, n_bins + 1, device=conf.device)
    bins = torch.bucketize(conf, edges[1:-1])  # (lower, upper]
    sums = conf.new_zeros(3, n_bins)
    sums.index_add_(1, bins, torch.stack([torch.ones_like(conf), conf,
                                          correct]))
    count, confidence, correct = sums.tolist()
    return dict(count=count, confidence=confidence, correct=correct)


def train_epoch(model: torch.nn.Module, data: Data,
                optimizer: torch.optim.Optimizer,
                align_weight: float) -> Tuple[Tensor, Tensor]:
    r"""One full-batch step on cross-entropy plus :func:`auxiliary_loss`;
    returns the loss and the (unweighted) alignment loss, detached 0-dim
    tensors (reading them is left to the caller, as it waits for the
    device)."""
    model.train()
    return _step(model, optimizer, data.x, data.edge_index, data.y,
                 data.train_mask, align_weight)


def train_epoch_minibatch(
    model: torch.nn.Module,
    loader: Iterable[Data],
    optimizer: torch.optim.Optimizer,
    align_weight: float,
    device: torch.device,
) -> Tuple[Tensor, Tensor]:
    r"""One pass over the neighbour-sampled subgraphs of :obj:`loader` (see
    :func:`neighbor_loader`), a step per subgraph on the cross-entropy of
    its :obj:`batch_size` seed nodes plus :func:`auxiliary_loss` of its
    aligned layers; returns the mean loss and alignment loss over steps, as
    :func:`train_epoch`."""
    model.train()
    total = torch.zeros(2, device=device)
    for steps, batch in enumerate(loader, start=1):
        batch = batch.to(device)
        total += torch.stack(_step(model, optimizer, batch.x,
                                   batch.edge_index, batch.y,
                                   slice(0, batch.batch_size), align_weight))
    loss, align = total / steps
    return loss, align


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: Tensor,
          edge_index: Tensor, y: Tensor, target: Union[Tensor, slice],
          align_weight: float) -> Tuple[Tensor, Tensor]:
    optimizer.zero_grad()
    out = model(x, edge_index)
    align = alignment_loss(model)
    loss = F.cross_entropy(out[target], y[target])
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
             evaluator: Optional[Evaluator] = None) -> Dict[str, float]:
    r"""Accuracy and mean negative log-likelihood on the train, validation
    and test nodes (keys :obj:`"train_acc"`, :obj:`"train_nll"`, ...) and
    the test expected calibration error (:obj:`"test_ece"`), from one
    full-graph forward pass. Accuracies are :obj:`evaluator`'s, if given
    (e.g. :class:`ogb.nodeproppred.Evaluator`)."""
    model.eval()
    out = model(data.x, data.edge_index)
    metrics = {}
    for split in ('train', 'val', 'test'):
        mask = data[f'{split}_mask']
        logits, y = out[mask], data.y[mask]
        pred = logits.argmax(-1)
        if evaluator is None:
            acc = int(pred.eq(y).sum()) / len(y)
        else:
            acc = float(evaluator.eval({'y_true': y.view(-1, 1),
                                        'y_pred': pred.view(-1, 1)})['acc'])
        metrics[f'{split}_acc'] = acc
        metrics[f'{split}_nll'] = float(F.cross_entropy(logits, y))
    bins = reliability_bins(out[data.test_mask].softmax(dim=-1),
                            data.y[data.test_mask])
    metrics['test_ece'], metrics['test_bins'] = bins_ece(bins), bins
    return metrics


@dataclass
class Config:
    r"""The settings of an experiment; :obj:`None` stands for the data
    set's default (see :func:`default_hyperparameters`).

    Args:
        dataset (str): :obj:`"cora"`, :obj:`"citeseer"`, :obj:`"pubmed"` or
            :obj:`"ogbn-arxiv"`.
        methods (list of str): Methods to train on the same seeds; the first
            is the reference of the paired tests (see :data:`METHODS`).
        align_weight (float, optional): Weight :math:`\lambda` of the
            alignment loss.
        align_samples (int, optional): Keys and queries sampled per forward
            pass.
        rho (float, optional): Forward-transport weight of conditional
            transport.
        runs (int): Number of seeds :obj:`seed, seed + 1, ...`.
        seed (int): The first seed.
        epochs (int, optional): Maximum number of epochs.
        patience (int): Epochs without a better validation accuracy (or an
            equal one with a lower validation loss) before stopping.
        lr (float, optional): Adam learning rate.
        weight_decay (float, optional): Adam weight decay.
        device (str): :obj:`"auto"`, :obj:`"cpu"` or :obj:`"cuda"`.
        features (str, optional): Node feature layout, :obj:`"dense"` or
            :obj:`"sparse"` (see :func:`prepare_data`); unset, sparse for
            full-batch training on Planetoid, else dense.
        batch_size (int, optional): Train on neighbour-sampled subgraphs of
            :obj:`batch_size` training nodes each (see
            :func:`neighbor_loader`); unset, full-batch. Required with
            several processes.
        fanout (list of int, optional): Neighbours sampled per node at each
            hop, one number per layer (:obj:`-1`: all).
        conv (str): The attention layer of :obj:`"none"` and the aligned
            methods: :obj:`"gat"`, :obj:`"gatv2"` or :obj:`"transformer"`
            (see :func:`~align_gnn.models.layer_factory`).
        adversary_channels (int, optional): Width of the adversaries (CT's
            critic and navigator, the discriminator).
        adversary_lr_scale (float, optional): The adversaries' learning rate
            is :obj:`lr * adversary_lr_scale`.

            Unset alignment settings are each divergence's own on the data
            set (see :meth:`alignment`).
        label_attr, feature_attr, node_attributes, split: For a graph
            file, see :func:`~align_gnn.data.load_graph_file` (the split is
            drawn with :obj:`seed`, the same for every run).
        attack (str, optional): Evaluate each trained model under this
            structure attack (:obj:`"prbcd"`) and as many random edge flips
            (see :func:`~align_gnn.robustness.robustness`).
        budgets (list of float): The attack budgets, fractions of the edges.
        attack_epochs (int): PRBCD's epochs.
        keys_queries (bool): Record a PCA of sampled keys and queries of the
            first seed's trained model (see
            :func:`~align_gnn.diagnostics.key_query_pca`).
    """
    dataset: str = 'cora'
    methods: Sequence[str] = ('ct', )
    align_weight: Optional[float] = None
    align_samples: Optional[int] = None
    rho: Optional[float] = None
    runs: int = 10
    seed: int = 0
    epochs: Optional[int] = None
    patience: int = 100
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    device: str = 'auto'
    features: Optional[str] = None
    batch_size: Optional[int] = None
    fanout: Optional[Sequence[int]] = None
    conv: str = 'gat'
    adversary_channels: Optional[int] = None
    adversary_lr_scale: Optional[float] = None
    label_attr: str = 'label'
    feature_attr: Optional[Sequence[str]] = None
    node_attributes: Optional[str] = None
    split: Sequence[float] = (0.6, 0.2, 0.2)
    attack: Optional[str] = None
    budgets: Sequence[float] = (0.01, 0.05, 0.1)
    attack_epochs: int = 50
    keys_queries: bool = False

    def __post_init__(self):
        if self.dataset.lower() in DATASETS:
            self.dataset = self.dataset.lower()
        dataset_name(self.dataset)
        self.methods = [method.lower() for method in self.methods]
        _require(len(self.methods) > 0 and set(self.methods) <= set(METHODS)
                 and len(set(self.methods)) == len(self.methods), 'methods',
                 f'distinct names from {", ".join(METHODS)}', self.methods)
        defaults = default_hyperparameters(self.dataset)
        for name in ('lr', 'weight_decay', 'epochs', 'fanout'):
            if getattr(self, name) is None:
                setattr(self, name, defaults[name])
        if self.features is None:
            self.features = 'sparse' if (self.dataset != 'ogbn-arxiv' and
                                         self.batch_size is None) else 'dense'
        for name in ('runs', 'epochs', 'patience'):
            _require(getattr(self, name) >= 1, name, '>= 1',
                     getattr(self, name))
        _require(self.seed >= 0, 'seed', '>= 0', self.seed)
        for name, valid, expected in (
                ('align_weight', lambda v: v >= 0, '>= 0'),
                ('align_samples', lambda v: v >= 2, '>= 2'),
                ('rho', lambda v: 0 <= v <= 1, 'in [0, 1]'),
                ('adversary_channels', lambda v: v >= 1, '>= 1'),
                ('adversary_lr_scale', lambda v: v > 0, '> 0')):
            value = getattr(self, name)
            _require(value is None or valid(value), name, expected, value)
        _require(self.device in DEVICES, 'device', f'one of {DEVICES}',
                 self.device)
        _require(self.features in FEATURES, 'features', f'one of {FEATURES}',
                 self.features)
        self.fanout = list(self.fanout)
        depth = len(defaults['fanout'])
        _require(len(self.fanout) == depth and all(
            n >= 1 or n == -1 for n in self.fanout), 'fanout',
            f'{depth} numbers >= 1 or -1 (one per layer of the '
            f'{self.dataset} model)', self.fanout)
        if self.batch_size is not None:
            _require(self.batch_size >= 1, 'batch_size', '>= 1',
                     self.batch_size)
            _require(self.features == 'dense', 'features',
                     "'dense' with batch_size (neighbour sampling slices "
                     "dense features)", self.features)
            require_neighbor_sampling()
        elif distributed.launched():
            raise ValueError("Several processes train on shards of the "
                             "training nodes: set 'batch_size' "
                             "(--batch-size)")
        _require(self.conv in CONVS, 'conv', f'one of {tuple(CONVS)}',
                 self.conv)
        self.split = [float(fraction) for fraction in self.split]
        if self.feature_attr is not None:
            self.feature_attr = list(self.feature_attr)
        _require(self.attack in (None, *ATTACKS), 'attack',
                 f'one of {ATTACKS} or None', self.attack)
        self.budgets = [float(budget) for budget in self.budgets]
        _require(len(self.budgets) > 0 and all(
            0 <= budget <= 1 for budget in self.budgets), 'budgets',
            'fractions in [0, 1]', self.budgets)
        _require(self.attack_epochs >= 1, 'attack_epochs', '>= 1',
                 self.attack_epochs)
        _require(self.lr > 0, 'lr', '> 0', self.lr)
        _require(self.weight_decay >= 0, 'weight_decay', '>= 0',
                 self.weight_decay)

    def alignment(self, method: str) -> Dict:
        r"""The alignment settings (:data:`ALIGNMENT_SETTINGS`) of
        :obj:`method`: those set here, else the divergence's own on the data
        set (see :func:`alignment_defaults`)."""
        defaults = alignment_defaults(self.dataset, method)
        return {name: defaults[name] if getattr(self, name) is None else
                getattr(self, name) for name in ALIGNMENT_SETTINGS}


def config_record(config: Config) -> Dict:
    r""":obj:`config` as a dictionary, with the device it resolves to and
    the alignment settings of each divergence it trains (as results files
    and checkpoints record it)."""
    return dict(asdict(config), device=str(resolve_device(config.device)),
                alignment={method: config.alignment(method)
                           for method in config.methods
                           if method in DIVERGENCES})


def resolve_device(device: str = 'auto') -> torch.device:
    r"""The device named :obj:`device`; :obj:`"auto"` picks CUDA if
    available."""
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError("'device' is 'cuda' but CUDA is not available "
                         "(use 'cpu' or 'auto')")
    if device == 'cuda' and distributed.launched():
        return torch.device('cuda', distributed.local_rank())
    return torch.device(device)


@dataclass
class RunResult:
    r"""The outcome of one run: the best-validation model's metrics, its
    number of parameters (:obj:`params`, the adversaries' included, of which
    :obj:`adversary_params` are theirs), the learning curves
    (:obj:`history`: per epoch the training loss, the unweighted alignment
    loss and the validation accuracy), the test reliability bins
    (:obj:`calibration`, see :func:`reliability_bins`), the test accuracy
    under attack (:obj:`attack`, if asked for) and the keys and queries
    (:obj:`keys_queries`, if asked for)."""
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
    adversary_params: int = 0
    history: Dict[str, List[float]] = field(default_factory=dict)
    calibration: Dict[str, List[float]] = field(default_factory=dict)
    attack: Dict[str, Dict[str, float]] = field(default_factory=dict)
    keys_queries: List[Dict] = field(default_factory=list)


def run(data: Data, method: str, seed: int, config: Config,
        progress: bool = False,
        checkpoint: Optional['Checkpoint'] = None) -> RunResult:
    r"""Builds the model of :obj:`method` (see :func:`make_model`) from seed
    :obj:`seed` and trains it (see :func:`fit`).

    Args:
        data (Data): The graph (see :func:`~align_gnn.data.load_dataset`).
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
    model = make_model(method, data, config).to(resolve_device(config.device))
    return fit(model, data, method, seed, config, progress, checkpoint)


def make_optimizer(model: torch.nn.Module, config: Config,
                   method: str) -> torch.optim.Optimizer:
    r"""Adam over every parameter of :obj:`model` (of :obj:`method`) with
    :obj:`config.lr` and :obj:`config.weight_decay`; the adversaries'
    parameters (see :func:`~align_gnn.models.adversary_parameters`) form a
    second group with the learning rate :obj:`config.lr` times the
    method's :obj:`adversary_lr_scale` (see :meth:`Config.alignment`)."""
    adversary = adversary_parameters(model)
    ids = {id(p) for p in adversary}
    groups = [dict(params=[p for p in model.parameters() if id(p) not in ids])]
    if adversary:
        scale = config.alignment(method)['adversary_lr_scale']
        groups.append(dict(params=adversary, lr=config.lr * scale))
    return torch.optim.Adam(groups, lr=config.lr,
                            weight_decay=config.weight_decay)


def fit(model: torch.nn.Module, data: Data, method: str, seed: int,
        config: Config, progress: bool = False,
        checkpoint: Optional['Checkpoint'] = None) -> RunResult:
    r"""Trains :obj:`model` (in place, on its device) with early stopping on
    validation accuracy (validation loss breaks ties), restores the best
    weights (those of epoch 1 at least) and evaluates them; arguments as in
    :func:`run`.

    Full-batch, or with :obj:`config.batch_size` on neighbour-sampled
    subgraphs of the training nodes, evaluated on the full graph. In a
    process group of several processes (see :mod:`align_gnn.distributed`),
    the model is wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel` (the adversaries'
    gradients are all-reduced with the rest), each rank trains on its shard
    of the training nodes, rank 0 evaluates and every rank takes its
    decisions, so that all ranks end with the same weights and result.
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

    best_acc, best_nll, best_epoch, best_state = -1.0, math.inf, 0, None
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

    bar = tqdm(range(epoch + 1, config.epochs + 1), initial=epoch,
               total=config.epochs, desc=f'{method} seed {seed}',
               leave=False, disable=not (progress and distributed.is_main()))
    start = time.perf_counter()
    for epoch in bar:
        if loader is None:
            losses = train_epoch(model, full, optimizer, align_weight)
        else:
            losses = train_epoch_minibatch(model, loader, optimizer,
                                           align_weight, device)
        curves.append(distributed.mean(torch.stack(losses)))
        distributed.sync_buffers(module)
        metrics = distributed.broadcast_object(
            evaluate(module, full, evaluator) if distributed.is_main() else
            None)
        val_acc, val_nll = metrics['val_acc'], metrics['val_nll']
        val_accs.append(val_acc)
        if val_acc > best_acc or (val_acc == best_acc and val_nll < best_nll):
            best_acc, best_nll, best_epoch = val_acc, val_nll, epoch
            best_state = {k: v.clone() for k, v in module.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
        if checkpoint is not None and epoch % checkpoint.every == 0:
            checkpoint.save_run(method, seed, dict(
                epoch=epoch, model=module.state_dict(),
                optimizer=optimizer.state_dict(), rng=rng_state(device),
                best_acc=best_acc, best_nll=best_nll, best_epoch=best_epoch,
                best_model=best_state, curves=torch.stack(curves),
                val_accs=val_accs,
                seconds=elapsed + time.perf_counter() - start))
        bar.set_postfix(val_acc=f'{val_acc:.3f}', best=f'{best_acc:.3f}')
    seconds = elapsed + time.perf_counter() - start
    bar.close()

    module.load_state_dict(best_state)
    metrics = distributed.broadcast_object(
        _final_metrics(module, full, evaluator, seed, config)
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
                   config: Config) -> Dict:
    metrics = evaluate(model, data, evaluator)
    metrics['attack'] = {} if config.attack is None else robustness(
        model, data, config.budgets, config.attack, config.attack_epochs,
        seed)
    metrics['keys_queries'] = []
    if config.keys_queries and seed == config.seed:
        metrics['keys_queries'] = key_query_pca(model, data, seed=seed)
    return metrics


def run_many(data: Data, config: Config, progress: bool = False,
             checkpoint: Optional['Checkpoint'] = None) -> List[RunResult]:
    r"""Runs every method of :obj:`config` on the seeds
    :obj:`config.seed, ..., config.seed + config.runs - 1`, the methods
    interleaved within each seed (so that slow phases of a shared machine
    hit all methods alike). With a :obj:`checkpoint`, runs it holds as
    finished are not trained again, the interrupted one continues, and
    every finished run is saved."""
    seeds = range(config.seed, config.seed + config.runs)
    bar = tqdm(total=len(seeds) * len(config.methods), desc='runs',
               disable=not (progress and distributed.is_main()))
    results = []
    for seed in seeds:
        for method in config.methods:
            result = checkpoint.result(method, seed) if checkpoint else None
            if result is None:
                result = run(data, method, seed, config, progress,
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
        atomic_write(self.path, partial(torch.save, state), binary=True)


# Experiments #################################################################


def experiment(config: Config, root: Optional[str] = None,
               progress: bool = False,
               checkpoint: Optional[Checkpoint] = None) -> Dict:
    r"""Loads the data set (see :func:`~align_gnn.data.load_dataset`; with
    several processes, rank 0 first), runs every method of :obj:`config` on
    every seed (continuing from :obj:`checkpoint`, if given, see
    :func:`run_many`) and returns the results as
    :obj:`{"dataset", "config", "runs": [...], "summary": {method: ...},
    "environment": {...}}` (accuracies as fractions)."""
    with distributed.main_first():
        data = load_dataset(config.dataset, root, **graph_file_options(
            config))
    for method in config.methods:
        unset = [name for name in recommended_alignment(config.dataset,
                                                        method)
                 if getattr(config, name) is None]
        if unset and distributed.is_main():
            log.info(f"{method} on {dataset_name(config.dataset)}: the "
                     f"study's choice of {', '.join(unset)} (all: "
                     f"{config.alignment(method)})")
    results = run_many(data, config, progress, checkpoint)
    return dict(dataset=config.dataset, config=config_record(config),
                runs=[asdict(result) for result in results],
                summary=summarize(results), environment=environment())


def graph_file_options(config: Config) -> Dict:
    r"""The arguments of :func:`~align_gnn.data.load_graph_file` in
    :obj:`config` (none for the named data sets)."""
    if not is_graph_file(config.dataset):
        return {}
    return dict(label_attr=config.label_attr,
                feature_attr=config.feature_attr,
                node_attributes=config.node_attributes, split=config.split,
                seed=config.seed)


def environment() -> Dict:
    r"""The versions of Python and the libraries, the machine and the
    number of processes, as results files record them."""
    import ogb
    return dict(python=platform.python_version(), torch=torch.__version__,
                torch_geometric=torch_geometric.__version__,
                ogb=ogb.__version__, align_gnn=align_gnn.__version__,
                machine=platform.platform(),
                processes=distributed.world_size(),
                **reproducibility_settings())


def default_output_path(config: Config) -> str:
    r"""A timestamped results file under :obj:`results/`."""
    dataset = (osp.splitext(osp.basename(config.dataset))[0]
               if is_graph_file(config.dataset) else config.dataset)
    name = '-'.join([dataset, *config.methods,
                     time.strftime('%Y%m%d-%H%M%S')])
    return osp.join('results', f'{name}.json')
