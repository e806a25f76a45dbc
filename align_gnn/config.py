r"""The settings of an experiment (:class:`Config`) and their defaults: the
hyper-parameters per data set, the alignment settings per data set and
divergence (the study's choices), the device, and what neighbour sampling
needs installed."""
from dataclasses import asdict, dataclass, fields
from typing import Dict, Optional, Sequence

import torch
import torch_geometric

from align_gnn import distributed
from align_gnn.arguments import check_arguments
from align_gnn.data import DATASETS, dataset_name
from align_gnn.data.utils import _require
from align_gnn.divergences import DIVERGENCES
from align_gnn.models import METHODS
from align_gnn.data.heterophilous import NAMES as HETEROPHILOUS, NUM_SPLITS
from align_gnn.hetero_models import PLATONOV_DEFAULTS, PLATONOV_MODELS
from align_gnn.options import DENSE, FIELDS, SCOPES, check_scopes
from align_gnn.precision import check_precision

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


def acting_options(options: Dict, dataset: str,
                   methods: Sequence[str]) -> Dict:
    r"""The options among :obj:`options` (fields of :class:`Config`) that
    act in the config of :obj:`dataset`, :obj:`methods` and the unscoped
    :obj:`options` (see :data:`SCOPES`): e.g. a study's fields fixed for
    all its runs, each run taking those that act in it."""
    probe = Config(dataset, methods, **{name: value for name, value in
                                        options.items() if name not in SCOPES})
    return {name: value for name, value in options.items()
            if name not in SCOPES or SCOPES[name][0](probe)}


def default_hyperparameters(dataset: str) -> Dict:
    r"""The defaults for :obj:`dataset`: optimizer, learning rate and its
    warm-up, weight decay, loss, maximum epochs, model selection, labels as
    input, the neighbour sample sizes per layer (:obj:`fanout`) and, for the
    two-layer :class:`~align_gnn.models.GAT`, the number of output heads.
    Planetoid and graph files follow PyG's `examples/gat.py` for Cora;
    ogbn-arxiv follows DGL's leaderboard recipe (RMSprop, lr 0.002 warmed
    up over 50 epochs, no weight decay, loss :math:`\log(\epsilon +
    \mathrm{CE}) - \log\epsilon`, 2000 epochs, the lowest validation loss,
    labels as input, edge dropout 0.1, normalized adjacency) with
    :class:`~align_gnn.models.ArxivGAT`."""
    name = dataset_name(dataset)
    common = dict(optimizer='adam', lr_warmup=0, loss='ce', selection='acc',
                  labels='none')
    if dataset.lower() in HETEROPHILOUS:  # Platonov et al.'s
        return dict(common, lr=3e-5, weight_decay=0.0, epochs=1000,
                    fanout=(10, 10), output_heads=1, model='platonov-gat')
    if name == 'ogbn-arxiv':
        return dict(optimizer='rmsprop', lr=0.002, lr_warmup=50,
                    weight_decay=0.0, loss='log-ce', epochs=2000,
                    selection='loss', labels='input', fanout=(15, 10, 5),
                    norm_adj=True)
    defaults = dict(common, lr=0.005, weight_decay=5e-4, epochs=1000,
                    fanout=(10, 10), output_heads=1, model='gat')
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


@dataclass
class Config:
    r"""The settings of an experiment; :obj:`None` stands for the data
    set's default (see :func:`default_hyperparameters`).

    Args:
        dataset (str): :obj:`"cora"`, :obj:`"citeseer"`, :obj:`"pubmed"` or
            :obj:`"ogbn-arxiv"`.
        methods (list of str): Methods to train on the same seeds; the first
            is the reference of the paired tests (see
            :data:`~align_gnn.models.METHODS`).
        align_weight (float, optional): Weight :math:`\lambda` of the
            alignment loss.
        align_samples (int, optional): Keys and queries sampled per forward
            pass.
        rho (float, optional): Forward-transport weight of conditional
            transport.
        runs (int): Number of seeds :obj:`seed, seed + 1, ...`.
        seed (int): The first seed.
        epochs (int, optional): Maximum number of epochs.
        patience (int, optional): Epochs without a better validation
            accuracy (or an equal one with a lower validation loss; with
            :obj:`selection="loss"`, without a lower validation loss) before
            stopping; unset, :obj:`100` (ogbn-arxiv: :obj:`epochs`, no early
            stopping, as the recipe).
        lr (float, optional): Learning rate.
        weight_decay (float, optional): Weight decay.
        device (str): :obj:`"auto"`, :obj:`"cpu"` or :obj:`"cuda"`.
        features (str, optional): Node feature layout, :obj:`"dense"` or
            :obj:`"sparse"` (see :func:`~align_gnn.data.prepare_data`);
            unset, sparse for full-batch float32 training on Planetoid,
            else dense.
        batch_size (int, optional): Train on neighbour-sampled subgraphs of
            :obj:`batch_size` training nodes each (see
            :func:`~align_gnn.loops.neighbor_loader`); unset, full-batch.
            Required with several processes.
        fanout (list of int, optional): Neighbours sampled per node at each
            hop, one number per layer (:obj:`-1`: all).
        conv (str): The attention layer of :obj:`"none"` and the aligned
            methods: :obj:`"gat"`, :obj:`"gatv2"` or :obj:`"transformer"`
            (see :func:`~align_gnn.models.layer_factory`).
        adversary_channels (int, optional): Width of the adversaries (CT's
            critic and navigator, the discriminator).
        adversary_lr_scale (float, optional): The adversaries' learning rate
            is :obj:`lr * adversary_lr_scale`.
        align_warmup (int): Ramp the alignment weight linearly from
            :obj:`0` to :obj:`align_weight` over the first
            :obj:`align_warmup` epochs (see
            :func:`~align_gnn.alignment_weight`); :obj:`0`: the full weight
            from the first epoch, as the study's runs were made.

            Unset alignment settings are each divergence's own on the data
            set (see :meth:`alignment`).
        label_attr, feature_attr, node_attributes, split: For a graph
            file, see :func:`~align_gnn.data.graph_files.load_graph_file`
            (the split is drawn with :obj:`seed`, the same for every run).
        attack (str, optional): Evaluate each trained model under this
            structure attack (:obj:`"prbcd"`) and as many random edge flips
            (see :func:`~align_gnn.robustness.robustness`).
        budgets (list of float): The attack budgets, fractions of the edges.
        attack_epochs (int): PRBCD's epochs.
        keys_queries (bool): Record a PCA of sampled keys and queries of the
            first seed's trained model (see
            :func:`~align_gnn.diagnostics.key_query_pca`).
        selection (str, optional): The model selection rule (see
            :func:`~align_gnn.selection.make_selection`).
        optimizer (str, optional): :obj:`"adam"` or :obj:`"rmsprop"`.
        lr_warmup (int, optional): Epochs of linear learning-rate warm-up
            (see :func:`~align_gnn.schedule.learning_rate`).
        loss (str, optional): :obj:`"ce"` or :obj:`"log-ce"` (see
            :func:`~align_gnn.recipe.loss_function`).
        labels (str, optional): ogbn-arxiv: :obj:`"none"`, :obj:`"input"`
            (labels as input) or :obj:`"reuse"` (and label reuse, see
            :class:`~align_gnn.recipe.LabelInput`); unset, :obj:`"input"`
            full-batch, :obj:`"none"` with :obj:`batch_size`.
        edge_drop (float, optional): ogbn-arxiv GAT: the edge dropout of
            :class:`~align_gnn.conv.NormalizedGATConv`; unset, :obj:`0.1`
            (:obj:`0.3` with label reuse).
        norm_adj (bool, optional): ogbn-arxiv GAT: the symmetric degree
            normalization of :class:`~align_gnn.conv.NormalizedGATConv`;
            unset, :obj:`True`.
        att_dst (bool, optional): ogbn-arxiv GAT: learn the target attention
            vector (the query); unset, only with alignment (see
            :func:`~align_gnn.models.build_arxiv_model`).
        precision (str): :obj:`"fp32"`, :obj:`"tf32"` (CUDA) or
            :obj:`"bf16"` (see :func:`~align_gnn.precision.precision`).
        capture (bool): Keep full-batch training on the device where it
            can be: an epoch never waits for the host, and on CUDA it is
            replayed as a CUDA graph (see :mod:`~align_gnn.device_loop`;
            features are then dense by default). :obj:`False`: the epoch
            loop that reads every epoch on the host (as checkpoints,
            neighbour sampling and labels as input always do); the same
            results. (default: :obj:`True`)

            The defaults are the data set's (see
            :func:`default_hyperparameters`).
    """
    dataset: str = 'cora'
    methods: Sequence[str] = ('ct', )
    align_weight: Optional[float] = None
    align_samples: Optional[int] = None
    rho: Optional[float] = None
    runs: int = 10
    seed: int = 0
    epochs: Optional[int] = None
    patience: Optional[int] = None
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    device: str = 'auto'
    features: Optional[str] = None
    batch_size: Optional[int] = None
    fanout: Optional[Sequence[int]] = None
    conv: str = 'gat'
    adversary_channels: Optional[int] = None
    adversary_lr_scale: Optional[float] = None
    align_warmup: int = 0
    label_attr: str = 'label'
    feature_attr: Optional[Sequence[str]] = None
    node_attributes: Optional[str] = None
    split: Sequence[float] = (0.6, 0.2, 0.2)
    attack: Optional[str] = None
    budgets: Sequence[float] = (0.01, 0.05, 0.1)
    attack_epochs: int = 50
    keys_queries: bool = False
    # Issue 16 (see align_gnn/hetero_models.py, data/heterophilous.py,
    # data/dictionary_lookup.py, selection.py, across_heads.py):
    model: Optional[str] = None
    hidden: Optional[int] = None
    heads: Optional[int] = None
    layers: Optional[int] = None
    dropout: Optional[float] = None
    k: int = 4
    edge_noise: float = 0.0
    align_over: str = 'nodes'
    selection: Optional[str] = None
    # Issue 19 (DGL's ogbn-arxiv recipe, see align_gnn/recipe.py):
    optimizer: Optional[str] = None
    lr_warmup: Optional[int] = None
    loss: Optional[str] = None
    labels: Optional[str] = None
    edge_drop: Optional[float] = None
    norm_adj: Optional[bool] = None
    att_dst: Optional[bool] = None
    # Issue 27 (see align_gnn/precision.py, align_gnn/device_loop.py):
    precision: str = 'fp32'
    capture: bool = True

    def _captured(self) -> bool:
        # Whether runs may be captured as CUDA graphs (sparse features'
        # row sampling asks the host):
        return self.capture and (self.device == 'cuda' or (
            self.device == 'auto' and torch.cuda.is_available()))

    def __post_init__(self):
        for name, value in check_arguments('', {
                field.name: getattr(self, field.name)
                for field in fields(self)}, FIELDS).items():
            setattr(self, name, list(value) if isinstance(value, tuple)
                    else value)
        given = [field.name for field in fields(self)
                 if not _is_default(getattr(self, field.name), field.default)]
        if self.dataset.lower() in DATASETS:
            self.dataset = self.dataset.lower()
        dataset_name(self.dataset)
        self.methods = [method.lower() for method in self.methods]
        _require(len(self.methods) > 0 and set(self.methods) <= set(METHODS)
                 and len(set(self.methods)) == len(self.methods), 'methods',
                 f'distinct names from {", ".join(METHODS)}', self.methods)
        defaults = default_hyperparameters(self.dataset)
        for name in ('lr', 'weight_decay', 'epochs', 'fanout', 'optimizer',
                     'lr_warmup', 'loss', 'selection'):
            if getattr(self, name) is None:
                setattr(self, name, defaults[name])
        if self.patience is None:
            self.patience = (self.epochs if self.dataset == 'ogbn-arxiv' else
                             100)
        if self.features is None:
            self.features = 'sparse' if (self.dataset != 'ogbn-arxiv' and
                                         self.dataset not in DENSE and
                                         self.batch_size is None and
                                         self.precision != 'bf16' and
                                         not self._captured()) else 'dense'
        _require(self.features == 'dense' or self.precision != 'bf16',
                 'features', "'dense' with precision 'bf16' (PyTorch "
                 "multiplies sparse features in float32 only)", self.features)
        self._check_issue16(defaults)
        check_scopes(self, given)
        self._check_recipe(defaults)
        _require(self.seed + self.runs - 1 <= 2**32 - 1, 'seed',
                 f'at most 2**32 - runs = {2**32 - self.runs} (the seeds '
                 f'seed, ..., seed + runs - 1 seed NumPy)', self.seed)
        if self.precision == 'tf32':
            check_precision(self.precision, resolve_device(self.device))
        self.fanout = list(self.fanout)
        depth = len(defaults['fanout'])
        _require(len(self.fanout) == depth and all(
            n >= 1 or n == -1 for n in self.fanout), 'fanout',
            f'{depth} numbers >= 1 or -1 (one per layer of the '
            f'{self.dataset} model)', self.fanout)
        if self.batch_size is not None:
            _require(self.features == 'dense', 'features',
                     "'dense' with batch_size (neighbour sampling slices "
                     "dense features)", self.features)
            require_neighbor_sampling()
        elif distributed.launched():
            raise ValueError("Several processes train on shards of the "
                             "training nodes: set 'batch_size' "
                             "(--batch-size)")

    def _check_issue16(self, defaults: Dict):
        if self.model is None:
            self.model = defaults.get('model', 'gat')
        self.model = self.model.lower()
        if self.model in PLATONOV_MODELS:
            for name, value in PLATONOV_DEFAULTS.items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
            _require(self.hidden % self.heads == 0, 'hidden',
                     f'a multiple of heads ({self.heads})', self.hidden)
        if self.dataset in HETEROPHILOUS:
            _require(self.runs <= NUM_SPLITS, 'runs',
                     f'at most {NUM_SPLITS} on {self.dataset} (run i uses '
                     f'fixed split i of {NUM_SPLITS})', self.runs)

    def _check_recipe(self, defaults: Dict):
        if self.labels is None:
            self.labels = (defaults['labels'] if self.batch_size is None else
                           'none')
        arxiv = self.dataset == 'ogbn-arxiv'
        _require(arxiv or self.labels == 'none', 'labels',
                 f"'none' on {self.dataset} (labels as input belong to the "
                 f"ogbn-arxiv recipe)", self.labels)
        _require(self.batch_size is None or self.labels == 'none', 'labels',
                 "'none' with batch_size (labels as input train "
                 "full-batch)", self.labels)
        recipe = arxiv and self.model == 'gat'
        _require(self.att_dst is not False or not any(
            method in DIVERGENCES for method in self.methods), 'att_dst',
            'True or unset with alignment (the query it aligns)',
            self.att_dst)
        if recipe:
            if self.edge_drop is None:
                self.edge_drop = 0.3 if self.labels == 'reuse' else 0.1
            if self.norm_adj is None:
                self.norm_adj = defaults['norm_adj']

    def alignment(self, method: str) -> Dict:
        r"""The alignment settings (:data:`ALIGNMENT_SETTINGS`) of
        :obj:`method`: those set here, else the divergence's own on the data
        set (see :func:`alignment_defaults`)."""
        defaults = alignment_defaults(self.dataset, method)
        return {name: defaults[name] if getattr(self, name) is None else
                getattr(self, name) for name in ALIGNMENT_SETTINGS}


def _is_default(value, default) -> bool:
    if isinstance(default, (list, tuple)) and isinstance(value, (list,
                                                                 tuple)):
        return list(value) == list(default)
    return value is default or (default is not None and type(value) is
                                type(default) and value == default)


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
