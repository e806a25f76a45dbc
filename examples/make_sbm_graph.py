r"""Writes examples/sbm.graphml: a stochastic block model graph of 4
communities of 75 nodes (edge probability 0.05 within, 0.02 across), the
community as the node attribute "label" and 16 noisy features whose mean
depends on it as the attribute "x" (a string of numbers, as GraphML holds
only scalars), for `train_gat.py --dataset examples/sbm.graphml`.

    python examples/make_sbm_graph.py
"""
import os.path as osp

import networkx as nx
import numpy as np

SIZES, P_IN, P_OUT, FEATURES, SEED = [75] * 4, 0.05, 0.02, 16, 0


def main():
    rng = np.random.default_rng(SEED)
    probs = np.full((len(SIZES), len(SIZES)), P_OUT)
    np.fill_diagonal(probs, P_IN)
    graph = nx.stochastic_block_model(SIZES, probs.tolist(), seed=SEED)
    means = rng.normal(size=(len(SIZES), FEATURES))
    for node, attributes in graph.nodes(data=True):
        label = attributes.pop('block')
        x = 0.3 * means[label] + rng.normal(size=FEATURES)
        attributes.update(label=f'community-{label}',
                          x=' '.join(f'{v:.4f}' for v in x))
    graph.graph.clear()  # drops the partition (not GraphML-serializable)
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'sbm.graphml')
    nx.write_graphml(graph, path)
    print(f'{path}: {graph.number_of_nodes()} nodes, '
          f'{graph.number_of_edges()} edges')


if __name__ == '__main__':
    main()
