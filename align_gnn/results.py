r"""Results: the outcome of a run (:class:`RunResult`), paired tests,
per-method summaries, the printed tables and the leaderboard figures, and
results files (written atomically, with the environment they came from)."""
import json
import math
import os.path as osp
import platform
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch_geometric
from scipy import stats

import align_gnn
from align_gnn import distributed
from align_gnn.config import Config
from align_gnn.data import is_graph_file
from align_gnn.outputs import atomic_write, output_target
from align_gnn.reproducibility import cpu_model, reproducibility_settings


@dataclass
class RunResult:
    r"""The outcome of one run: the best-validation model's metrics, its
    number of parameters (:obj:`params`, the adversaries' included, of which
    :obj:`adversary_params` are theirs), the learning curves
    (:obj:`history`: per epoch the training loss, the unweighted alignment
    loss and the validation accuracy), the test reliability bins
    (:obj:`calibration`, see :func:`~align_gnn.metrics.reliability_bins`),
    the test accuracy under attack (:obj:`attack`, if asked for) and the
    keys and queries (:obj:`keys_queries`, if asked for)."""
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


def summarize(results: Sequence) -> Dict[str, Dict]:
    r"""Of :class:`RunResult` objects, per method (in
    order of appearance): mean and standard deviation of
    test and validation accuracy, mean ECE, NLL and epochs, the median
    seconds per epoch, the number of parameters, the mean and standard
    deviation of the test accuracy under attack per budget (:obj:`"attack"`,
    if the runs were attacked), and for every method after
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
            adversary_params=runs[0].adversary_params,
        )
        if runs[0].attack:
            summary[method]['attack'] = {
                name: {budget: dict(mean=_mean([r.attack[name][budget]
                                                for r in runs]),
                                    std=_std([r.attack[name][budget]
                                              for r in runs]))
                       for budget in accuracies}
                for name, accuracies in runs[0].attack.items()}
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
    in percent, the mean test NLL; differences and p-values against the
    first method)."""
    def p_value(value: Optional[float]) -> str:
        return 'n/a' if value is None else f'{value:.3g}'

    def mean_std(s: Dict, key: str) -> str:
        return f'{100 * s[key + "_mean"]:.2f} ± {100 * s[key + "_std"]:.2f}'

    header = (f'{"method":<12}{"test acc":>16}{"val acc":>16}{"ECE":>8}'
              f'{"NLL":>7}{"s/epoch":>9}{"#params":>10}{"Δtest":>8}'
              f'{"t-test p":>10}{"Wilcoxon p":>12}')
    lines = [header, '-' * len(header)]
    for method, s in summary.items():
        if s.get('runs') == 0:  # see experiment.experiment
            lines.append(f'{method:<12}all {s["failed"]} run(s) failed')
            continue
        if 'test_acc_diff' in s:
            diff = f'{100 * s["test_acc_diff"]:+.2f}'
            t_p, w_p = p_value(s['ttest_p']), p_value(s['wilcoxon_p'])
        else:
            diff, t_p, w_p = 'ref', '', ''
        lines.append(f'{method:<12}{mean_std(s, "test_acc"):>16}'
                     f'{mean_std(s, "val_acc"):>16}'
                     f'{100 * s["ece_mean"]:>8.2f}{s["nll_mean"]:>7.3f}'
                     f'{s["seconds_per_epoch"]:>9.4f}{s["params"]:>10,}'
                     f'{diff:>8}{t_p:>10}{w_p:>12}')
    return '\n'.join(lines)


def format_attack_table(summary: Dict[str, Dict]) -> str:
    r"""A plain-text table of the test accuracy (percent, mean ± std) under
    attack per method and budget (:func:`summarize`'s :obj:`"attack"`)."""
    methods = [m for m in summary if 'attack' in summary[m]]
    if not methods:
        return ''
    attacks = summary[methods[0]]['attack']
    columns = [(name, budget) for name in attacks for budget in attacks[name]]
    header = f'{"method":<12}' + ''.join(
        f'{f"{name} {100 * float(budget):g}%":>16}'
        for name, budget in columns)
    lines = ['test accuracy under attack (budget: % of edges flipped)',
             header, '-' * len(header)]
    for method in methods:
        cells = [summary[method]['attack'][name][budget]
                 for name, budget in columns]
        lines.append(f'{method:<12}' + ''.join(
            f'{_percent(cell):>16}' for cell in cells))
    return '\n'.join(lines)


def _percent(cell: Dict[str, float]) -> str:
    return f'{100 * cell["mean"]:.2f} ± {100 * cell["std"]:.2f}'


SELECTED_AT = {'acc': 'its best validation accuracy',
               'gat-paper': "the GAT paper's rule",
               'loss': 'its lowest validation loss'}


def hardware(device: str) -> str:
    r"""The hardware a run on :obj:`device` (:obj:`"cpu"`, :obj:`"cuda"`,
    :obj:`"cuda:0"`, ...) used, as the OGB leaderboard asks for it: the GPU's
    name and memory, or the CPU's model and thread count."""
    if device.startswith('cuda'):
        props = torch.cuda.get_device_properties(torch.device(device))
        return f'{props.name} ({props.total_memory / 2**30:.0f} GB GPU)'
    return f'{cpu_model()} ({torch.get_num_threads()} threads, CPU)'


def leaderboard(results: Dict) -> Dict[str, Dict]:
    r"""Per method, the fields of an OGB leaderboard submission: test and
    validation accuracy (OGB Evaluator; mean and unbiased standard
    deviation over runs), the number of parameters (all that training
    needs, the adversary's included, and without them), the seeds, the
    selection rule, whether extra data is used, the hardware, the ogb
    version, the date and the exact command."""
    config, seeds = results['config'], sorted(
        {run['seed'] for run in results['runs']})
    entries = {}
    for method, s in results['summary'].items():
        if s.get('runs') == 0:
            continue
        entries[method] = dict(
            dataset=results['dataset'], method=method,
            runs=sum(run['method'] == method for run in results['runs']),
            seeds=seeds, test_acc_mean=s['test_acc_mean'],
            test_acc_std=s['test_acc_std'], val_acc_mean=s['val_acc_mean'],
            val_acc_std=s['val_acc_std'], params=s['params'],
            params_without_adversary=s['params'] - s['adversary_params'],
            selected_at=SELECTED_AT[config['selection']], ext_data=False,
            hardware=hardware(config['device']),
            ogb=results['environment']['ogb'],
            date=time.strftime('%Y-%m-%d'), command=results.get('command'))
    return entries


def format_leaderboard(entries: Dict[str, Dict]) -> str:
    r"""The entries of :func:`leaderboard` as the OGB leaderboard's
    submission asks for them, one block per method."""
    lines = []
    for method, e in entries.items():
        params = f'{e["params"]:,}'
        if e['params'] != e['params_without_adversary']:
            params += (f' ({e["params_without_adversary"]:,} without the '
                       f'adversary)')
        lines += [
            f'OGB leaderboard entry: {e["dataset"]}, method {method}',
            f'  Test Accuracy        {e["test_acc_mean"]:.4f} ± '
            f'{e["test_acc_std"]:.4f}',
            f'  Validation Accuracy  {e["val_acc_mean"]:.4f} ± '
            f'{e["val_acc_std"]:.4f}',
            f'  #Params              {params}',
            f'  Ext. data            {"Yes" if e["ext_data"] else "No"}',
            f'  Hardware             {e["hardware"]}',
            f'  Runs                 {e["runs"]} (seeds {e["seeds"][0]}-'
            f'{e["seeds"][-1]}), each run\'s model at {e["selected_at"]}; '
            f'OGB Evaluator, mean ± unbiased std',
            f'  ogb                  {e["ogb"]}',
            f'  Date                 {e["date"]}']
        if e['command']:
            lines.append(f'  Command              {e["command"]}')
    return '\n'.join(lines)


def check_writable(path: str):
    r"""Raises :class:`OSError` if a results file cannot be written at
    :obj:`path`, so that a long experiment fails before it starts, not after
    (leaves nothing behind: the nearest existing folder is probed with a
    temporary file, since permission bits alone say yes to root on file
    systems such as :file:`/proc`; a directory or a special file in its
    place raises :class:`~align_gnn.outputs.WriteError`, see
    :func:`~align_gnn.outputs.output_target`)."""
    folder = osp.dirname(output_target(path))
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        raise NotADirectoryError(f"'{folder}' is not a directory")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise PermissionError(f"'{folder}' is not writable "
                              f"({err.strerror})") from err


def environment(device: Optional[torch.device] = None) -> Dict:
    r"""The versions of Python and the libraries, the machine (with its CPU
    and thread counts), the number of processes and, on a CUDA
    :obj:`device`, the GPU and the CUDA version, as results files record
    them."""
    import ogb
    gpu = {}
    if device is not None and device.type == 'cuda':
        gpu = dict(gpu=torch.cuda.get_device_name(device),
                   cuda=torch.version.cuda)
    return dict(python=platform.python_version(), torch=torch.__version__,
                torch_geometric=torch_geometric.__version__,
                ogb=ogb.__version__, align_gnn=align_gnn.__version__,
                machine=platform.platform(),
                processes=distributed.world_size(), **gpu,
                **reproducibility_settings())


def default_output_path(config: Config) -> str:
    r"""A timestamped results file under :obj:`results/`."""
    dataset = (osp.splitext(osp.basename(config.dataset))[0]
               if is_graph_file(config.dataset) else config.dataset)
    name = '-'.join([dataset, *config.methods,
                     time.strftime('%Y%m%d-%H%M%S')])
    return osp.join('results', f'{name}.json')


def save_results(results: Dict, path: str):
    r"""Writes :obj:`results` as strict JSON to :obj:`path` atomically
    (see :func:`~align_gnn.outputs.atomic_write`): a NaN or
    infinite number becomes :obj:`null`, and :obj:`"nulls"` gives the
    reason per place (see :func:`strict_json`)."""
    results, nulls = strict_json(results)
    if nulls:
        results = dict(results, nulls={**results.get('nulls', {}), **nulls})
    text = json.dumps(results, indent=2, allow_nan=False)

    def write(f):
        f.write(text)
        f.write('\n')

    atomic_write(path, write)


def strict_json(value, where: str = '') -> Tuple[object, Dict[str, str]]:
    r""":obj:`value` with every NaN or infinite float replaced by
    :obj:`None`, and the reason per place (:obj:`{"summary.ct.nll_mean":
    "was nan"}`), since JSON has no such numbers."""
    nulls = {}

    def clean(value, where):
        if isinstance(value, float) and not math.isfinite(value):
            nulls[where or '.'] = f'was {value}'
            return None
        if isinstance(value, dict):
            return {key: clean(item, f'{where}.{key}' if where else str(key))
                    for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item, f'{where}[{i}]')
                    for i, item in enumerate(value)]
        return value

    return clean(value, where), nulls
