import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import ogb
import pytest
import torch

import torch_geometric.typing

from align_gnn import training
from align_gnn.config import Config
from align_gnn.data import load_dataset
from align_gnn.models import build_arxiv_model, num_layers
from conftest import HANG_SECONDS
from fakes import write_fake_arxiv

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def arxiv_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('arxiv')
    write_fake_arxiv(root)
    return root


def run(*args, launcher=(sys.executable, ),
        env=None) -> subprocess.CompletedProcess:
    # Each process (each rank under torchrun) on this test process's share
    # of the cores (conftest's OMP_NUM_THREADS), at least one thread.
    env = {**os.environ, **(env or {})}
    return subprocess.run([*launcher, *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=HANG_SECONDS, env=env)


def test_arxiv_leaderboard_report(arxiv_root, tmp_path):
    # The recipe's own pieces: tests/test_recipe.py. Here, what the results
    # file holds per run and method.
    out = tmp_path / 'arxiv.json'
    argv = ['--dataset', 'ogbn-arxiv', '--root', arxiv_root, '--compare',
            'none,ct', '--runs', '2', '--epochs', '12', '--hidden', '16',
            '--lr-warmup', '0',  # 12 epochs: no time to warm up
            '--align-samples', '32', '--quiet', '--out', out]
    result = run('train_gat.py', *argv)
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())

    assert results['dataset'] == 'ogbn-arxiv'
    assert results['environment']['ogb'] == ogb.__version__
    assert results['command'] == 'python train_gat.py ' + ' '.join(
        map(str, argv))
    config = results['config']
    assert config['lr'] == 0.002 and config['weight_decay'] == 0.0
    assert config['features'] == 'dense' and config['batch_size'] is None
    assert [(r['method'], r['seed']) for r in results['runs']] == [
        ('none', 0), ('ct', 0), ('none', 1), ('ct', 1)]
    for run_ in results['runs']:
        # All epochs run (no early stopping); the model chosen at the best
        # validation loss of its run (the accuracy is that epoch's):
        history = run_['history']
        assert history['val_acc'][run_['best_epoch'] - 1] == run_['val_acc']
        assert len(history['train_loss']) == run_['epochs'] == 12
    for method in ('none', 'ct'):
        summary = results['summary'][method]
        test = [r['test_acc'] for r in results['runs']
                if r['method'] == method]
        assert summary['test_acc_mean'] == pytest.approx(np.mean(test))
        assert summary['test_acc_std'] == pytest.approx(np.std(test, ddof=1))
        assert summary['test_acc_mean'] > 0.8  # 4 classes, learnable

    # Every trained parameter counts, the adversary's included:
    graph = load_dataset('ogbn-arxiv', arxiv_root)
    ct_config = Config(dataset='ogbn-arxiv', methods=['ct'], hidden=16)
    ct = training.make_model('ct', graph, ct_config)
    plain = training.make_model('none', graph, ct_config)
    query = sum(conv.att_dst.numel() for conv in ct.convs)
    assert results['summary']['ct']['params'] == sum(
        p.numel() for p in ct.parameters())
    assert results['summary']['ct']['adversary_params'] == (
        results['summary']['ct']['params'] - query -
        sum(p.numel() for p in plain.parameters())) > 0
    assert results['summary']['none']['adversary_params'] == 0
    assert 'OGB leaderboard entry: ogbn-arxiv, method ct' in result.stdout
    assert 'seeds 0-1' in result.stdout


def test_arxiv_defaults():
    config = Config(dataset='ogbn-arxiv', methods=['ct'])
    assert config.runs == 10 and config.seed == 0 and config.epochs == 2000
    assert config.patience == 2000 and config.selection == 'loss'
    assert config.fanout == [15, 10, 5] and config.features == 'dense'
    model = build_arxiv_model('ct', 128, 40)
    assert num_layers(model) == 3


def test_minibatch_close_to_full_batch(tmp_path):
    write_fake_arxiv(tmp_path, num_nodes=1500, homophily=0.6, signal=0.3)
    graph = load_dataset('ogbn-arxiv', tmp_path)
    test_acc = {}
    for batch_size in (None, 256):
        config = Config(dataset='ogbn-arxiv', methods=['none'],
                        epochs=30, patience=1000, device='cpu',
                        batch_size=batch_size,
                        fanout=batch_size and [10, 10, 10],
                        labels='none', hidden=32, lr_warmup=0)
        test_acc[batch_size] = [
            training.run(graph, 'none', seed, config).test_acc
            for seed in range(2)
        ]
    full, minibatch = np.mean(test_acc[None]), np.mean(test_acc[256])
    assert full > 0.85 and minibatch > 0.85
    assert abs(full - minibatch) < 0.03, test_acc


def test_minibatch_alignment_loss_from_subgraphs(arxiv_root):
    graph = load_dataset('ogbn-arxiv', arxiv_root)
    config = Config(dataset='ogbn-arxiv', methods=['ct'], epochs=3,
                    batch_size=100, fanout=[4, 4, 4],
                    align_samples=16, device='cpu')
    result = training.run(graph, 'ct', 0, config)
    align = result.history['align_loss']
    assert len(align) == 3 and all(np.isfinite(align))
    assert all(value != 0 for value in align)


def test_neighbor_sampling_needs_the_scale_extra(monkeypatch, arxiv_root,
                                                 tmp_path):
    monkeypatch.setattr(torch_geometric.typing, 'WITH_TORCH_SPARSE', False)
    monkeypatch.setattr(torch_geometric.typing, 'WITH_PYG_LIB', False)
    with pytest.raises(ImportError, match=r"the 'scale' extra"):
        Config(dataset='ogbn-arxiv', batch_size=64)
    Config(dataset='ogbn-arxiv')  # full-batch needs neither

    script = ("import sys, runpy, torch_geometric.typing as t; "
              "t.WITH_TORCH_SPARSE = t.WITH_PYG_LIB = False; "
              f"sys.path.insert(0, {str(REPO)!r}); "
              f"runpy.run_path({str(REPO / 'train_gat.py')!r}, "
              "run_name='__main__')")
    result = run('-c', script, '--dataset', 'ogbn-arxiv', '--root',
                 arxiv_root, '--batch-size', '64', '--out',
                 tmp_path / 'r.json')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.count('\n') == 1
    assert "pip install --no-build-isolation -e '.[scale]'" in result.stderr


@pytest.mark.parametrize('argv,message', [
    (['--batch-size', '64', '--fanout', '10,10'],
     "'fanout' must be 3 numbers >= 1 or -1"),
    (['--batch-size', '64', '--features', 'sparse'],
     "'features' must be 'dense' with batch_size"),
])
def test_minibatch_bad_settings(arxiv_root, tmp_path, argv, message):
    result = run('train_gat.py', '--dataset', 'ogbn-arxiv', '--root',
                 arxiv_root, '--out', tmp_path / 'r.json', *argv)
    assert result.returncode == 2 and result.stderr.count('\n') == 1
    assert message in result.stderr and 'Traceback' not in result.stderr


TORCHRUN = (sys.executable, '-m', 'torch.distributed.run', '--standalone',
            '--nproc-per-node', '2')


def test_two_processes_same_weights(arxiv_root, tmp_path):
    result = run('tests/ddp_worker.py', arxiv_root, tmp_path,
                 launcher=TORCHRUN)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=False)
             for r in range(2)]
    (model0, result0), (model1, result1) = [(r['model'], r['result'])
                                            for r in ranks]
    # The workers started from different weights (seeded by rank); DDP
    # broadcast rank 0's and all-reduced every gradient, the adversaries'
    # (CT's critic and navigator) included:
    assert any(key.split('.')[2] == 'divergence' for key in model0)
    assert model0.keys() == model1.keys()
    for key in model0:
        assert torch.equal(model0[key], model1[key]), key
    for timing in ('seconds', 'seconds_per_epoch'):
        result0.pop(timing), result1.pop(timing)
    assert result0 == result1
    loss = result0['history']['train_loss']
    assert np.mean(loss[-3:]) < 0.7 * loss[0]
    assert result0['test_acc'] > 0.8


def test_torchrun_cli_writes_one_results_file(arxiv_root, tmp_path):
    out = tmp_path / 'results'
    argv = ['--dataset', 'ogbn-arxiv', '--root', arxiv_root, '--runs', '1',
            '--epochs', '3', '--batch-size', '64', '--fanout', '5,5,5',
            '--align-samples', '16', '--out', out / 'arxiv.json']
    result = run('train_gat.py', *argv, launcher=TORCHRUN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ['arxiv.json']
    results = json.loads((out / 'arxiv.json').read_text())
    assert results['environment']['processes'] == 2
    assert results['command'] == 'torchrun --nproc-per-node 2 ' \
        'train_gat.py ' + ' '.join(map(str, argv))
    assert result.stdout.count('results written to') == 1  # rank 0 only
    assert result.stdout.count('#Params') == 1

    # Several processes need neighbour sampling, and no checkpoints (yet):
    for extra, message in [
        ([], "set 'batch_size' (--batch-size)"),
        (['--batch-size', '64', '--checkpoint', tmp_path / 'ckpt'],
         'Checkpoints are not supported with several processes'),
    ]:
        result = run('train_gat.py', '--dataset', 'ogbn-arxiv', '--root',
                     arxiv_root, *extra, launcher=TORCHRUN)
        assert result.returncode != 0
        # A rank's one line (torchrun may stop the other rank before it
        # prints) and torchrun's report, but no traceback through this
        # project's code:
        assert any(line.startswith('error: ') and message in line
                   for line in result.stderr.splitlines())
        assert 'train_gat.py", line' not in result.stderr
        assert str(REPO / 'align_gnn') not in result.stderr
