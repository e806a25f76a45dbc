r"""Experiments: the graph of a configuration, every method on every seed
(see :func:`~align_gnn.training.run_many`) and the results as a
dictionary (summary, failed runs, environment), as :file:`train_gat.py`
writes them."""
import logging
from dataclasses import asdict
from typing import Dict, List, Optional, Tuple

from torch_geometric import seed_everything
from torch_geometric.data import Data

from align_gnn import distributed
from align_gnn.checkpoint import Checkpoint, data_fingerprint
from align_gnn.config import (
    Config,
    config_record,
    recommended_alignment,
    resolve_device,
)
from align_gnn.data import (
    add_edge_noise,
    dataset_name,
    is_graph_file,
    load_dataset,
    prepare_data,
    select_split,
)
from align_gnn.diagnostics import AttentionCheck, attention_check
from align_gnn.results import RunResult, environment, summarize
from align_gnn.failures import gpu_memory
from align_gnn.training import fit, make_model, run_many

log = logging.getLogger('align_gnn')


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
    see :func:`~align_gnn.training.run`), then
    :func:`~align_gnn.diagnostics.attention_check` of the trained model on
    the validation nodes. Returns :func:`experiment`'s dictionary of the
    run, with the check under :obj:`"attention_check"` (see
    :meth:`~align_gnn.diagnostics.AttentionCheck.to_dict`), and the
    check."""
    if len(config.methods) != 1:
        raise ValueError(f"The attention check trains one method (got "
                         f"{', '.join(config.methods)})")
    method = config.methods[0]
    data = load_data(config, root)
    split = select_split(data, 0)
    seed_everything(config.seed)
    with gpu_memory(method, config.seed):
        model = make_model(method, split, config).to(
            resolve_device(config.device))
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
               summary=summary,
               environment=environment(resolve_device(config.device)))
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
