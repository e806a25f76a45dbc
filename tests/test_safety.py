r"""Nothing the user has is lost, nothing wrong goes unreported: outputs,
locks, resume checks, non-finite training, interrupts, range checks and
graph files (docs/failures.md, "What happens when…")."""
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import pytest
import torch

import train_gat
from align_gnn import experiment, interrupts, loops, training
from align_gnn.checkpoint import Checkpoint, data_fingerprint
from align_gnn.config import Config
from align_gnn.data import DataError, load_dataset
from align_gnn.data.planetoid import load_planetoid
from align_gnn.outputs import FileLock, LockedError
from align_gnn.results import save_results
from conftest import HANG_SECONDS, wait_for

REPO = Path(__file__).resolve().parents[1]
FAST = ('--epochs', '3', '--runs', '1', '--quiet', '--align', 'none')


@pytest.fixture
def edges(tmp_path) -> Path:
    r"""An edge list `g.txt` (two communities of 12 nodes) with a node CSV
    `nodes.csv` (label, 3 features)."""
    graph = nx.stochastic_block_model([12, 12], [[0.5, 0.05], [0.05, 0.5]],
                                      seed=0)
    (tmp_path / 'g.txt').write_text(
        ''.join(f'n{u} n{v}\n' for u, v in graph.edges))
    rows = ['node,label,x'] + [
        f'n{node},c{node // 12},{node % 3} {node % 2} 1'
        for node in graph.nodes]
    (tmp_path / 'nodes.csv').write_text('\n'.join(rows) + '\n')
    return tmp_path


def cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), *map(str, args)],
        capture_output=True, text=True, timeout=HANG_SECONDS, cwd=cwd)


def graph_args(folder: Path):
    return ('--dataset', folder / 'g.txt', '--node-attributes',
            folder / 'nodes.csv', '--feature-attr', 'x')


def one_error_line(result: subprocess.CompletedProcess, *parts: str):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines()
             if not line.startswith(('note:', 'resuming '))]
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


# 1. Outputs ##################################################################


def test_out_never_overwrites_a_foreign_file(edges):
    other = edges / 'notes.json'
    other.write_text('{"mine": 1}\n')
    for flags in ((), ('--overwrite', )):
        result = cli(*graph_args(edges), *FAST, '--out', other, *flags,
                     cwd=edges)
        one_error_line(result, '--out', 'is not a results file')
        assert other.read_text() == '{"mine": 1}\n'


@pytest.mark.parametrize('target', ['nodes.csv', 'g.txt',
                                    'ckpt/checkpoint.pt'])
def test_out_never_overwrites_inputs_or_checkpoint(edges, target):
    before = {name: (edges / name).read_bytes()
              for name in ('nodes.csv', 'g.txt')}
    result = cli(*graph_args(edges), *FAST, '--checkpoint', edges / 'ckpt',
                 '--out', edges / target, '--overwrite', cwd=edges)
    one_error_line(result, '--out')
    assert 'input of this run' in result.stderr or 'is not a results' in \
        result.stderr
    assert before == {name: (edges / name).read_bytes() for name in before}
    assert not (edges / 'ckpt' / 'checkpoint.pt').exists()


def test_out_replaces_own_results_only_with_overwrite(edges):
    out = edges / 'r.json'
    assert cli(*graph_args(edges), *FAST, '--out', out,
               cwd=edges).returncode == 0
    first = out.read_text()
    again = cli(*graph_args(edges), *FAST, '--out', out, cwd=edges)
    one_error_line(again, '--out', 'exists', '--overwrite')
    assert out.read_text() == first
    result = cli(*graph_args(edges), *FAST, '--out', out, '--overwrite',
                 '--seed', 1, cwd=edges)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())['runs'][0]['seed'] == 1
    assert not list(edges.glob('.r.json*'))  # no lock or temporary left


def test_checkpoint_and_plot_dir_checked_before_training(edges):
    (edges / 'file').write_text('x')
    result = cli(*graph_args(edges), *FAST, '--checkpoint', edges / 'file',
                 '--out', edges / 'r.json', cwd=edges)
    one_error_line(result, '--checkpoint', 'not a directory')
    plots = edges / 'plots'
    plots.mkdir()
    (plots / 'learning_curves.png').write_text('my figure')
    result = cli(*graph_args(edges), *FAST, '--plot-dir', plots,
                 '--overwrite', '--out', edges / 'r.json', cwd=edges)
    one_error_line(result, '--plot-dir', 'not a figure of train_gat.py')
    assert (plots / 'learning_curves.png').read_text() == 'my figure'
    assert not (edges / 'r.json').exists()


# 2. Locks ####################################################################


def test_second_process_fails_at_once_naming_the_first(edges):
    # Two real processes on the same checkpoint folder and results file.
    first = subprocess.Popen(
        [sys.executable, str(REPO / 'train_gat.py'), *map(str, graph_args(
            edges)), '--align', 'none', '--epochs', '100000', '--patience',
         '100000', '--runs', '1', '--quiet', '--checkpoint',
         str(edges / 'ckpt'), '--checkpoint-every', '1', '--out',
         str(edges / 'r.json')], cwd=edges, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        checkpoint = edges / 'ckpt' / 'checkpoint.pt'
        wait_for(checkpoint.exists, 'the first process\'s checkpoint')
        for argv in (('--align', 'ct', '--out', edges / 'r.json'),
                     ('--align', 'ct', '--out', edges / 'other.json')):
            second = cli(*graph_args(edges), '--epochs', 3, '--runs', 1,
                         '--quiet', '--checkpoint', edges / 'ckpt', *argv,
                         cwd=edges)
            one_error_line(second, 'in use by another run',
                           f'pid {first.pid}')
            assert 'note:' not in second.stderr  # no data was even loaded
        assert not (edges / 'other.json').exists()
        # 5. SIGTERM: one line, the current run saved, --resume goes on.
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=HANG_SECONDS)
    finally:
        first.kill()
    assert first.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines() == [
        f'interrupted (SIGTERM): the progress is saved in {checkpoint} (0 '
        f'run(s) finished); the same command with --resume continues it']
    state = torch.load(checkpoint, weights_only=True)
    assert state['current']['state']['epoch'] >= 1
    assert not (edges / 'r.json').exists()
    assert not (edges / 'ckpt' / '.lock').exists()  # released


def test_file_lock(tmp_path):
    path = str(tmp_path / 'l')
    code = ('import sys, time; from align_gnn.outputs import FileLock; '
            f'FileLock({path!r}, "x"); print("locked", flush=True); '
            'time.sleep(60)')
    holder = subprocess.Popen([sys.executable, '-c', code],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'locked\n'
        with pytest.raises(LockedError, match=f'The thing is in use by '
                           f'another run \\(pid {holder.pid},'):
            FileLock(path, 'The thing')
    finally:
        holder.kill()
        holder.wait(timeout=HANG_SECONDS)
    lock = FileLock(path, 'The thing')  # freed by the OS at the kill
    assert FileLock(path, 'The thing')  # the same process: replaced
    lock.release()


# 3. Resume checks ############################################################


@pytest.mark.parametrize('content', [b'', b'garbage\x00\x01', 'truncated'])
def test_resume_damaged_checkpoint(edges, content):
    ckpt = edges / 'ckpt'
    ckpt.mkdir()
    if content == 'truncated':
        torch.save(dict(config={}, current=None, finished=[]),
                   ckpt / 'checkpoint.pt')
        content = (ckpt / 'checkpoint.pt').read_bytes()[:-20]
    (ckpt / 'checkpoint.pt').write_bytes(content)
    result = cli(*graph_args(edges), *FAST, '--checkpoint', ckpt, '--resume',
                 '--out', edges / 'r.json', cwd=edges)
    one_error_line(result, 'is damaged', 'move it away')


def test_resume_refuses_other_data(edges):
    args = (*graph_args(edges), *FAST, '--checkpoint', edges / 'ckpt')
    assert cli(*args, '--out', edges / 'r.json', cwd=edges).returncode == 0
    csv = edges / 'nodes.csv'
    csv.write_text(csv.read_text().replace(',c0,', ',c1,', 3))
    result = cli(*args, '--resume', '--out', edges / 'r2.json', cwd=edges)
    one_error_line(result, 'other data', 'the labels y')
    assert 'the features x' not in result.stderr
    assert not (edges / 'r2.json').exists()


def test_checkpoint_data_fingerprint(data_root, tmp_path):
    cora, citeseer = (load_dataset(name, str(data_root))
                      for name in ('cora', 'citeseer'))
    checkpoint = Checkpoint(str(tmp_path), Config(epochs=1, runs=1))
    checkpoint.check_data(data_fingerprint(cora))
    checkpoint.save()
    checkpoint.close()
    again = Checkpoint(str(tmp_path), Config(epochs=1, runs=1), resume=True)
    again.check_data(data_fingerprint(cora))
    with pytest.raises(ValueError, match='other data: the features x'):
        again.check_data(data_fingerprint(citeseer))


# 4. Non-finite training ######################################################


def strict(text: str):
    def refuse(token):
        raise AssertionError(f'{token} in the JSON')
    return json.loads(text, parse_constant=refuse)


def test_non_finite_run_fails_and_is_recorded(edges):
    out = edges / 'r.json'
    result = cli(*graph_args(edges), '--compare', 'none,mmd', '--runs', 2,
                 '--epochs', 5, '--lr', '1e30', '--quiet', '--out', out,
                 cwd=edges)
    assert result.returncode == 1, result.stderr
    assert ('error: none seed 0: the training loss became nan at epoch'
            in result.stderr)
    results = strict(out.read_text())
    assert results['runs'] == []
    assert [(r['method'], r['seed']) for r in results['failed']] == [
        ('none', 0), ('mmd', 0), ('none', 1), ('mmd', 1)]
    assert results['summary']['none'] == dict(
        runs=0, test_acc_mean=None, reason='every run failed (see "failed")',
        failed=2)
    assert 'test accuracy' not in result.stdout


def test_non_finite_names_the_value():
    model = torch.nn.Linear(2, 2)
    assert loops.non_finite(torch.zeros(2), model) is None
    assert 'alignment loss became inf' in loops.non_finite(
        torch.tensor([0., math.inf]), model)
    with torch.no_grad():
        model.bias[0] = math.nan
    assert "'bias'" in loops.non_finite(torch.zeros(2), model)


def test_results_json_is_strict(tmp_path):
    save_results(dict(summary=dict(ct=dict(test_acc_diff=math.nan)),
                      runs=[dict(nll=math.inf)]), str(tmp_path / 'r.json'))
    results = strict((tmp_path / 'r.json').read_text())
    assert results['summary']['ct']['test_acc_diff'] is None
    assert results['nulls'] == {'summary.ct.test_acc_diff': 'was nan',
                                'runs[0].nll': 'was inf'}


# 5. Interrupts and ranges ####################################################


@pytest.mark.parametrize('sig', interrupts.SIGNALS,
                         ids=lambda sig: sig.name)
def test_interrupt_keeps_finished_runs(edges, monkeypatch, capsys, sig):
    real_run, calls = training.run, []

    def run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise interrupts.Interrupted(sig.name)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(training, 'run', run)
    out = edges / 'r.json'
    code = train_gat.main([*map(str, graph_args(edges)), '--epochs', '3',
                           '--runs', '3', '--quiet', '--align', 'none',
                           '--out', str(out)])
    assert code == 128 + sig
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f'interrupted ({sig.name}): the 1 finished run(s) '
                       f'written to {out} (marked incomplete)')
    results = strict(out.read_text())
    assert results['incomplete'] and results['interrupted'] == sig.name
    assert [run['seed'] for run in results['runs']] == [0]
    assert not list(edges.glob('.r.json.lock'))


@pytest.mark.parametrize('sig', interrupts.SIGNALS,
                         ids=lambda sig: sig.name)
def test_signal_one_line(edges, sig):
    # Every handled signal (SIGHUP: the terminal closed) ends the run alike.
    proc = subprocess.Popen(
        [sys.executable, str(REPO / 'train_gat.py'), *map(str, graph_args(
            edges)), '--align', 'none', '--epochs', '100000', '--patience',
         '100000', '--runs', '1', '--quiet', '--out', str(edges / 'r.json')],
        cwd=edges, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = edges / '.r.json.lock'
        wait_for(lock.exists, 'the results file\'s lock')
        time.sleep(3)  # into training
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=HANG_SECONDS)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, stderr
    lines = [line for line in stderr.splitlines()
             if not line.startswith('note:')]
    assert lines == [f'interrupted ({sig.name}): no run had finished; '
                     f'nothing written'], stderr
    assert not (edges / 'r.json').exists()


def test_seed_range_checked_before_training(edges):
    result = cli(*graph_args(edges), *FAST[:2], '--runs', 2, '--seed',
                 2**32 - 1, '--out', edges / 'r.json', cwd=edges)
    one_error_line(result, 'argument --seed', '--seed + --runs - 1')
    assert cli(*graph_args(edges), *FAST, '--seed', 2**32 - 1, '--out',
               edges / 'r.json', cwd=edges).returncode == 0
    with pytest.raises(ValueError, match="'seed' must be at most"):
        Config(seed=2**32 - 1, runs=2)


def test_layer_arguments_checked_before_training(edges, monkeypatch):
    trained = []
    monkeypatch.setattr(training, 'fit', lambda *a, **k: trained.append(1))
    real = training.make_model

    def make_model(method, data, config):
        if method == 'mmd':
            raise ValueError("'num_samples' must be >= 2 (got 1)")
        return real(method, data, config)

    monkeypatch.setattr(experiment, 'make_model', make_model)
    config = Config(dataset=str(edges / 'g.txt'), methods=['none', 'mmd'],
                    node_attributes=str(edges / 'nodes.csv'),
                    feature_attr=['x'], epochs=2, runs=1)
    with pytest.raises(ValueError, match='num_samples'):
        experiment.experiment(config)
    assert trained == []


# 6. Graph files and data #####################################################


def test_duplicate_node_rows(edges):
    csv = edges / 'nodes.csv'
    csv.write_text(csv.read_text() + 'n0,c1,0 0 1\n')
    with pytest.raises(DataError, match=r"node 'n0' has 2 rows \(lines 2, "):
        load_dataset(str(edges / 'g.txt'),
                     node_attributes=str(csv), feature_attr=['x'])


@pytest.mark.parametrize('label', ['nan', 'inf', 'NaN'])
def test_non_finite_label(edges, label):
    csv = edges / 'nodes.csv'
    csv.write_text(csv.read_text().replace('n0,c0,', f'n0,{label},'))
    with pytest.raises(DataError, match="node 'n0' has the label"):
        load_dataset(str(edges / 'g.txt'),
                     node_attributes=str(csv), feature_attr=['x'])


def test_empty_label_is_unlabelled(edges, tmp_path, caplog):
    graph = nx.path_graph(8)
    for node in graph:
        graph.nodes[node]['label'] = '' if node == 0 else str(node % 2)
    nx.write_graphml(graph, tmp_path / 'p.graphml')
    with caplog.at_level('INFO', logger='align_gnn'):
        data = load_dataset(str(tmp_path / 'p.graphml'),
                            split=[0.5, 0.25, 0.25])
    assert data.num_classes == 2 and int(data.y[0]) == -1
    assert '1 of 8 nodes have no' in caplog.text


@pytest.fixture
def two_planetoids(data_root, tmp_path):
    root = tmp_path / 'root'
    for name in ('Cora', 'CiteSeer'):
        (root / name).mkdir(parents=True)
        os.symlink(Path(data_root) / name / 'raw', root / name / 'raw')
    return root


def test_processed_file_of_another_data_set(two_planetoids):
    import shutil
    root = two_planetoids
    load_planetoid('citeseer', str(root))
    shutil.copytree(root / 'CiteSeer' / 'processed', root / 'Cora' /
                    'processed')
    # Its fingerprint is CiteSeer's raw files': rebuilt from Cora's (every
    # source: tests/test_inputs.py::test_processed_of_another_source).
    assert load_planetoid('cora', str(root))[0].num_nodes == 2708


def test_read_only_data_root(two_planetoids, monkeypatch):
    from torch_geometric.io import fs

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, 'Permission denied', path)

    monkeypatch.setattr(fs, 'makedirs', refuse)
    with pytest.raises(DataError, match='is read-only') as info:
        load_planetoid('cora', str(two_planetoids))
    assert 'corrupt' not in str(info.value)


def test_conv_warns_once_on_non_finite_input():
    from align_gnn import AlignedGATConv
    conv = AlignedGATConv(4, 2, heads=2, divergence='mmd')
    x, edge_index = torch.randn(5, 4), torch.tensor([[0, 1, 2], [1, 2, 3]])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        # Pass 1 (checked): finite, though the sum is not.
        conv(torch.full((5, 4), 3e38), edge_index)
        conv(x, edge_index)  # pass 2
        conv.eval()
        conv(x.clone().fill_(math.nan), edge_index)  # eval: not checked
    conv.train()
    x[2, 1] = math.inf
    # Checked on training passes 1, 9, 17, ...: passes 3 to 8 are not.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for _ in range(3, 9):
            conv(x, edge_index)
    with pytest.warns(RuntimeWarning, match="input 'x' holds NaN or inf"):
        conv(x, edge_index)  # pass 9
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for _ in range(conv.check_finite_every + 1):
            conv(x, edge_index)  # once
    sparse = AlignedGATConv(4, 2, divergence=None)
    with pytest.warns(RuntimeWarning, match='NaN or inf'):
        sparse(x.to_sparse_csr(), edge_index)
