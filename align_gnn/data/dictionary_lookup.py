r"""DictionaryLookup, the generated task of the `"How Attentive are Graph
Attention Networks?" <https://arxiv.org/abs/2105.14491>`_ paper (GATv2;
tech-srl/how_attentive_are_gats, :file:`dictionary_lookup/`), a problem that
static attention (GAT's) cannot solve for every query and dynamic attention
(GATv2's, a transformer's) can.

Each example is a bipartite graph of :math:`k` key nodes and :math:`k`
query nodes with an edge from every key node to every query node. Key node
:math:`i` carries the pair (key :math:`i`, value :math:`\pi(i)`) for a
permutation :math:`\pi` of :math:`\{0, \dots, k-1\}`; query node :math:`i`
carries (key :math:`i`, "empty"). The label of query node :math:`i` is the
value of the key node with the same key, :math:`\pi(i)`.

The examples are all :math:`k!` permutations, or :obj:`max_graphs` random
ones beyond (as in the paper, which draws 32,000). The paper's "unseen
combinations" split: a random set of
:math:`\lfloor f^{1/k} k^2 \rfloor` (position, value) pairs is allowed
(:math:`f` the training fraction); a graph is for training if all of its
query labels are allowed pairs, else held out. Here the held-out graphs are
halved at random into validation and test graphs (the paper has no
validation set), so both measure generalisation to unseen combinations.

The examples form one graph (a disjoint union) for the node-level trainer:
features are one-hot keys and one-hot values ("empty" the last of
:math:`k + 1`), :math:`2k + 1` in all; labels of key nodes are :obj:`-1`
and the masks hold query nodes only."""
import itertools
import math
from typing import List, Optional

import numpy as np
import torch
from torch_geometric.data import Data

from align_gnn.data.utils import DataError

NAMES = {'dictionary-lookup': 'DictionaryLookup'}
MAX_GRAPHS = 32000  # the paper's cap on the number of permutations


def permutations(k: int, max_graphs: int = MAX_GRAPHS,
                 rng: Optional[np.random.Generator] = None) -> np.ndarray:
    r"""All :math:`k!` permutations of :obj:`range(k)` (rows, in
    lexicographic order) or, if there are more than :obj:`max_graphs`,
    :obj:`max_graphs` random ones (repeats possible, as in the paper)."""
    if math.factorial(k) <= max_graphs:
        return np.array(list(itertools.permutations(range(k))),
                        dtype=np.int64).reshape(-1, k)
    rng = rng or np.random.default_rng()
    return np.stack([rng.permutation(k) for _ in range(max_graphs)])


def dictionary_lookup(k: int = 4, train_fraction: float = 0.8,
                      seed: int = 0, max_graphs: int = MAX_GRAPHS) -> Data:
    r"""The DictionaryLookup examples of size :obj:`k` as one graph (see
    the module's description) with :obj:`x` :math:`(2kG, 2k+1)`,
    :obj:`edge_index` (key :math:`\rightarrow` query, :math:`k^2 G` edges),
    :obj:`y`, boolean :obj:`train_mask`, :obj:`val_mask`, :obj:`test_mask`,
    :obj:`num_classes` (:math:`k`), :obj:`graph` (the example of each
    node) and :obj:`metric` (:obj:`"acc"`); drawn with :obj:`seed`.

    Args:
        k (int): Number of keys (and of values). (default: :obj:`4`)
        train_fraction (float): :math:`f`, about the fraction of training
            graphs. (default: :obj:`0.8`)
        seed (int): Seed of the permutations and of the split.
        max_graphs (int): At most this many examples.
    """
    if not isinstance(k, int) or k < 3:
        raise ValueError(f"'k' must be an integer >= 3 (got {k!r})")
    if not 0 < train_fraction < 1:
        raise ValueError(f"'train_fraction' must be in (0, 1) "
                         f"(got {train_fraction!r})")
    rng = np.random.default_rng(seed)
    perms = permutations(k, max_graphs, rng)  # (G, k): label of query i
    num_graphs = len(perms)

    # The "unseen combinations" split:
    num_pairs = int(train_fraction ** (1 / k) * k * k)
    allowed = np.zeros(k * k, dtype=bool)
    allowed[rng.choice(k * k, num_pairs, replace=False)] = True
    seen = allowed.reshape(k, k)[np.arange(k), perms].all(axis=1)
    held_out = rng.permutation(np.flatnonzero(~seen))
    val_graphs = held_out[:len(held_out) // 2]
    test_graphs = held_out[len(held_out) // 2:]
    if not seen.any() or len(val_graphs) == 0 or len(test_graphs) == 0:
        raise DataError(f"dictionary-lookup: k={k} gives {int(seen.sum())} "
                        f"training and {len(held_out)} held-out graphs; use a "
                        f"larger k or another seed")

    # Per graph: queries 0..k-1, then keys k..2k-1.
    perms_t = torch.from_numpy(perms)
    keys = torch.arange(k).repeat(num_graphs, 2)  # (G, 2k)
    values = torch.cat([torch.full((num_graphs, k), k), perms_t], dim=1)
    x = torch.cat([torch.nn.functional.one_hot(keys.view(-1), k),
                   torch.nn.functional.one_hot(values.view(-1), k + 1)],
                  dim=1).float()
    y = torch.cat([perms_t, torch.full((num_graphs, k), -1)], dim=1).view(-1)

    src, dst = torch.meshgrid(torch.arange(k, 2 * k), torch.arange(k),
                              indexing='ij')
    offsets = torch.arange(num_graphs).view(-1, 1) * 2 * k
    edge_index = torch.stack([(src.reshape(1, -1) + offsets).view(-1),
                              (dst.reshape(1, -1) + offsets).view(-1)])

    graph = torch.arange(num_graphs).repeat_interleave(2 * k)
    is_query = (torch.arange(2 * k) < k).repeat(num_graphs)

    def mask(graphs) -> torch.Tensor:
        chosen = torch.zeros(num_graphs, dtype=torch.bool)
        chosen[torch.as_tensor(graphs, dtype=torch.long)] = True
        return chosen[graph] & is_query

    data = Data(x=x, edge_index=edge_index, y=y,
                train_mask=mask(np.flatnonzero(seen)),
                val_mask=mask(val_graphs), test_mask=mask(test_graphs),
                graph=graph)
    data.num_classes = k
    data.metric = 'acc'
    return data


def raw_files(name: str, root: Optional[str] = None) -> List[str]:
    r"""None: the task is generated."""
    return []


def processed_dir(name: str, root: Optional[str] = None) -> Optional[str]:
    r""":obj:`None`: nothing derived is stored."""
    return None


def load_graph(name: str, root: Optional[str] = None, k: int = 4,
               seed: int = 0, **kwargs) -> Data:
    r""":func:`dictionary_lookup` (see
    :func:`~align_gnn.data.load_dataset`; no files, :obj:`root` is
    ignored)."""
    return dictionary_lookup(k, seed=seed, **kwargs)
