import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import study  # noqa: E402

ARGS = ['--methods', 'ct,mmd', '--search-samples', '2', '--search-seeds',
        '1', '--final-seeds', '2', '--peer-seeds', '1', '--epochs', '4',
        '--patience', '100']


def run(data_root, folder, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / 'benchmarks' / 'study.py'), '--root',
         str(data_root), '--folder', str(folder), *ARGS, *extra],
        capture_output=True, text=True, timeout=300)


def test_sample_settings():
    settings = study.sample_settings('ct', 5)
    assert len(settings) == 5 and len({json.dumps(s) for s in settings}) == 5
    assert settings == study.sample_settings('ct', 5)  # seeded
    assert set(settings[0]) == set(study.USES['ct'])
    assert len(study.sample_settings('mmd', 1000)) == 6 * 4  # whole grid


def test_study_resumes_and_chooses_on_validation(data_root, tmp_path):
    folder = tmp_path / 'study'
    result = run(data_root, folder, '--stage', 'search')
    assert result.returncode == 0, result.stderr
    lines = (folder / 'runs.jsonl').read_text().splitlines()
    assert len(lines) == 4  # 2 divergences x 2 settings x 1 seed
    # A kill in the middle of a write leaves a cut line: it is dropped.
    with open(folder / 'runs.jsonl', 'a') as f:
        f.write(lines[0][:40])
    result = run(data_root, folder)
    assert result.returncode == 0, result.stderr
    assert 'search: 0 new run(s)' in result.stdout
    records = [json.loads(line) for line in
               (folder / 'runs.jsonl').read_text().splitlines()]
    # final: (best vs none) x 2 seeds + other divergence + 2 peers, 1 seed
    assert len(records) == 4 + 4 + 3
    chosen = json.loads((folder / 'chosen.json').read_text())
    for method in ('ct', 'mmd'):
        search = [r for r in records if r['stage'] == 'search'
                  and r['method'] == method]
        best = max(search, key=lambda r: r['result']['val_acc'])
        assert chosen['best'][method]['val_acc'] == best['result']['val_acc']
    table = (folder / 'table.md').read_text()
    assert '| none |' in table and '| gatv2 |' in table
    assert 'python benchmarks/study.py' in table
    again = run(data_root, folder)
    assert 'final: 0 new run(s)' in again.stdout
