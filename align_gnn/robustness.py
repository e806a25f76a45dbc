r"""Robustness of a trained model to structure perturbations at test time
(evasion): PyG's PRBCD attack (`"Robustness of Graph Neural Networks at
Scale" <https://arxiv.org/abs/2110.14038>`_) and, as a control, random edge
flips, each at budgets given as fractions of the graph's edges."""
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence

import torch
from torch import Tensor

from torch_geometric.data import Data
from torch_geometric.nn.conv import (
    gat_conv,
    gatv2_conv,
    supergat_conv,
    transformer_conv,
)
from torch_geometric.utils import coalesce, to_undirected

with warnings.catch_warnings():  # "contains experimental code"
    warnings.simplefilter('ignore')
    from torch_geometric.contrib.nn import PRBCDAttack

ATTACKS = ('prbcd', )
# The modules of the attention layers that add self-loops, and of those that
# do not:
SELF_LOOP_MODULES = (gat_conv, gatv2_conv, supergat_conv)
PLAIN_MODULES = (transformer_conv, )
BLOCK_SIZE = 250_000  # PRBCD's sampled candidate edges (PyG's Cora example)


@contextmanager
def weighted_attention(edge_weight: Tensor, num_nodes: int) -> Iterator[None]:
    r"""Within the block, the attention softmax of
    :class:`~torch_geometric.nn.conv.GATConv` (and subclasses),
    :class:`~torch_geometric.nn.conv.GATv2Conv`,
    :class:`~torch_geometric.nn.conv.SuperGATConv` and
    :class:`~torch_geometric.nn.conv.TransformerConv` weighs the edge
    :math:`j \rightarrow i` by its weight :math:`w_{ij}`:
    :math:`\alpha_{ij} \propto w_{ij} \exp(e_{ij})` (weight 1: unchanged,
    weight 0: as if the edge were absent), the relaxation of PyG's
    `examples/contrib/rbcd_attack.py`. :obj:`edge_weight` belongs to the
    edges without self-loops the layers get (see :class:`EdgeWeightedModel`);
    the self-loops that layers add have weight 1."""
    with_loops = torch.cat([edge_weight, edge_weight.new_ones(num_nodes)])
    originals = {module: module.softmax
                 for module in (*SELF_LOOP_MODULES, *PLAIN_MODULES)}
    for module in originals:
        weight = with_loops if module in SELF_LOOP_MODULES else edge_weight
        module.softmax = _weighted_softmax(originals[module], weight)
    try:
        yield
    finally:
        for module, original in originals.items():
            module.softmax = original


def _weighted_softmax(softmax, edge_weight: Tensor):
    def weighted_softmax(src: Tensor, *args, **kwargs) -> Tensor:
        if src.size(0) != edge_weight.numel():
            raise RuntimeError(f'{src.size(0)} attention logits for '
                               f'{edge_weight.numel()} edge weights')
        log_weight = edge_weight.clamp_min(1e-12).log()
        return softmax(src + log_weight.view(-1, *[1] * (src.dim() - 1)),
                       *args, **kwargs)

    return weighted_softmax


class EdgeWeightedModel(torch.nn.Module):
    r"""A trained attention model :obj:`model(x, edge_index)` that also
    takes edge weights in :math:`[0, 1]`, as PRBCD needs (see
    :func:`weighted_attention`; self-loops of the input are dropped, the
    layers that add them do so with weight 1)."""
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_weight: Optional[Tensor] = None) -> Tensor:
        if edge_weight is None:
            return self.model(x, edge_index)
        keep = edge_index[0] != edge_index[1]
        with weighted_attention(edge_weight[keep], x.size(0)):
            return self.model(x, edge_index[:, keep])


def random_flips(edge_index: Tensor, num_nodes: int, num_flips: int,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    r"""The undirected graph :obj:`edge_index` with :obj:`num_flips`
    distinct node pairs :math:`\{i, j\}`, :math:`i \neq j`, drawn uniformly
    at random, flipped (added if absent, removed if present)."""
    if num_flips > num_nodes * (num_nodes - 1) // 2:
        raise ValueError(f'Cannot flip {num_flips} distinct node pairs of a '
                         f'graph with {num_nodes} nodes')
    edge_index = coalesce(to_undirected(edge_index, num_nodes=num_nodes))
    pairs = torch.empty(2, 0, dtype=torch.long)
    while pairs.size(1) < num_flips:
        draws = torch.randint(num_nodes, (2, 2 * num_flips),
                              generator=generator)
        draws = draws[:, draws[0] < draws[1]]
        pairs = torch.cat([pairs, draws], dim=1)
        pairs = pairs[:, _first_occurrences(pairs[0] * num_nodes + pairs[1])]
    pairs = pairs[:, :num_flips].to(edge_index.device)
    both = torch.cat([edge_index, to_undirected(pairs)], dim=1)
    key = both[0] * num_nodes + both[1]
    unique, count = key.unique(return_counts=True)
    kept = unique[count == 1]  # in exactly one of the graph and the flips
    return torch.stack([kept // num_nodes, kept % num_nodes])


def _first_occurrences(key: Tensor) -> Tensor:
    _, inverse = key.unique(return_inverse=True)
    first = torch.full((int(inverse.max()) + 1, ), key.numel())
    first.scatter_reduce_(0, inverse, torch.arange(key.numel()), 'amin')
    return first.sort().values


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: Data, edge_index: Tensor,
             mask: Tensor) -> float:
    r"""The accuracy of :obj:`model` on the nodes :obj:`mask` of
    :obj:`data` with the edges :obj:`edge_index`."""
    model.eval()
    pred = model(data.x, edge_index)[mask].argmax(dim=-1)
    return int(pred.eq(data.y[mask]).sum()) / int(mask.sum())


def robustness(model: torch.nn.Module, data: Data, budgets: Sequence[float],
               attack: str = 'prbcd', epochs: int = 125,
               seed: int = 0) -> Dict[str, Dict[str, float]]:
    r"""The test accuracy of :obj:`model` (evaluation mode) on the graph
    perturbed at each budget, a fraction of the undirected edges:
    :obj:`{"prbcd": {"0.05": acc, ...}, "random": {...}}`.

    The attack is a global evasion attack on the test nodes (PyG's
    :class:`~torch_geometric.contrib.nn.PRBCDAttack`, probability margin
    loss, :obj:`epochs` steps plus as many to sample the final
    perturbation); the control flips as many random node pairs.

    Args:
        model (torch.nn.Module): A trained model :obj:`model(x, edge_index)`
            of attention layers that add self-loops.
        data (Data): The undirected graph with :obj:`test_mask`.
        budgets (list of float): Fractions of the edges to flip, in
            :math:`[0, 1]`.
        attack (str, optional): :obj:`"prbcd"`. (default: :obj:`"prbcd"`)
        epochs (int, optional): PRBCD's epochs. (default: :obj:`125`)
        seed (int, optional): Seeds the attack and the random flips.
            (default: :obj:`0`)
    """
    if attack not in ATTACKS:
        raise ValueError(f"Unknown attack {attack!r} (choose from "
                         f"{', '.join(ATTACKS)})")
    model.eval()
    trainable = [p for p in model.parameters() if p.requires_grad]
    for param in trainable:
        param.requires_grad_(False)  # gradients w.r.t. edge weights only
    num_nodes, mask = data.num_nodes, data.test_mask
    num_edges = coalesce(to_undirected(data.edge_index)).size(1) // 2
    generator = torch.Generator().manual_seed(seed)
    results = {attack: {}, 'random': {}}
    try:
        for budget in budgets:
            num_flips = round(budget * num_edges)
            torch.manual_seed(seed)
            perturbed, _ = PRBCDAttack(
                EdgeWeightedModel(model), BLOCK_SIZE, epochs=epochs,
                epochs_resampling=max(epochs * 4 // 5, 1),
                log=False).attack(data.x, data.edge_index, data.y,
                                  num_flips, mask.nonzero().view(-1))
            results[attack][str(budget)] = accuracy(model, data, perturbed,
                                                    mask)
            flipped = random_flips(data.edge_index, num_nodes, num_flips,
                                   generator)
            results['random'][str(budget)] = accuracy(model, data, flipped,
                                                      mask)
    finally:
        for param in trainable:
            param.requires_grad_(True)
    return results
