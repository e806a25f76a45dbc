r"""`--precision` (fp32, tf32 on CUDA, bf16 autocast), a run out of GPU
memory as one line, and the GPU in the results' environment: the CPU side
(tests/test_cuda.py checks the GPU side where CUDA is available)."""
import json
import sys

import pytest
import torch

import train_gat
from align_gnn import training
from align_gnn.config import Config
from align_gnn.experiment import experiment
from align_gnn.precision import PRECISIONS, precision
from align_gnn.results import environment


def test_precision_restores_the_tf32_switches():
    before = (torch.backends.cuda.matmul.allow_tf32,
              torch.backends.cudnn.allow_tf32)
    with precision('bf16', torch.device('cpu')):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
        assert not torch.backends.cuda.matmul.allow_tf32
    with precision('fp32', torch.device('cpu')):
        assert not torch.is_autocast_enabled('cpu')
    assert (torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32) == before


def test_tf32_needs_cuda():
    with pytest.raises(ValueError, match="'precision' must be 'fp32' or "
                       "'bf16' on the CPU"):
        with precision('tf32', torch.device('cpu')):
            pass
    with pytest.raises(ValueError, match="'precision' must be one of"):
        with precision('fp16', torch.device('cpu')):
            pass
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="on the CPU"):
            Config(precision='tf32')
    with pytest.raises(ValueError, match="'precision' must be one of"):
        Config(precision='half')


@pytest.mark.parametrize('method', ['none', 'ct'])
def test_bf16_trains_as_well_as_fp32(method, data_root):
    # bfloat16 autocast on the CPU: the same training, within a point or two
    # of float32 on Cora (the test accuracy of one seed, 200 epochs).
    accs = {}
    for name in ('fp32', 'bf16'):
        config = Config(methods=[method], runs=1, epochs=200, patience=200,
                        device='cpu', precision=name)
        results = experiment(config, str(data_root))
        accs[name] = results['runs'][0]['test_acc']
        assert results['config']['precision'] == name
    assert accs['fp32'] > 0.78
    assert abs(accs['bf16'] - accs['fp32']) < 0.03, accs


def test_out_of_memory_is_one_failed_run(data_root, monkeypatch, tmp_path,
                                         capsys):
    # A run that runs out of GPU memory is a failed run named in one line
    # (what to lower); the other runs finish and are written.
    real_run = training.run

    def run(data, method, seed, config, *args, **kwargs):
        if seed == 1:
            raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to '
                                              'allocate 80.00 GiB')
        return real_run(data, method, seed, config, *args, **kwargs)

    monkeypatch.setattr(training, 'run', run)
    out = tmp_path / 'r.json'
    code = train_gat.main(['--root', str(data_root), '--align', 'none',
                           '--runs', '2', '--epochs', '3', '--quiet',
                           '--out', str(out)])
    err = capsys.readouterr().err
    assert code == 1
    line = [line for line in err.splitlines() if line.startswith('error:')]
    assert line == ['error: none seed 1: out of GPU memory; the run stopped '
                    '(lower --hidden, --heads or --batch-size, use '
                    '--precision bf16, or train on the CPU with --device '
                    'cpu)']
    results = json.loads(out.read_text())
    assert [run['seed'] for run in results['runs']] == [0]
    assert results['failed'][0]['seed'] == 1


def test_results_name_the_gpu(monkeypatch):
    assert 'gpu' not in environment(torch.device('cpu'))
    monkeypatch.setattr(torch.cuda, 'get_device_name',
                        lambda device=None: 'NVIDIA H200')
    env = environment(torch.device('cuda', 0))
    assert env['gpu'] == 'NVIDIA H200' and 'cuda' in env


def test_every_precision_is_a_choice_of_the_cli():
    action = next(a for a in train_gat.build_parser()._actions
                  if a.dest == 'precision')
    assert tuple(action.choices) == PRECISIONS
    assert 'train_gat' in sys.modules


def test_out_of_memory_in_the_attention_check(data_root, monkeypatch,
                                              tmp_path, capsys):
    from align_gnn import experiment as module

    def fit(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError('CUDA out of memory.')

    monkeypatch.setattr(module, 'fit', fit)
    code = train_gat.main(['--root', str(data_root), '--check-attention',
                           '--epochs', '2', '--quiet',
                           '--out', str(tmp_path / 'r.json')])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1
    assert err.startswith('error: none seed 0: out of GPU memory')
    assert not (tmp_path / 'r.json').exists()
