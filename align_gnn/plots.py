r"""Figures from a results file (see :func:`align_gnn.experiment.experiment`):
reliability diagrams, accuracy under attack, keys and queries, learning
curves. Needs matplotlib (the :obj:`plot` extra). Every PNG is written
atomically.

    python -m align_gnn.plots results.json docs/
"""
import json
import os.path as osp
import sys
from typing import Dict, List

import numpy as np

from align_gnn.outputs import atomic_write


def require_matplotlib():
    r"""Raises :class:`ImportError` with what to install if matplotlib is
    missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError("Plots need matplotlib: install the 'plot' extra "
                          "with `pip install -e '.[plot]'`") from err


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state
    return Figure(figsize=(width, height), layout='constrained')


def save_figure(figure, path: str):
    r"""Saves :obj:`figure` as a PNG at :obj:`path`, atomically."""
    atomic_write(path, lambda f: figure.savefig(f, format='png', dpi=110),
                 binary=True)


def _runs(results: Dict, method: str) -> List[Dict]:
    return [run for run in results['runs'] if run['method'] == method]


def reliability_diagram(results: Dict, method: str):
    r"""Accuracy against confidence on the test nodes, bins pooled over the
    runs of :obj:`method`, with the mean ECE of its runs."""
    bins = [run['calibration'] for run in _runs(results, method)]
    count, confidence, correct = (np.sum([b[key] for b in bins], axis=0)
                                  for key in ('count', 'confidence',
                                              'correct'))
    n_bins = len(count)
    centers = (np.arange(n_bins) + 0.5) / n_bins
    filled = count > 0
    figure = _figure(4.2, 4.2)
    ax = figure.add_subplot()
    ax.bar(centers[filled], correct[filled] / count[filled],
           width=1 / n_bins, edgecolor='black', label='accuracy')
    ax.plot(confidence[filled] / count[filled],
            correct[filled] / count[filled], 'o', color='tab:red', ms=3,
            label='(mean confidence, accuracy)')
    ax.plot([0, 1], [0, 1], '--', color='gray', label='calibrated')
    ece = np.mean([run['ece'] for run in _runs(results, method)])
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='confidence',
           ylabel='accuracy', title=f'{results["dataset"]}, {method}: '
           f'ECE {100 * ece:.1f}%')
    ax.legend(loc='lower right', fontsize=8)
    return figure


def attack_curves(results: Dict):
    r"""Test accuracy (mean ± std over runs) against the attack budget per
    method: the attack solid, random flips dashed."""
    summary = results['summary']
    figure = _figure(5.5, 4)
    ax = figure.add_subplot()
    for i, (method, s) in enumerate(summary.items()):
        for name, accuracies in s['attack'].items():
            budgets = [float(b) for b in accuracies]
            ax.errorbar([100 * b for b in budgets],
                        [100 * a['mean'] for a in accuracies.values()],
                        [100 * a['std'] for a in accuracies.values()],
                        color=f'C{i}', capsize=3,
                        linestyle='--' if name == 'random' else '-',
                        label=f'{method}, {name}')
    ax.set(xlabel='budget (% of edges flipped)', ylabel='test accuracy (%)',
           title=f'{results["dataset"]}: accuracy under structure attack')
    ax.legend(fontsize=8)
    return figure


def keys_queries(results: Dict, method: str):
    r"""Per layer (rows) and head (columns): the 2-D PCA of sampled keys and
    queries of the first run of :obj:`method`, with their squared MMD."""
    layers = next(run['keys_queries'] for run in _runs(results, method)
                  if run['keys_queries'])
    columns = max(len(layer['heads']) for layer in layers)
    figure = _figure(2.2 * columns, 2.3 * len(layers) + 0.4)
    axes = figure.subplots(len(layers), columns, squeeze=False)
    for row, layer in zip(axes, layers):
        for ax, (h, head) in zip(row, enumerate(layer['heads'])):
            for points, label, color in ((head['keys'], 'keys', 'tab:blue'),
                                         (head['queries'], 'queries',
                                          'tab:orange')):
                points = np.asarray(points)
                ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5,
                           color=color, label=label)
            ax.set_title(f'{layer["layer"]} head {h}: MMD² '
                         f'{head["mmd"]:.3f}', fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in row[len(layer['heads']):]:
            ax.axis('off')
    axes[0][0].legend(fontsize=6, markerscale=3)
    figure.suptitle(f'{results["dataset"]}, {method}: keys and queries '
                    f'(PCA), seed {_runs(results, method)[0]["seed"]}')
    return figure


def learning_curves(results: Dict):
    r"""Per epoch and method: the training loss, the validation accuracy
    and the (unweighted) alignment loss (for methods with aligned layers),
    one thin line per run."""
    figure = _figure(12, 3.6)
    axes = figure.subplots(1, 3)
    keys = [('train_loss', 'training loss'),
            ('val_acc', 'validation accuracy'),
            ('align_loss', 'alignment loss (unweighted)')]
    for i, method in enumerate(results['summary']):
        for j, run in enumerate(_runs(results, method)):
            for ax, (key, _) in zip(axes, keys):
                if key == 'align_loss' and not any(run['history'][key]):
                    continue
                ax.plot(np.arange(1, len(run['history'][key]) + 1),
                        run['history'][key], color=f'C{i}', lw=0.8,
                        alpha=0.7, label=method if j == 0 else None)
    for ax, (_, label) in zip(axes, keys):
        ax.set(xlabel='epoch', title=label)
    axes[1].legend(fontsize=8)
    figure.suptitle(f'{results["dataset"]}: learning curves')
    return figure


def plot_results(results: Dict, folder: str) -> List[str]:
    r"""Writes every figure the results allow into :obj:`folder` and returns
    the paths: :obj:`reliability_<method>.png`, :obj:`attack.png` (if
    attacked), :obj:`keys_queries_<method>.png` (for methods with recorded
    keys and queries) and :obj:`learning_curves.png`."""
    require_matplotlib()
    figures = {f'reliability_{method}.png': (reliability_diagram, method)
               for method in results['summary']}
    if all('attack' in s for s in results['summary'].values()):
        figures['attack.png'] = (attack_curves, )
    for method in results['summary']:
        if any(run['keys_queries'] for run in _runs(results, method)):
            figures[f'keys_queries_{method}.png'] = (keys_queries, method)
    figures['learning_curves.png'] = (learning_curves, )
    paths = []
    for name, (plot, *args) in figures.items():
        path = osp.join(folder, name)
        save_figure(plot(results, *args), path)
        paths.append(path)
    return paths


def main(argv: List[str] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        results = json.load(f)
    for path in plot_results(results, argv[1]):
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
