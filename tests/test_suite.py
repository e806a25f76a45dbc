r"""The suite's own rules: it never runs more threads than cores, and it fails
on what the program does, not on how long a busy machine takes (one
generous hang detector, :obj:`conftest.HANG_SECONDS`)."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from align_gnn.threads import (
    available_threads,
    set_threads,
    threads_per_process,
)
from conftest import HANG_SECONDS, REPO, THREADS, WORKERS

TESTS = sorted(Path(__file__).parent.glob('*.py'))
# Calls that wait for another process, and so need the hang detector:
WAITS = {'run', 'check_output', 'check_call', 'call', 'communicate', 'wait'}


def test_threads_divide_the_cores():
    assert THREADS == threads_per_process(WORKERS)
    assert torch.get_num_threads() == THREADS
    assert os.environ['OMP_NUM_THREADS'] == str(THREADS)
    cores = len(os.sched_getaffinity(0))
    assert THREADS * WORKERS <= max(cores, WORKERS)


def test_a_process_started_by_a_test_gets_the_share():
    proc = subprocess.run(
        [sys.executable, '-c', 'import torch; print(torch.get_num_threads())'],
        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert int(proc.stdout) == THREADS, proc.stderr


def test_the_command_line_started_by_a_test_gets_the_share(tmp_path):
    out = tmp_path / 'r.json'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), '--dataset',
         'dictionary-lookup', '--k', '3', '--epochs', '1', '--runs', '1',
         '--quiet', '--out', str(out)], capture_output=True, text=True,
        timeout=HANG_SECONDS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    environment = json.loads(out.read_text())['environment']
    assert environment['torch_threads'] == THREADS


def test_threads_per_process(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '6')
    assert available_threads() == 6
    assert [threads_per_process(n) for n in (1, 2, 3, 4, 7)] == [
        6, 3, 2, 1, 1]
    monkeypatch.setenv('OMP_NUM_THREADS', 'x')  # not a count: the cores
    assert available_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize('function', [threads_per_process, set_threads])
@pytest.mark.parametrize('value', [0, -1, 1.5, True, '2', None])
def test_thread_counts_are_checked(function, value):
    with pytest.raises(ValueError, match='must be an integer >= 1'):
        function(value)


def calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = getattr(node.func, 'attr', getattr(node.func, 'id', ''))
            yield name, node


@pytest.mark.parametrize('path', TESTS, ids=lambda p: p.name)
def test_every_wait_has_the_hang_detector(path):
    # A subprocess call, a process's communicate() or wait(): timeout is
    # HANG_SECONDS, nothing shorter (a speed check) and not missing (a hang
    # would block the suite).
    for name, node in calls(path):
        if name not in WAITS or (name not in ('communicate', 'wait') and
                                 'subprocess' not in ast.unparse(node.func)):
            continue
        timeout = {k.arg: k.value for k in node.keywords}.get('timeout')
        where = f'{path.name}:{node.lineno}'
        assert timeout is not None, f'{where}: {name}() without timeout'
        assert ast.unparse(timeout) == 'HANG_SECONDS', (
            f'{where}: timeout={ast.unparse(timeout)}, not HANG_SECONDS')


@pytest.mark.parametrize('path', [p for p in TESTS if p.name != 'conftest.py'],
                         ids=lambda p: p.name)
def test_no_wall_clock_in_tests(path):
    # Waiting for a state goes through conftest.wait_for; timing is for
    # benchmarks/.
    for name, node in calls(path):
        assert name not in ('monotonic', 'perf_counter', 'time'), (
            f'{path.name}:{node.lineno}: {ast.unparse(node)}; use '
            f'conftest.wait_for (a hang detector) or a benchmark')
