import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from torch_geometric.data import Data

import train_gat
from align_gnn import loops, training
from align_gnn.config import (
    DEFAULT_ALIGNMENT,
    Config,
    alignment_defaults,
    config_record,
)
from align_gnn.data import load_dataset, prepare_data
from align_gnn.metrics import expected_calibration_error
from align_gnn.models import (
    adversary_parameters,
    build_model,
    dropout_features,
    num_parameters,
)
from align_gnn.results import check_writable, paired_test, save_results
from conftest import HANG_SECONDS
from fakes import write_fake_planetoid

REPO = Path(__file__).resolve().parents[1]

RUN_KEYS = {
    'method', 'seed', 'val_acc', 'test_acc', 'ece', 'epochs', 'seconds'
}
SUMMARY_KEYS = {
    'test_acc_mean', 'test_acc_std', 'val_acc_mean', 'val_acc_std',
    'ece_mean', 'params'
}


# Runs the CLI with an unresolvable download host, as on a machine offline
# (the script's folder first on sys.path, as `python train_gat.py` has it):
OFFLINE = (f"import sys; sys.path.insert(0, {str(REPO)!r}); "
           "import runpy; from torch_geometric.datasets import Planetoid; "
           "Planetoid.url = 'https://planetoid.invalid/data'; "
           f"runpy.run_path({str(REPO / 'train_gat.py')!r}, "
           "run_name='__main__')")


def cli(*args, cwd=REPO, env=None,
        offline=False) -> subprocess.CompletedProcess:
    script = ['-c', OFFLINE] if offline else [str(REPO / 'train_gat.py')]
    return subprocess.run([sys.executable, *script, *map(str, args)],
                          capture_output=True, text=True, cwd=cwd,
                          timeout=HANG_SECONDS,
                          env=None if env is None else {**os.environ, **env})


@pytest.fixture
def pubmed_root(tmp_path) -> Path:
    write_fake_planetoid(tmp_path / 'PubMed' / 'raw', 'pubmed')
    return tmp_path


def test_cora_ct_end_to_end(data_root, tmp_path):
    out = tmp_path / 'sub' / 'cora.json'
    proc = cli('--dataset', 'Cora', '--align', 'ct', '--runs', 1, '--root',
               data_root, '--out', out, '--quiet')
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr

    results = json.loads(out.read_text())
    assert {'dataset', 'config', 'runs', 'summary'} <= set(results)
    assert results['dataset'] == 'cora'
    assert results['config']['methods'] == ['ct']
    assert results['config']['lr'] == 0.005
    assert results['config']['weight_decay'] == 5e-4
    assert results['config']['alignment'] == {  # Cora's own settings
        'ct': alignment_defaults('cora', 'ct')}
    assert "note: ct on Cora: the study's choice of align_weight" in (
        proc.stderr)
    (run, ) = results['runs']
    assert RUN_KEYS <= set(run)
    assert run['method'] == 'ct' and run['seed'] == 0
    assert run['test_acc'] >= 0.78
    assert 0 <= run['ece'] <= 1 and 0 < run['val_acc'] <= 1
    assert 1 <= run['best_epoch'] <= run['epochs'] <= 1000
    assert run['seconds'] > 0
    summary = results['summary']['ct']
    assert SUMMARY_KEYS <= set(summary)
    assert summary['test_acc_mean'] == run['test_acc']
    assert summary['test_acc_std'] == 0.0
    # GAT with 8 x 8 hidden heads plus the critics and navigators of CT:
    gat = build_model('none', 1433, 7)
    assert summary['params'] > num_parameters(gat) == 92373
    assert 'ct' in proc.stdout and str(out) in proc.stdout


def test_main_called_again_notes_once(data_root, tmp_path, capsys):
    # A notebook or a script calling main() several times in one process
    # gets each of the library's notes once per call, and the library's
    # logger as it was before:
    logger = logging.getLogger('align_gnn')
    handlers, level = list(logger.handlers), logger.level
    for name in ('a.json', 'b.json'):
        assert train_gat.main(['--dataset', 'cora', '--root', str(data_root),
                               '--runs', '1', '--epochs', '2', '--quiet',
                               '--out', str(tmp_path / name)]) == 0
        err = capsys.readouterr().err
        assert err.count("note: ct on Cora: the study's choice") == 1, err
        assert logger.handlers == handlers and logger.level == level


def test_citeseer_gat(data_root, tmp_path):
    out = tmp_path / 'citeseer.json'
    proc = cli('--dataset', 'citeseer', '--align', 'none', '--runs', 1,
               '--patience', 50, '--root', data_root, '--out', out, '--quiet')
    assert proc.returncode == 0, proc.stderr
    (run, ) = json.loads(out.read_text())['runs']
    assert run['method'] == 'none'
    assert run['test_acc'] >= 0.68


def test_compare_pairs_seeds(data_root, tmp_path):
    out = tmp_path / 'compare.json'
    proc = cli('--dataset', 'cora', '--compare', 'none,ct', '--runs', 2,
               '--seed', 3, '--epochs', 30, '--root', data_root, '--out', out,
               '--quiet')
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert [(run['method'], run['seed']) for run in results['runs']] == [
        ('none', 3), ('ct', 3), ('none', 4), ('ct', 4)]
    assert all(run['epochs'] <= 30 for run in results['runs'])
    assert list(results['summary']) == ['none', 'ct']

    ct = results['summary']['ct']
    test = {m: [r['test_acc'] for r in results['runs'] if r['method'] == m]
            for m in ('none', 'ct')}
    assert ct['test_acc_diff'] == pytest.approx(
        np.mean(test['ct']) - np.mean(test['none']))
    assert ct['test_acc_std'] == pytest.approx(np.std(test['ct'], ddof=1))
    assert 'ttest_p' in ct and 'wilcoxon_p' in ct
    assert 'test_acc_diff' not in results['summary']['none']

    header, _, none_row, ct_row = proc.stdout.splitlines()[1:5]
    assert 't-test p' in header and 'Wilcoxon p' in header
    assert none_row.split()[0] == 'none' and ct_row.split()[0] == 'ct'
    for p, cell in zip((ct['ttest_p'], ct['wilcoxon_p']),
                       ct_row.split()[-2:]):
        assert cell == ('n/a' if p is None else f'{p:.3g}')


def test_default_output_env_root_and_lr(data_root, tmp_path):
    proc = cli('--align', 'none', '--runs', 1, '--epochs', 2, '--lr', 0.02,
               '--weight-decay', 0, '--quiet', cwd=tmp_path,
               env={'ALIGN_GNN_DATA': str(data_root)})
    assert proc.returncode == 0, proc.stderr
    (path, ) = (tmp_path / 'results').glob('cora-none-*.json')
    results = json.loads(path.read_text())
    assert results['config']['lr'] == 0.02
    assert results['config']['weight_decay'] == 0
    assert results['runs'][0]['epochs'] == 2
    assert not list((tmp_path / 'results').glob('*.tmp'))


def test_pubmed_fixture_with_peers(pubmed_root, tmp_path):
    out = tmp_path / 'pubmed.json'
    proc = cli('--dataset', 'PubMed', '--compare', 'none,ct,gatv2,supergat',
               '--runs', 1, '--epochs', 30, '--root', pubmed_root, '--out',
               out, '--quiet')
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results['config']['lr'] == 0.01
    assert results['config']['weight_decay'] == 0.001
    assert list(results['summary']) == ['none', 'ct', 'gatv2', 'supergat']
    for run in results['runs']:
        assert run['epochs'] <= 30
        assert run['test_acc'] > 0.6  # Chance is 1/3.


def test_models():
    gat = build_model('none', 16, 3, output_heads=8)
    assert type(gat.conv1).__name__ == 'GATConv'
    assert gat.conv1.heads == 8 and gat.conv1.out_channels == 8
    assert gat.conv2.heads == 8 and not gat.conv2.concat
    assert gat.conv1.dropout == gat.conv2.dropout == 0.6

    aligned = build_model('mmd', 16, 3, num_samples=32, rho=0.2)
    assert aligned.conv2.divergence is not None
    assert aligned.conv1.num_samples == 32 and aligned.conv1.rho == 0.2
    assert type(build_model('gatv2', 16, 3).conv1).__name__ == (
        'GATv2Conv')
    supergat = build_model('supergat', 16, 3)
    assert supergat.conv2.heads == 8 and supergat.conv2.attention_type == 'MX'

    x = torch.randn(5, 16)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 1], [1, 0, 3, 2, 0, 4]])
    for model in (gat, aligned, supergat):
        assert model(x, edge_index).size() == (5, 3)
        assert loops.auxiliary_loss(model, 0.1).dim() == 0
    assert float(loops.auxiliary_loss(gat, 0.1)) == 0.0
    with pytest.raises(ValueError, match='Unknown method'):
        build_model('gcn', 16, 3)


@pytest.mark.parametrize('method', ['none', 'ct', 'gatv2', 'supergat'])
def test_sparse_features_give_the_dense_model(method):
    x = (torch.rand(40, 30) < 0.1).float()
    edge_index = torch.randint(0, 40, (2, 120))
    data = prepare_data(Data(x=x, edge_index=edge_index), 'sparse')
    assert data.x.layout == torch.sparse_csr and x.layout == torch.strided
    assert torch.equal(data.x.to_dense(), x)
    model = build_model(method, 30, 3).eval()
    assert torch.allclose(model(data.x, edge_index), model(x, edge_index),
                          atol=1e-6)
    model.train()  # dropout and alignment sampling accept sparse rows
    assert model(data.x, edge_index).size() == (40, 3)
    assert torch.isfinite(loops.auxiliary_loss(model, 0.1))


def test_dropout_of_sparse_features():
    x = torch.rand(200, 100) * (torch.rand(200, 100) < 0.1)
    dropped = dropout_features(x.to_sparse_csr(), 0.6, True)
    assert dropped.layout == torch.sparse_csr
    dense = dropped.to_dense()
    assert not dense[x == 0].any()  # zeros stay zeros
    kept = dense[x != 0] != 0
    assert 0.3 < kept.float().mean() < 0.5  # about 40% kept ...
    assert torch.allclose(dense[x != 0][kept], x[x != 0][kept] / 0.4)
    same = dropout_features(x.to_sparse_csr(), 0.6, False)
    assert torch.equal(same.to_dense(), x)


def test_expected_calibration_error():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    labels = torch.tensor([0, 1, 1, 1])
    # Bins of width 0.2 hold {0.9, 0.9} (accuracy 0.5), {0.8} and {0.6}
    # (accuracy 1; a confidence on an edge belongs to the lower bin):
    expected = 2 / 4 * 0.4 + 1 / 4 * 0.2 + 1 / 4 * 0.4
    ece = expected_calibration_error(probs, labels, n_bins=5)
    assert ece == pytest.approx(expected)
    assert ece == pytest.approx(0.35)
    # Calibrated: half of the predictions at confidence 0.5 are right.
    probs = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert expected_calibration_error(
        probs, torch.tensor([0, 1])) == pytest.approx(0.0)
    probs = torch.tensor([[1.0, 0.0]])
    assert expected_calibration_error(
        probs, torch.tensor([1])) == pytest.approx(1.0)


def test_paired_test():
    x, y = [0.82, 0.80, 0.83, 0.81], [0.80, 0.80, 0.80, 0.79]
    diff, t_p, w_p = paired_test(x, y)
    assert diff == pytest.approx(0.0175)
    assert t_p == pytest.approx(stats.ttest_rel(x, y).pvalue)
    assert w_p == pytest.approx(stats.wilcoxon(x, y).pvalue)
    assert paired_test(x, x) == (0.0, None, None)
    assert paired_test([0.8], [0.7])[1:] == (None, None)
    # Equal non-zero differences: no t statistic, a Wilcoxon p-value.
    diff, t_p, w_p = paired_test([0.3, 0.5, 0.7], [0.2, 0.4, 0.6])
    assert t_p is None and w_p is not None and diff == pytest.approx(0.1)


def test_seeding_and_early_stopping(data_root):
    graph = load_dataset('cora', data_root)
    config = Config(methods=['ct'], epochs=8, patience=3,
                    align_samples=64)

    def run(seed):
        result = training.run(graph, 'ct', seed, config)
        result.seconds = result.seconds_per_epoch = 0.0
        return result

    assert run(0) == run(0)
    assert run(0) != run(1)

    result = training.run(graph, 'none', 0, Config(
        methods=['none'], epochs=1))
    assert result.epochs == result.best_epoch == 1
    assert 0 <= result.test_acc <= 1 and result.ece > 0
    for seed in range(2):
        result = run(seed)
        assert result.epochs == 8 or result.epochs - result.best_epoch == 3


def test_config_validation():
    config = Config(dataset='PubMed', methods=['CT', 'none'])
    assert config.dataset == 'pubmed' and config.methods == ['ct', 'none']
    assert (config.lr, config.weight_decay) == (0.01, 0.001)
    for kwargs in [dict(dataset='reddit'), dict(methods=['gcn']),
                   dict(methods=[]), dict(runs=0), dict(rho=-0.1),
                   dict(align_weight=-1.0), dict(align_samples=1),
                   dict(lr=0.0), dict(device='tpu')]:
        with pytest.raises(ValueError):
            Config(**kwargs)


def test_save_results_atomic(tmp_path):
    path = tmp_path / 'new' / 'r.json'
    save_results({'a': [1, 2]}, str(path))
    save_results({'b': None}, str(path))
    assert json.loads(path.read_text()) == {'b': None}
    assert [p.name for p in path.parent.iterdir()] == ['r.json']


BAD_FLAGS = [
    (['--dataset', 'reddit'], '--dataset'),
    (['--align', 'gcn'], '--align'),
    (['--compare', 'none,gcn'], '--compare'),
    (['--compare', 'ct,ct'], '--compare'),
    (['--runs', '0'], '--runs'),
    (['--runs', 'two'], '--runs'),
    (['--epochs', '-5'], '--epochs'),
    (['--patience', '0'], '--patience'),
    (['--align-weight', '-0.1'], '--align-weight'),
    (['--align-weight', 'nan'], '--align-weight'),
    (['--align-samples', '1'], '--align-samples'),
    (['--rho', '1.5'], '--rho'),
    (['--lr', '0'], '--lr'),
    (['--weight-decay', '-1'], '--weight-decay'),
    (['--seed', '-1'], '--seed'),
    (['--device', 'tpu'], '--device'),
    (['--features', 'csr'], '--features'),
    (['--dataset', 'pubmed', '--root', '{empty}'], '--root'),
    (['--out', '{empty}/file.txt/r.json'], '--out'),
    (['--out', '{empty}'], '--out'),
    (['--batch-size', '0'], '--batch-size'),
    (['--fanout', '10,0'], '--fanout'),
    (['--attack', 'nettack'], '--attack'),
    (['--budgets', '0.1,2'], '--budgets'),
    (['--attack-epochs', '0'], '--attack-epochs'),
    (['--plot-dir', '{empty}/file.txt'], '--plot-dir'),
    (['--align', 'mmd', '--compare', 'none,ct'], '--align'),
    (['--align', 'none', '--check-attention'], '--align'),
]
if not torch.cuda.is_available():
    BAD_FLAGS.append((['--device', 'cuda'], '--device'))


@pytest.fixture(scope='module')
def bad_flag_runs(tmp_path_factory):
    r"""Runs the CLI (offline) on every bad flag value, two at a time."""
    empty = tmp_path_factory.mktemp('empty')
    (empty / 'file.txt').write_text('not a folder')
    argvs = [[a.format(empty=empty) for a in argv] for argv, _ in BAD_FLAGS]
    with ThreadPoolExecutor(2) as pool:
        procs = list(
            pool.map(lambda argv: cli(*argv, cwd=empty, offline=True),
                     argvs))
    return dict(zip(map(tuple, argvs), procs)), empty


@pytest.mark.parametrize('argv,flag', BAD_FLAGS)
def test_bad_flag(bad_flag_runs, argv, flag):
    procs, empty = bad_flag_runs
    proc = procs[tuple(arg.format(empty=empty) for arg in argv)]
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ')
    assert flag in lines[0]
    assert not (empty / 'results').exists()


def test_adversary_width_and_learning_rate():
    config = Config(methods=['ct'], lr=0.01, adversary_channels=8,
                    adversary_lr_scale=0.1)
    graph = Data(x=torch.randn(5, 4), y=torch.tensor([0, 1, 0, 1, 0]))
    graph.num_classes = 2
    model = training.make_model('ct', graph, config)
    adversary = adversary_parameters(model)
    assert model.conv1.divergence.critic.weight1.size(-1) == 8
    optimizer = training.make_optimizer(model, config, 'ct')
    main, second = optimizer.param_groups
    assert main['lr'] == 0.01 and second['lr'] == pytest.approx(0.001)
    assert {id(p) for p in second['params']} == {id(p) for p in adversary}
    assert len(main['params']) + len(second['params']) == len(
        list(model.parameters()))
    plain = training.make_model('none', graph, config)
    assert len(training.make_optimizer(plain, config,
                                       'none').param_groups) == 1
    with pytest.raises(ValueError, match="'adversary_lr_scale' must be a positive"):
        Config(adversary_lr_scale=0)


def test_alignment_settings_per_dataset_and_divergence(monkeypatch):
    defaults = DEFAULT_ALIGNMENT
    config = Config(dataset='cora', methods=['none', 'ct', 'mmd'])
    monkeypatch.setattr('align_gnn.config.RECOMMENDED_ALIGNMENT', {
        'Cora': {'ct': dict(align_weight=0.03, rho=0.25),
                 'mmd': dict(align_samples=64)}})
    assert config.alignment('ct') == {**defaults, 'align_weight': 0.03,
                                      'rho': 0.25}
    assert config.alignment('mmd') == {**defaults, 'align_samples': 64}
    other = Config(dataset='citeseer', methods=['ct'])
    assert other.alignment('ct') == defaults
    # A setting given applies to every divergence:
    given = Config(dataset='cora', methods=['ct', 'mmd'],
                   align_weight=0.5)
    assert given.alignment('ct')['align_weight'] == 0.5
    assert given.alignment('ct')['rho'] == 0.25
    assert given.alignment('mmd')['align_weight'] == 0.5
    record = config_record(config)
    assert set(record['alignment']) == {'ct', 'mmd'}
    graph = Data(x=torch.randn(5, 4), y=torch.tensor([0, 1, 0, 1, 0]))
    graph.num_classes = 2
    model = training.make_model('mmd', graph, config)
    assert model.conv1.num_samples == 64
    model = training.make_model('ct', graph, config)
    assert model.conv1.num_samples == defaults['align_samples']
    assert model.conv1.rho == 0.25


def test_check_writable_probes_the_folder(tmp_path):
    check_writable(str(tmp_path / 'new' / 'results.json'))
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    # Permission bits say yes to root here; the probe does not:
    with pytest.raises(PermissionError, match="'/proc' is not writable"):
        check_writable('/proc/results.json')
