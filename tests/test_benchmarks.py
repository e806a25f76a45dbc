r"""Smoke tests: every benchmark script runs at tiny sizes and prints its
table (the real measurements are in the README)."""
import json
import math
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_SECONDS

BENCHMARKS = osp.join(osp.dirname(osp.dirname(__file__)), 'benchmarks')

CASES = {
    'bench_arxiv_scale.py': (['--nodes', '300', '--edges', '1500',
                              '--epochs', '1', '--batch-size', '0'],
                             'full-batch'),
    'bench_layer.py': (['--sizes', '300:1500:32', '--repeats', '3'],
                       'AlignedGATConv(divergence=None)'),
    'bench_step.py': (['--repeats', '2', '--warmup', '1'], 'supergat'),
    'bench_scaling.py': (['--sizes', '2000:10000,4000:20000', '--repeats',
                          '2', '--align-samples', '16'],
                         'log-log slope of aligned'),
    'bench_memory.py': (['--samples', '8,32', '--nodes', '200'], 'mmd'),
    'bench_features.py': (['--repeats', '2', '--warmup', '1', '--runs', '1',
                           '--epochs', '3', '--methods', 'none'],
                          'none, sparse'),
    'bench_contention.py': (['--busy', '0,1', '--repeats', '1', '--command',
                             '--dataset dictionary-lookup --k 3 --epochs 1 '
                             '--runs 1'], '| 1 |'),
    'bench_threads.py': (['--repeats', '2', '--warmup', '1'],
                         'ct, MKL on 1 thread(s)'),
    'snippet_from_scratch.py': (['--epochs', '2', '--runs', '2',
                                 '--variant', '0.1:0:1'],
                                '| 2 | CT λ=0.1, warm-up 0, adversary lr 1× |'),
    'selection.py': (['--seeds', '2', '--epochs', '3', '--workers', '1'],
                     'gat-paper'),
}


@pytest.mark.parametrize('script', sorted(CASES))
def test_benchmark_runs(script, data_root, tmp_path):
    args, expected = CASES[script]
    if script in ('bench_step.py', 'bench_features.py', 'bench_threads.py',
                  'snippet_from_scratch.py', 'selection.py'):
        args = [*args, '--root', data_root]
    if script == 'selection.py':
        args = [*args, '--folder', str(tmp_path)]
    proc = subprocess.run([sys.executable, osp.join(BENCHMARKS, script),
                           *args], capture_output=True, text=True,
                          timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout


def test_gpu_speed_runs(data_root, hetero_root, tmp_path):
    # Cora and minesweeper under one data root (links to the fixtures'):
    root = tmp_path / 'data'
    root.mkdir()
    (root / 'Cora').symlink_to(Path(data_root) / 'Cora')
    (root / 'minesweeper').symlink_to(Path(hetero_root) / 'minesweeper')
    out = tmp_path / 'speed.json'
    proc = subprocess.run(
        [sys.executable, osp.join(BENCHMARKS, 'gpu_speed.py'), '--device',
         'cpu', '--quick', '--repeats', '2', '--epochs', '2', '--width',
         '16', '--arxiv-nodes', '1000', '--compare-runs', '1',
         '--compare-epochs', '2', '--root', str(root), '--json', str(out)],
        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("ratios to PyG's example epoch: plain "), (
        proc.stdout)
    assert 'GT/bare' in lines[-1] and 'at width 16' in lines[-1]
    assert any(line.startswith('regulariser alone, Cora, ct')
               for line in lines)
    record = json.loads(out.read_text())
    assert record['benchmark'] == 'gpu_speed'
    assert record['settings']['width'] == 16
    assert set(record['headline']) == set(record['goals']) | {'ct'}
    assert all(math.isfinite(value) and value > 0
               for value in record['headline'].values())
    assert record['compare']['runs'] == 1


def test_gpu_speed_leaves_a_foreign_file_alone(tmp_path):
    out = tmp_path / 'mine.json'
    out.write_text('{"mine": 1}')
    proc = subprocess.run(
        [sys.executable, osp.join(BENCHMARKS, 'gpu_speed.py'), '--device',
         'cpu', '--quick', '--json', str(out)], capture_output=True,
        text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 2
    assert 'is not an output of gpu_speed.py' in proc.stderr
    assert out.read_text() == '{"mine": 1}'


def test_device_study_cells_packs_the_cells(tmp_path):
    # With no GPU visible the studies refuse --device cuda before writing
    # anything; the script still packs the cells' committed folders (what a
    # device call brings back), and refuses a cell of another issue.
    import tarfile
    script = osp.join(BENCHMARKS, 'device_study_cells.sh')
    env = {**os.environ, 'OUT': str(tmp_path), 'MINUTES': '1',
           'CUDA_VISIBLE_DEVICES': ''}
    result = subprocess.run(['bash', script, 'minesweeper-gt'], env=env,
                            capture_output=True, text=True,
                            timeout=HANG_SECONDS)
    assert 'CUDA is not available' in result.stderr, result.stderr
    with tarfile.open(tmp_path / 'study.tar.gz') as archive:
        assert 'study/minesweeper/gt/runs.jsonl' in archive.getnames()
    # An OUT holding files already (an earlier run's) is left as it is:
    before = (tmp_path / 'study.tar.gz').read_bytes()
    result = subprocess.run(['bash', script, 'minesweeper-gt'], env=env,
                            capture_output=True, text=True,
                            timeout=HANG_SECONDS)
    assert result.returncode == 2 and 'is not empty' in result.stderr
    assert (tmp_path / 'study.tar.gz').read_bytes() == before
    result = subprocess.run(['bash', script, 'cora-gat'], env=env,
                            capture_output=True, text=True,
                            timeout=HANG_SECONDS)
    assert result.returncode == 2
    assert "'cora-gat' is not a cell of issue 28" in result.stderr
