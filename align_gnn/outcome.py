r"""The end of a run: the kept weights evaluated (:func:`final_metrics`) and
the run's :class:`~align_gnn.results.RunResult` (:func:`run_result`), for
the epoch loop of :mod:`align_gnn.training` and the loop kept on the
device (:mod:`align_gnn.device_runs`)."""
from typing import Dict, Optional

import torch
from ogb.nodeproppred import Evaluator

from torch_geometric.data import Data

from align_gnn.config import Config
from align_gnn.conv import adversary_parameters
from align_gnn.diagnostics import key_query_pca
from align_gnn.loops import evaluate
from align_gnn.models import num_parameters
from align_gnn.recipe import LabelInput, add_label_features
from align_gnn.results import RunResult
from align_gnn.robustness import robustness


def final_metrics(model: torch.nn.Module, data: Data,
                  evaluator: Optional[Evaluator], seed: int, config: Config,
                  labels: Optional[LabelInput]) -> Dict:
    r"""The metrics of the kept weights of :obj:`model` (see
    :func:`~align_gnn.loops.evaluate`), with :obj:`"attack"` (the
    robustness curve of :obj:`config.attack`, if any) and
    :obj:`"keys_queries"` (their PCA, for the first seed with
    :obj:`config.keys_queries`)."""
    metrics = evaluate(model, data, evaluator, labels)
    if labels is not None:  # the attack and the PCA see the eval features
        data = data.clone()
        data.x = add_label_features(data.x, data.y,
                                    data.train_mask.nonzero().view(-1),
                                    data.num_classes)
    metrics['attack'] = {} if config.attack is None else robustness(
        model, data, config.budgets, config.attack, config.attack_epochs,
        seed)
    metrics['keys_queries'] = []
    if config.keys_queries and seed == config.seed:
        metrics['keys_queries'] = key_query_pca(model, data, seed=seed)
    return metrics


def run_result(model: torch.nn.Module, method: str, seed: int,
               metrics: Dict, history: Dict, epochs: int, best_epoch: int,
               seconds: float) -> RunResult:
    r"""The :class:`~align_gnn.results.RunResult` of a finished run: its
    :func:`final_metrics`, :obj:`history` (per epoch: training and
    alignment loss, validation score) and times."""
    return RunResult(method=method, seed=seed, val_acc=metrics['val_acc'],
                     test_acc=metrics['test_acc'], ece=metrics['test_ece'],
                     nll=metrics['test_nll'], epochs=epochs,
                     best_epoch=best_epoch, seconds=seconds,
                     seconds_per_epoch=seconds / epochs,
                     params=num_parameters(model),
                     adversary_params=sum(
                         p.numel() for p in adversary_parameters(model)),
                     history=history, calibration=metrics['test_bins'],
                     attack=metrics['attack'],
                     keys_queries=metrics['keys_queries'])
