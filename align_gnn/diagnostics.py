r"""Diagnostics of a trained attention model: does its attention matter,
and so would alignment have anything to act on (:func:`attention_check`:
per layer, the attention's entropy relative to uniform and the score with
the attention made uniform), and what alignment does to keys and queries
(:func:`key_query_pca`: per layer and head, a 2-D principal component
projection of sampled keys and queries and their squared MMD)."""
import copy
import inspect
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from torch_geometric.data import Data
from torch_geometric.nn import GATConv, GATv2Conv, TransformerConv
from torch_geometric.utils import scatter, to_edge_index

from align_gnn.conv import AlignedAttention, sample_rows, select_rows
from align_gnn.convert import ALIGNED
from align_gnn.divergences import MMD
from align_gnn.metrics import roc_auc

ATTENTION_LAYERS = (GATConv, GATv2Conv, TransformerConv)
# The rule of `attention_check` (docs/attention.md, "Check your own graph"):
MARGIN = 0.01
STUDY = 'docs/attention.md#check-your-own-graph'
SPLITS = {'train': 'training', 'val': 'validation', 'test': 'test'}
METRICS = {'acc': 'accuracy', 'roc_auc': 'ROC-AUC'}


@torch.no_grad()
def key_query_pca(model: torch.nn.Module, data: Data, num_samples: int = 256,
                  seed: int = 0) -> List[Dict]:
    r"""For every attention layer with keys and queries in :obj:`model`
    (:class:`~torch_geometric.nn.conv.GATConv`,
    :class:`~torch_geometric.nn.conv.GATv2Conv`,
    :class:`~torch_geometric.nn.conv.TransformerConv`, aligned or not; see
    :meth:`~align_gnn.AlignedGATConv.key_query`), in order, and each head:
    the keys and queries of
    :obj:`num_samples` nodes drawn uniformly (seeded), as computed in
    evaluation mode on the full graph, projected onto the head's first two
    principal components (of keys and queries together), with the squared
    MMD between queries and keys (the parameter-free divergence, comparable
    across models):
    :obj:`[{"layer": name, "heads": [{"keys": [[x, y], ...], "queries":
    [...], "mmd": float}, ...]}, ...]`."""
    convs = [(name, module) for name, module in model.named_modules()
             if isinstance(module, AlignedAttention) or type(module) in
             ALIGNED]
    inputs = layer_inputs(model, data, convs)

    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    index = sample_rows(data.num_nodes, num_samples, torch.device('cpu'))
    torch.set_rng_state(generator_state)
    mmd = MMD()
    layers = []
    for name, conv in convs:
        x = inputs[name]
        if index is not None:
            x = select_rows(x, index.to(x.device))
        aligned_type = type(conv) if isinstance(
            conv, AlignedAttention) else ALIGNED[type(conv)][0]
        keys, queries = aligned_type.key_query(conv, x)  # (m, H, C)
        keys, queries = keys.transpose(0, 1), queries.transpose(0, 1)
        values = mmd(queries, keys)
        heads = []
        for head in range(conv.heads):
            key_2d, query_2d = _pca_2d(keys[head], queries[head])
            heads.append(dict(keys=key_2d.tolist(), queries=query_2d.tolist(),
                              mmd=float(values[head])))
        layers.append(dict(layer=name, heads=heads))
    return layers


@torch.no_grad()
def layer_arguments(
    model: torch.nn.Module,
    data: Data,
    layers: List[Tuple[str, torch.nn.Module]],
) -> Dict[str, Tuple[Tensor, ...]]:
    r"""The node features and edge indices each of the named :obj:`layers`
    of :obj:`model` receives in one evaluation-mode forward pass on the full
    graph (a model may add self-loops before a layer)."""
    model.eval()
    _, calls = _layer_calls(model, data.x, data.edge_index, layers)
    return {name: args[:2] for name, (args, _) in calls.items()}


def _layer_calls(
    model: torch.nn.Module,
    x: Tensor,
    edge_index: Tensor,
    layers: List[Tuple[str, torch.nn.Module]],
) -> Tuple[Any, Dict[str, Tuple[Tuple, Dict]]]:
    # The output of `model(x, edge_index)` and the positional and keyword
    # arguments of the last call of each of the named `layers` in it.
    calls = {}

    def keep(name: str):
        def hook(module, args, kwargs):
            calls[name] = (args, kwargs)
        return hook

    hooks = [layer.register_forward_pre_hook(keep(name), with_kwargs=True)
             for name, layer in layers]
    try:
        out = model(x, edge_index)
    finally:
        for hook in hooks:
            hook.remove()
    return out, calls


def layer_inputs(
    model: torch.nn.Module,
    data: Data,
    layers: List[Tuple[str, torch.nn.Module]],
) -> Dict[str, Tensor]:
    r"""The node features each of the named :obj:`layers` of :obj:`model`
    receives (see :func:`layer_arguments`)."""
    return {name: args[0]
            for name, args in layer_arguments(model, data, layers).items()}


def _pca_2d(keys: Tensor, queries: Tensor):
    points = torch.cat([keys, queries]).double()
    centered = points - points.mean(dim=0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    components = v[:2].t()
    if components.size(1) < 2:  # one channel: a zero second coordinate
        components = torch.cat([components, components.new_zeros(
            components.size(0), 2 - components.size(1))], dim=1)
    projected = (centered @ components).float()
    return projected[:keys.size(0)], projected[keys.size(0):]


# The attention check #########################################################


def attention_layers(
        model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module]]:
    r"""The named attention layers of :obj:`model`, in order:
    :class:`~torch_geometric.nn.conv.GATConv`,
    :class:`~torch_geometric.nn.conv.GATv2Conv` and
    :class:`~torch_geometric.nn.conv.TransformerConv` layers and their
    subclasses (the aligned layers among them)."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, ATTENTION_LAYERS)]


def attention_parameters(conv: torch.nn.Module) -> List[Tensor]:
    r"""The parameters of the attention layer :obj:`conv` whose zeros make
    its attention uniform (every logit zero): GAT's :math:`\mathbf{a}_s`,
    :math:`\mathbf{a}_t` (and :math:`\mathbf{a}_e` with edge features),
    GATv2's :math:`\mathbf{a}`, a Transformer layer's query projection
    (:math:`\mathbf{q}_i = \mathbf{0}`, so every
    :math:`\mathbf{q}_i^{\top}\mathbf{k}_j` is zero)."""
    if isinstance(conv, TransformerConv):
        names = ('lin_query.weight', 'lin_query.bias')
    else:
        names = ('att', 'att_src', 'att_dst', 'att_edge')
    params = dict(conv.named_parameters())
    return [params[name] for name in names if name in params]


@torch.no_grad()
def make_uniform(
    model: torch.nn.Module,
    layers: Optional[List[Tuple[str, torch.nn.Module]]] = None,
) -> torch.nn.Module:
    r"""Makes the attention :obj:`layers` of :obj:`model` (default: all, see
    :func:`attention_layers`) average their neighbours uniformly, in place,
    by zeroing their :func:`attention_parameters`; every other weight is
    kept. Returns :obj:`model`."""
    for _, conv in attention_layers(model) if layers is None else layers:
        for param in attention_parameters(conv):
            param.zero_()
    return model


@torch.no_grad()
def attention_entropy(conv: torch.nn.Module, *args,
                      **kwargs) -> Optional[float]:
    r"""The mean, over the target nodes with two or more neighbours (a
    self-loop the layer adds included) and over heads, of the entropy of a
    node's attention divided by that of uniform attention,
    :math:`\log(\deg)`: :obj:`1` for uniform attention, :obj:`0` for
    attention on one neighbour. :obj:`args` and :obj:`kwargs` are the
    layer's inputs (e.g. :obj:`x, edge_index`); :obj:`None` if the layer's
    :meth:`forward` cannot return its attention weights
    (:obj:`return_attention_weights`) or no node has two neighbours."""
    if 'return_attention_weights' not in inspect.signature(
            conv.forward).parameters:
        return None
    _, attention = conv(*args, **{**kwargs,
                                  'return_attention_weights': True})
    adj, alpha = (attention if isinstance(attention, tuple) else
                  (attention, None))  # a SparseTensor holds alpha
    if isinstance(adj, Tensor) and adj.layout == torch.strided:
        dst = adj[1]
    else:  # a sparse adjacency of alpha, transposed: rows are targets
        edge_index, alpha = to_edge_index(adj)
        dst = edge_index[0]
    alpha = alpha.view(alpha.size(0), -1)  # (E, heads)
    entropy = scatter(-alpha * alpha.clamp_min(1e-30).log(), dst, 0,
                      reduce='sum')
    degree = scatter(torch.ones_like(dst, dtype=alpha.dtype), dst, 0,
                     reduce='sum')
    keep = degree > 1
    if not bool(keep.any()):
        return None
    return float((entropy[keep] / degree[keep].log().unsqueeze(-1)).mean())


@dataclass
class LayerCheck:
    r"""One attention layer of an :class:`AttentionCheck`: its name in the
    model, its class, its :func:`attention_entropy` (:obj:`None` where it
    cannot be measured) and the score of the model with this layer's
    attention made uniform, the other layers' kept."""
    name: str
    layer: str
    entropy: Optional[float]
    uniform_score: float


@dataclass
class AttentionCheck:
    r"""The result of :func:`attention_check`: the :obj:`metric`
    (:obj:`"acc"` or :obj:`"roc_auc"`), the nodes scored (:obj:`"validation"`,
    :obj:`"test"`, :obj:`"training"` or :obj:`"given"`) and their number,
    the trained model's score, its score with every attention layer
    uniform, the :obj:`margin` of the rule and one :class:`LayerCheck` per
    layer; scores as fractions. :obj:`str()` gives a short table and the
    :attr:`verdict`."""
    metric: str
    nodes: str
    num_nodes: int
    score: float
    uniform_score: float
    margin: float
    layers: List[LayerCheck]

    @property
    def cost(self) -> float:
        r"""What uniform attention costs: the score minus the score with
        every attention layer uniform."""
        return self.score - self.uniform_score

    @property
    def matters(self) -> bool:
        r"""Whether alignment has something to act on: uniform attention
        costs more than :obj:`margin`."""
        return self.cost > self.margin

    @property
    def verdict(self) -> str:
        r"""One line: whether alignment has something to act on, why, and
        where the rule and the study behind it are."""
        what = METRICS[self.metric]
        if self.nodes != 'given':
            what = f'{self.nodes} {what}'
        margin = f'{100 * self.margin:g} point' + (
            '' if 100 * self.margin == 1 else 's')
        change = (f'uniform attention changes the {what} by '
                  f'{0.0 - 100 * self.cost:+.1f} points ({100 * self.score:.1f} '
                  f'-> {100 * self.uniform_score:.1f})')
        if self.matters:
            line = (f'attention matters here: {change}, a loss of more than '
                    f'{margin}, so alignment has something to act on')
        else:
            line = (f'nothing for alignment to act on: {change}, not a loss '
                    f'of more than {margin}; where this held in the study, '
                    f'alignment changed nothing measurable')
        return f'{line} (rule and study: {STUDY})'

    def to_dict(self) -> Dict[str, Any]:
        r"""The fields with :attr:`cost`, :attr:`matters` and
        :attr:`verdict`, for a JSON file."""
        return dict(asdict(self), cost=self.cost, matters=self.matters,
                    verdict=self.verdict)

    def __str__(self) -> str:
        def number(value: Optional[float], scale: float = 1) -> str:
            return 'n/a' if value is None else f'{scale * value:.3f}'

        score = f'{METRICS[self.metric]} in %'
        lines = [f'attention check on {self.num_nodes} {self.nodes} nodes '
                 f'({score}; entropy relative to uniform, 1 = uniform):',
                 f'{"layer":<24}{"type":<24}{"entropy":>8}'
                 f'{"this layer uniform":>20}']
        for layer in self.layers:
            lines.append(f'{layer.name:<24}{layer.layer:<24}'
                         f'{number(layer.entropy):>8}'
                         f'{100 * layer.uniform_score:>20.2f}')
        lines.append(f'trained: {100 * self.score:.2f}; every layer uniform: '
                     f'{100 * self.uniform_score:.2f}')
        return '\n'.join(lines + [self.verdict])


@torch.no_grad()
def attention_check(
    model: torch.nn.Module,
    data: Data,
    nodes: Union[str, Tensor] = 'val',
    metric: Optional[str] = None,
    margin: float = MARGIN,
) -> AttentionCheck:
    r"""Does the attention of the trained :obj:`model` matter on
    :obj:`data`, so that alignment has anything to act on? Per attention
    layer (see :func:`attention_layers`), the :func:`attention_entropy`
    relative to uniform and the score with that layer's attention made
    uniform (see :func:`make_uniform`); the score of the trained model and
    with every layer uniform; and the verdict, by the rule of the study
    (:file:`docs/attention.md`, "Check your own graph"):

    **Alignment has something to act on if making the attention uniform
    costs more than** :obj:`margin` **(one point)**, on the nodes scored.

    In the study (six benchmarks, GAT, GATv2 and Transformer layers),
    wherever uniform attention cost at most 0.2 points, alignment changed
    nothing measurable; on minesweeper uniform attention costs 1.9-2.7
    ROC-AUC points and on DictionaryLookup, where attention is the task, it
    takes accuracy to about 9 %. The entropy is reported but not part of the
    rule: it misleads both ways (GATv2 solves DictionaryLookup with an
    entropy 0.95 of uniform, GAT on chameleon-filtered has 0.91 and loses
    nothing with uniform attention).

    Works on a copy of :obj:`model` in evaluation mode (the model itself,
    its weights and training flags, is left as it is), on the model's
    device, calling it as :obj:`model(x, edge_index)`.

    Args:
        model (torch.nn.Module): A trained model with attention layers, any
            :class:`torch.nn.Module` whose :obj:`forward` takes
            :obj:`(x, edge_index)` and returns logits :math:`(N, C)`.
        data (torch_geometric.data.Data): The graph, with :obj:`x`,
            :obj:`edge_index`, labels :obj:`y` and the masks
            :obj:`"{nodes}_mask"` (one split).
        nodes (str or torch.Tensor, optional): The nodes to score:
            :obj:`"val"`, :obj:`"test"` or :obj:`"train"` (the data's
            mask), or a boolean mask or an index of nodes.
            (default: :obj:`"val"`)
        metric (str, optional): :obj:`"acc"` (accuracy) or
            :obj:`"roc_auc"` (ROC-AUC of the logit difference, two
            classes); :obj:`None` for :obj:`data.metric`, else accuracy.
            (default: :obj:`None`)
        margin (float, optional): The rule's margin, as a fraction.
            (default: :obj:`0.01`)
    """
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no attention layer "
                         f"(GATConv, GATv2Conv or TransformerConv, plain or "
                         f"aligned): there is no attention to check")
    if not margin >= 0:
        raise ValueError(f"'margin' must be a number >= 0 (got {margin!r})")
    metric = metric or getattr(data, 'metric', 'acc')
    if metric not in METRICS:
        raise ValueError(f"'metric' must be one of {', '.join(METRICS)} "
                         f"(got {metric!r})")
    for key in ('x', 'edge_index', 'y'):
        if getattr(data, key, None) is None:
            raise ValueError(f"The data has no '{key}': the check needs node "
                             f"features, edges and labels")
    index, described = _scored_nodes(data, nodes)

    model = copy.deepcopy(model).eval()
    layers = attention_layers(model)
    device = next(model.parameters()).device
    x, edge_index, y = (data.x.to(device), data.edge_index.to(device),
                        data.y.to(device))
    index = index.to(device)

    def score(out: Tensor) -> float:
        logits, labels = out[index], y[index]
        if metric == 'roc_auc':
            return roc_auc(logits[:, 1] - logits[:, 0], labels)
        return int(logits.argmax(dim=-1).eq(labels).sum()) / labels.numel()

    out, calls = _layer_calls(model, x, edge_index, layers)
    if not (isinstance(out, Tensor) and out.dim() == 2
            and out.size(0) == y.size(0)):
        got = (tuple(out.shape) if isinstance(out, Tensor) else
               type(out).__name__)
        raise ValueError(f"model(x, edge_index) must return logits of shape "
                         f"(N, C) with N = {y.size(0)} nodes (got {got})")
    if metric == 'roc_auc' and out.size(1) != 2:
        raise ValueError(f"ROC-AUC needs two classes (the model has "
                         f"{out.size(1)} outputs); use metric='acc'")
    trained = score(out)
    if trained != trained:  # ROC-AUC without positives or negatives
        raise ValueError(f"The {described} nodes hold one class only: "
                         f"ROC-AUC is undefined; score other nodes")

    checks = []
    for name, conv in layers:
        entropy = (attention_entropy(conv, *calls[name][0], **calls[name][1])
                   if name in calls else None)
        saved = [param.clone() for param in attention_parameters(conv)]
        make_uniform(model, [(name, conv)])
        uniform = score(model(x, edge_index))
        for param, value in zip(attention_parameters(conv), saved):
            param.copy_(value)
        checks.append(LayerCheck(name, type(conv).__name__, entropy,
                                 uniform))
    if len(checks) == 1:
        uniform = checks[0].uniform_score
    else:
        uniform = score(make_uniform(model)(x, edge_index))
    return AttentionCheck(metric, described, int(index.numel()), trained,
                          uniform, margin, checks)


def _scored_nodes(data: Data, nodes: Union[str, Tensor]) -> Tuple[Tensor, str]:
    # The index of the nodes to score and how to name them.
    num_nodes = data.y.size(0)
    if isinstance(nodes, str):
        if nodes not in SPLITS:
            raise ValueError(f"'nodes' must be one of {', '.join(SPLITS)} or "
                             f"a mask or an index of nodes (got {nodes!r})")
        mask = getattr(data, f'{nodes}_mask', None)
        if mask is None:
            raise ValueError(f"The data has no '{nodes}_mask': pass the "
                             f"nodes to score as 'nodes' (a boolean mask or "
                             f"an index of nodes)")
        if mask.dim() != 1:
            raise ValueError(f"The data's '{nodes}_mask' holds several splits "
                             f"(shape {tuple(mask.shape)}): select one first "
                             f"(align_gnn.data.select_split(data, i)) or pass "
                             f"'nodes'")
        nodes, described = mask, SPLITS[nodes]
    else:
        nodes, described = torch.as_tensor(nodes), 'given'
    if nodes.dtype == torch.bool:
        if nodes.shape != (num_nodes,):
            raise ValueError(f"A mask of nodes must have shape ({num_nodes},) "
                             f"(got {tuple(nodes.shape)})")
        nodes = nodes.nonzero().view(-1)
    elif nodes.dtype not in (torch.long, torch.int) or nodes.dim() != 1 or (
            nodes.numel() and not (int(nodes.min()) >= 0
                                   and int(nodes.max()) < num_nodes)):
        raise ValueError(f"'nodes' must be a boolean mask or a 1-D index of "
                         f"nodes in [0, {num_nodes}) (got a {nodes.dtype} "
                         f"tensor of shape {tuple(nodes.shape)})")
    if nodes.numel() == 0:
        raise ValueError(f"No {described} nodes to score: pass others as "
                         f"'nodes'")
    return nodes, described
