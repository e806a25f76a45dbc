import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from align_gnn import training
from align_gnn.checkpoint import Checkpoint
from align_gnn.config import Config
from align_gnn.data import load_dataset
from conftest import HANG_SECONDS, wait_for
from fakes import write_fake_arxiv

REPO = Path(__file__).resolve().parents[1]

# Two methods on two seeds, so that a kill finds finished runs and a run in
# progress; checkpoints every 5 of the 30 epochs; few samples for speed.
ARGS = ('--compare', 'none,ct', '--runs', 2, '--epochs', 30, '--patience',
        1000, '--checkpoint-every', 5, '--align-samples', 128, '--quiet')
TIMINGS = ('seconds', 'seconds_per_epoch')


def command(data_root, folder: Path, *extra):
    return [sys.executable, str(REPO / 'train_gat.py'), *map(str, ARGS),
            '--root', str(data_root), '--checkpoint', str(folder / 'ckpt'),
            '--out', str(folder / 'results.json'), *extra]


def run_cli(data_root, folder: Path, *extra) -> dict:
    proc = subprocess.run(command(data_root, folder, *extra),
                          capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr
    return json.loads((folder / 'results.json').read_text())


def without_timings(results: dict) -> dict:
    r"""The results without timings, the command (paths differ) and the
    environment (thread counts differ)."""
    results = json.loads(json.dumps(results))
    results.pop('command')
    results.pop('environment')
    for entry in [*results['runs'], *results['summary'].values()]:
        for key in TIMINGS:
            entry.pop(key, None)
    return results


def load(folder: Path) -> dict:
    return torch.load(folder / 'ckpt' / Checkpoint.FILE,
                      weights_only=True)


@pytest.fixture(scope='module')
def uninterrupted(data_root, tmp_path_factory) -> dict:
    return run_cli(data_root, tmp_path_factory.mktemp('uninterrupted'))


def test_same_command_same_results(uninterrupted, data_root, tmp_path):
    # On another thread count (--threads): training runs MKL's products on
    # one thread, so the results must not depend on the thread count, on
    # Intel and AMD CPUs alike (see align_gnn/reproducibility.py).
    settings = uninterrupted['environment']
    threads = 1 if settings['torch_threads'] > 1 else 2
    again = run_cli(data_root, tmp_path, '--threads', str(threads))
    assert settings['mkl_cbwr'] == 'AUTO,STRICT'
    if torch.backends.mkl.is_available():
        assert settings['mkl_threads'] == 1
    assert again['environment']['torch_threads'] == threads
    assert without_timings(again) == without_timings(uninterrupted)


def test_resume_after_sigkill(uninterrupted, data_root, tmp_path):
    path = tmp_path / 'ckpt' / Checkpoint.FILE
    proc = subprocess.Popen(command(data_root, tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def in_progress() -> bool:  # a run after at least one finished
            if proc.poll() is not None:  # ended: the asserts below say so
                return True
            if not path.is_file():
                return False
            state = load(tmp_path)
            current = state['current']
            return bool(state['finished'] and current
                        and current['state']['epoch'] <= 20)

        wait_for(in_progress, 'a checkpoint of a run in progress',
                 interval=0.02)
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=HANG_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, stderr
    assert not (tmp_path / 'results.json').exists()

    state = load(tmp_path)
    assert len(state['finished']) in (1, 2, 3)
    assert 5 <= state['current']['state']['epoch'] < 30
    finished = state['finished']

    resumed = run_cli(data_root, tmp_path, '--resume')
    assert without_timings(resumed) == without_timings(uninterrupted)
    # Finished runs were taken over, not trained again:
    by_run = {(r['method'], r['seed']): r for r in resumed['runs']}
    for result in finished:
        assert by_run[result['method'], result['seed']] == result
    state = load(tmp_path)
    assert state['current'] is None and len(state['finished']) == 4


def run_interrupted(monkeypatch, graph, config, folder: str,
                    stop) -> list:
    r""":func:`training.run_many` with a checkpoint in :obj:`folder` saved
    every 3 epochs, interrupted right after the save at which
    :obj:`stop(saves)` holds; returns the methods of the saves."""
    saves = []
    save_run = Checkpoint.save_run

    def interrupt(self, method, seed, state):
        save_run(self, method, seed, state)
        saves.append(method)
        if stop(saves):
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Checkpoint, 'save_run', interrupt)
        with pytest.raises(KeyboardInterrupt):
            training.run_many(graph, config, checkpoint=Checkpoint(
                folder, config, every=3))
    return saves


def test_checkpoint_api(data_root, tmp_path, monkeypatch):
    graph = load_dataset('cora', data_root)
    config = Config(methods=['none', 'ct'], runs=1, epochs=9,
                    patience=1000, align_samples=64, device='cpu')
    expected = training.run_many(graph, config)

    # Interrupted after the 2nd save of the second run (epoch 6 of ct):
    folder = str(tmp_path / 'ckpt')
    saves = run_interrupted(monkeypatch, graph, config, folder,
                            lambda saves: saves.count('ct') == 2)
    assert saves == ['none'] * 3 + ['ct'] * 2

    (tmp_path / 'ckpt' / '.checkpoint.pt-killed.tmp').write_bytes(b'')
    checkpoint = Checkpoint(folder, config, every=3, resume=True)
    assert list(checkpoint.finished) == [('none', 0)]
    assert checkpoint.run_state('ct', 0)['epoch'] == 6
    assert checkpoint.run_state('none', 0) is None
    results = training.run_many(graph, config, checkpoint=checkpoint)
    for result in [*results, *expected]:
        result.seconds = result.seconds_per_epoch = 0.0
    assert results == expected

    # Another config, or a checkpoint that is not to be resumed, is refused:
    with pytest.raises(ValueError, match=r'another config \(epochs=9 there, '
                       r'10 now\)'):
        Checkpoint(folder, Config(
            methods=['none', 'ct'], runs=1, epochs=10, patience=1000,
            align_samples=64, device='cpu'), resume=True)
    with pytest.raises(ValueError, match='already holds a checkpoint'):
        Checkpoint(folder, config)
    assert [p.name for p in (tmp_path / 'ckpt').iterdir()] == [
        Checkpoint.FILE]


def test_checkpoint_cli_errors(tmp_path, capsys):
    # In-process (a new process costs seconds of imports):
    sys.path.insert(0, str(REPO))
    try:
        import train_gat
    finally:
        sys.path.remove(str(REPO))

    def cli(*args):
        try:
            code = train_gat.main([*map(str, args), '--quiet'])
        except SystemExit as exit:
            code = exit.code
        return code, capsys.readouterr().err

    code, err = cli('--resume')
    assert code == 2
    assert err == 'error: argument --resume: only with --checkpoint DIR; ' \
        'leave it out (see --help)\n'
    code, err = cli('--checkpoint-every', 0)
    assert code == 2 and err.startswith('error: argument --checkpoint-every')

    folder = tmp_path / 'ckpt'
    Checkpoint(str(folder), Config(device='cpu')).save()
    code, err = cli('--device', 'cpu', '--epochs', 5, '--checkpoint', folder)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith('error: ') and 'already holds a checkpoint' in err
    code, err = cli('--device', 'cpu', '--epochs', 5, '--checkpoint', folder,
                    '--resume')
    assert code == 2 and len(err.splitlines()) == 1
    assert 'another config (epochs=1000 there, 5 now)' in err


def test_minibatch_resume_is_exact(tmp_path, monkeypatch):
    # Neighbour sampling draws from torch's generator, saved with the rest:
    write_fake_arxiv(tmp_path)
    graph = load_dataset('ogbn-arxiv', tmp_path)
    config = Config(dataset='ogbn-arxiv', methods=['ct'], runs=1,
                    epochs=6, patience=1000, batch_size=128,
                    fanout=[4, 4, 4], align_samples=16,
                    device='cpu')
    expected = training.run_many(graph, config)
    folder = str(tmp_path / 'ckpt')
    run_interrupted(monkeypatch, graph, config, folder, lambda saves: True)
    checkpoint = Checkpoint(folder, config, every=3, resume=True)
    assert checkpoint.run_state('ct', 0)['epoch'] == 3
    results = training.run_many(graph, config, checkpoint=checkpoint)
    for result in [*results, *expected]:
        result.seconds = result.seconds_per_epoch = 0.0
    assert results == expected


def test_resume_a_checkpoint_from_before_a_new_setting(data_root, tmp_path,
                                                      capsys):
    # A checkpoint made before a Config field existed (e.g. `precision`)
    # was made with that field's default: it resumes; another value does
    # not.
    import train_gat
    folder = tmp_path / 'ckpt'
    argv = ['--root', str(data_root), '--align', 'none', '--runs', '1',
            '--epochs', '2', '--quiet', '--checkpoint', str(folder)]
    assert train_gat.main([*argv, '--out', str(tmp_path / 'a.json')]) == 0
    path = folder / Checkpoint.FILE
    state = torch.load(path, weights_only=True)
    del state['config']['precision']
    torch.save(state, path)
    assert train_gat.main([*argv, '--resume', '--out',
                           str(tmp_path / 'b.json')]) == 0
    assert train_gat.main([*argv, '--resume', '--precision', 'bf16',
                           '--out', str(tmp_path / 'c.json')]) == 2
    assert "precision='fp32' there, 'bf16' now" in capsys.readouterr().err
