import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from align_gnn import AlignedGATConv, alignment_loss
from align_gnn.divergences import resolve_divergence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import study  # noqa: E402
from conftest import HANG_SECONDS
from fakes import device_runner  # noqa: E402

ARGS = ['--methods', 'ct,mmd', '--search-samples', '2', '--search-seeds',
        '1', '--final-seeds', '2', '--peer-seeds', '1', '--epochs', '4',
        '--patience', '100']


def run(data_root, folder, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / 'benchmarks' / 'study.py'), '--root',
         str(data_root), '--folder', str(folder), *ARGS, *extra],
        capture_output=True, text=True, timeout=HANG_SECONDS)


def test_sample_settings():
    settings = study.sample_settings('ct', 5)
    assert len(settings) == 5 and len({json.dumps(s) for s in settings}) == 5
    assert settings == study.sample_settings('ct', 5)  # seeded
    assert set(settings[0]) == set(study.USES['ct'])
    assert len(study.sample_settings('mmd', 1000)) == 6 * 4  # whole grid
    small = study.sample_settings('mmd', 1000,
                                  space={'align_samples': [64, 128]})
    assert len(small) == 6 * 2
    assert {s['align_samples'] for s in small} == {64, 128}


@pytest.mark.parametrize('text,error', [
    ('sinkhorn.align_samples', 'is not METHOD.NAME=V1,V2,...'),
    ('sinkhorn.align_samples=64,big', 'is not METHOD.NAME=V1,V2,...'),
    ('sinkhorn.rho=0.5', "sinkhorn has no setting 'rho'"),
    ('gat.align_weight=1', "gat has no setting 'align_weight'"),
])
def test_space_option_errors(text, error, capsys):
    with pytest.raises(SystemExit):
        study.parse_args(['--space', text])
    assert error in capsys.readouterr().err


def test_space_option():
    args = study.parse_args(['--space', 'mmd.align_samples=64,128',
                             '--space', 'mmd.align_weight=0.1'])
    assert args.space == {'mmd': {'align_samples': [64, 128],
                                  'align_weight': [0.1]}}
    tasks = study.search_tasks(study.parse_args(
        ['--methods', 'mmd', '--space', 'mmd.align_samples=64',
         '--search-seeds', '1']))
    assert len(tasks) == 6 and {t[2]['align_samples'] for t in tasks} == {64}


def test_space_variant_and_set_options(capsys):
    args = study.parse_args(['--space', 'ct.align_over=nodes,heads',
                             '--set', 'model=platonov-gt', '--set',
                             'hidden=64', '--set', 'lr=0.001', '--peers', ''])
    assert args.set == dict(model='platonov-gt', hidden=64, lr=0.001)
    assert args.peers == []
    settings = study.sample_settings('ct', 10000, space=args.space['ct'])
    assert {s['align_over'] for s in settings} == {'nodes', 'heads'}
    assert len(settings) == 2 * len(study.sample_settings('ct', 10000))
    # Without the variant, the search (and a study's resumed keys) is as
    # before: no align_over in the settings.
    assert 'align_over' not in study.sample_settings('ct', 1)[0]
    for option, error in [
            (['--set', 'hidden'], "'hidden' is not NAME=VALUE"),
            (['--set', 'widht=64'], 'with NAME one of'),
            (['--set', 'align_weight=0.1'], 'with NAME one of'),
            (['--space', 'ct.align_over=edges'], 'align_over takes nodes, '
                                                 'heads')]:
        with pytest.raises(SystemExit):
            study.parse_args(option)
        assert error in capsys.readouterr().err


def test_study_manifest(tmp_path, capsys):
    def check(args):
        return study.check_manifest(
            study.make_parser(), args, str(tmp_path / 'study.json'),
            str(tmp_path / 'runs.jsonl'), study.NOT_RECORDED)

    args = study.parse_args(['--folder', str(tmp_path), '--set', 'hidden=64',
                             '--dataset', 'CiteSeer'])
    check(args)
    assert json.loads((tmp_path / 'study.json').read_text()) == dict(
        dataset='citeseer', set=dict(hidden=64), epochs=1000, patience=100)
    assert check(args) is None  # the same study: resumes
    other = study.parse_args(['--folder', str(tmp_path), '--dataset',
                              'citeseer'])
    with pytest.raises(SystemExit) as info:
        check(other)
    assert info.value.code == 2
    assert re.search(r"argument --set: .* made with --set hidden=64 .*not no "
                     r"--set.* another --folder", capsys.readouterr().err)
    (tmp_path / 'study.json').write_text('{"dataset": "co')  # damaged
    with pytest.raises(SystemExit) as info:
        check(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count('\n') == 1
    assert re.search(r"study.json' is not valid JSON .*restore it or delete "
                     r"it", err)


def test_study_fixed_splits(hetero_root, monkeypatch, capsys):
    # On a data set with fixed splits, run seed s uses split s (search
    # included), and a study asking for more splits than there are stops.
    from align_gnn import training

    used = []

    def spy(data, index):
        used.append(index)
        return select_split(data, index)

    select_split = training.select_split
    monkeypatch.setattr(training, 'select_split', spy)
    base = dict(hidden=8, heads=2, layers=1)
    args = study.parse_args(['--search-seeds', '2'])
    args.splits = 10
    assert study.search_seeds(args) == [0, 1]
    for seed in (0, 3):
        result = study.run_task(('final', 'none', {}, seed),
                                'chameleon-filtered', str(hetero_root), 1, 1,
                                base)
        assert result['seed'] == seed
    assert used == [0, 3]
    with pytest.raises(SystemExit) as info:
        study.main(['--dataset', 'chameleon-filtered', '--root',
                    str(hetero_root), '--folder', str(hetero_root / 'st'),
                    '--final-seeds', '11', '--set', 'hidden=8'])
    assert info.value.code == 2  # a usage error, as the parser's
    assert 'has 10 fixed splits' in capsys.readouterr().err


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


def test_diagnose_variant_layers():
    import diagnose
    from torch_geometric.nn import GATConv

    torch.manual_seed(0)
    x = torch.randn(30, 5)
    edge_index = torch.randint(30, (2, 90))
    logits = diagnose.LogitAlignedGATConv(
        5, 4, heads=2, num_samples=64,
        divergence=resolve_divergence('ct', 2, 1))
    plain = GATConv(5, 4, heads=2)
    plain.load_state_dict(logits.state_dict(), strict=False)
    assert torch.allclose(logits(x, edge_index), plain(x, edge_index))
    key, query = logits.key_query(x)
    vector_key, vector_query = AlignedGATConv.key_query(logits, x)
    assert key.shape == (30, 2, 1)
    assert torch.allclose(key, vector_key.sum(-1, keepdim=True))
    assert torch.allclose(query, vector_query.sum(-1, keepdim=True))
    logits.get_alignment_loss().backward()
    assert logits.att_src.grad.abs().sum() > 0

    edges = diagnose.EdgeSampledGATConv(5, 4, heads=2, num_samples=1000)
    edges(x, edge_index)  # fewer edges than samples: every edge
    key, query = edges.key_query(x)
    assert torch.equal(edges._key_sample, key[edge_index[0]])
    assert torch.equal(edges._query_sample, query[edge_index[1]])
    edges.num_samples = 10
    edges(x, edge_index)
    assert edges._key_sample.shape == (10, 2, 4)
    rows = (edges._key_sample.unsqueeze(1) == key.unsqueeze(0)).all(-1).all(-1)
    assert rows.any(1).all()  # sampled keys are keys of nodes


def test_diagnose_first_last_layer(data_root):
    import diagnose

    data = study.graph('cora', str(data_root))
    config = study.config('ct', {}, 0, 'cora', 1, 1)
    first = diagnose.variant_model('first', 'ct', data, config)
    last = diagnose.variant_model('last', 'ct', data, config)
    assert first.conv1.divergence is not None
    assert first.conv2.divergence is None
    assert last.conv1.divergence is None and last.conv2.divergence is not None
    first.train()
    first(data.x, data.edge_index)
    assert torch.allclose(alignment_loss(first),
                          first.conv1.get_alignment_loss())


def test_diagnose_end_to_end(data_root, tmp_path):
    folder = tmp_path / 'study'
    folder.mkdir()
    setting = dict(align_weight=0.1, align_samples=64, rho=0.5,
                   adversary_channels=16, adversary_lr_scale=1.0)
    (folder / 'chosen.json').write_text(json.dumps(
        dict(best={'ct': dict(setting=setting, val_acc=0.5)}, rows=[])))
    result = subprocess.run(
        [sys.executable, str(REPO / 'benchmarks' / 'diagnose.py'), '--root',
         str(data_root), '--folder', str(folder), '--seeds', '1',
         '--epochs', '3', '--trace-epochs', '1,2'],
        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stderr
    report = json.loads((folder / 'diagnose.json').read_text())
    assert report['method'] == 'ct' and report['setting'] == setting
    gat, ct = report['traces']['GAT'], report['traces']['ct']
    assert [r['epoch'] for r in ct] == [1, 2]
    assert all(layer['align_grad'] == 0 for r in gat for layer in r['layers'])
    assert all(layer['align_grad'] > 0 for r in ct for layer in r['layers'])
    assert len(report['uniformity']['ct']) == 2
    assert all(0 < u <= 1 + 1e-6 for u in report['uniformity']['GAT'])
    accuracy = report['uniform_attention']['ct']
    assert set(accuracy) == {'trained', 'uniform'}
    assert all(0 <= acc <= 1 for acc in accuracy.values())
    labels = [row['method'] for row in report['variants']]
    assert labels == ['none'] + [f'ct:{v}' for v in
                                 ('chosen', 'first', 'last', 'logits',
                                  'edges')]
    assert len((folder / 'diagnose.jsonl').read_text().splitlines()) == 6
    assert '| ct:logits |' in (folder / 'diagnose.md').read_text()


def test_diagnose_setting_needs_method(capsys):
    import diagnose

    with pytest.raises(SystemExit):
        diagnose.main(['--setting', '{"align_weight": 0.1}'])
    assert 'argument --setting: only with --method' in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):  # parts 1 and 3 ignore it
        diagnose.main(['--set', 'hidden=64'])
    assert 'argument --set: only with --attention-only' in \
        capsys.readouterr().err


def test_device_option(tmp_path, monkeypatch, capsys):
    # --device cuda: every run on the GPU, in spawned worker processes
    # (CUDA does not survive a fork) that are given the device; without a
    # GPU, study.py and diagnose.py refuse it with a one-line error.
    import diagnose

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for main in (study.parse_args, diagnose.main):
        with pytest.raises(SystemExit):
            main(['--device', 'cuda'])
        assert 'CUDA is not available' in capsys.readouterr().err
    assert study.parse_args([]).device == 'cpu'
    assert study.config('ct', {}, 0, 'cora', 1, 1,
                        device='cuda').device == 'cuda'

    contexts = []
    get_context = study.multiprocessing.get_context
    monkeypatch.setattr(study.multiprocessing, 'get_context',
                        lambda method=None: contexts.append(method)
                        or get_context(method))
    tasks = [('final', 'none', {}, seed) for seed in range(2)]
    for device, method in (('cuda', 'spawn'), ('cpu', None)):
        store = study.Store(str(tmp_path / f'{device}.jsonl'))
        args = argparse.Namespace(workers=1, device=device, dataset='cora',
                                  root=None, epochs=1, patience=1, set={})
        assert study.run_tasks(tasks, store, args, device_runner) == 2
        assert contexts[-1] == method
        assert [store.result(t)['device'] for t in tasks] == [device] * 2


def test_study_runs_together_as_one_at_a_time(data_root, tmp_path,
                                              monkeypatch):
    # On CUDA with one worker the study's runs go several at once in one
    # process (run_together, here interleaved on the CPU): the records are
    # those of the runs one at a time, times aside.
    tasks = [('search', 'ct', {'lr': 0.01}, 0), ('search', 'mmd', {}, 0),
             ('final', 'none', {}, 1)]
    args = argparse.Namespace(workers=1, device='cpu', dataset='cora',
                              root=str(data_root), epochs=12, patience=3,
                              set={})
    store = study.Store(str(tmp_path / 'runs.jsonl'))
    assert study.run_together(tasks, store, args, at_once=3) == 3
    alone = [study.run_task(task, args.dataset, args.root, args.epochs,
                            args.patience, args.set, args.device)
             for task in tasks]

    def timeless(result):
        return {key: value for key, value in result.items()
                if 'seconds' not in key}
    assert [timeless(store.result(task)) for task in tasks] == [
        timeless(result) for result in alone]
    assert len({result['val_acc'] for result in alone}) > 1

    handed = []
    monkeypatch.setattr(study, 'run_together',
                        lambda pending, store, args: handed.append(pending)
                        or len(pending))

    class Pool(Exception):  # the worker processes, not entered here
        def __init__(self, *args):
            raise self
    monkeypatch.setattr(study, 'ProcessPoolExecutor', Pool)
    for device, workers, together in (('cuda', 1, True), ('cuda', 2, False),
                                      ('cpu', 1, False)):
        handed.clear()
        given = argparse.Namespace(**{**vars(args), 'device': device,
                                      'workers': workers})
        fresh = study.Store(str(tmp_path / f'{device}{workers}.jsonl'))
        if together:
            assert study.run_tasks(tasks, fresh, given) == 3
        else:
            with pytest.raises(Pool):
                study.run_tasks(tasks, fresh, given)
        assert handed == ([tasks] if together else [])


def test_recommended_settings_are_the_study_choices():
    # Every setting the library recommends is a study's validation choice,
    # recomputed from its committed runs with the study's own command (the
    # first line of its table.md):
    from align_gnn.config import RECOMMENDED_ALIGNMENT

    for dataset, chosen in RECOMMENDED_ALIGNMENT.items():
        folder = REPO / 'study' / dataset.lower()
        store = study.Store(str(folder / 'runs.jsonl'), repair=False)
        header = (folder / 'table.md').read_text().splitlines()[0]
        command = shlex.split(header.split('`')[1])
        assert command[:2] == ['python', 'benchmarks/study.py']
        args = study.parse_args(command[2:] + ['--methods', ','.join(chosen)])
        best = study.best_settings(store, args)
        assert {m: best[m]['setting'] for m in chosen} == chosen


def test_diagnose_attention_only(hetero_root, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / 'benchmarks' / 'diagnose.py'), '--root',
         str(hetero_root), '--dataset', 'minesweeper', '--attention-only',
         '--folder', str(tmp_path), '--epochs', '2', '--set', 'hidden=8',
         '--set', 'heads=2', '--set', 'layers=1', '--set',
         'model=platonov-gt', '--method', 'ct'],
        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / 'attention.json').read_text())
    assert report['metric'] == 'roc_auc'
    assert set(report['models']) == {'plain', 'ct'}
    for model in report['models'].values():
        assert len(model['uniformity']) == 1
        assert 0 < model['uniformity'][0] <= 1 + 1e-6
        assert 0 <= model['score']['uniform'] <= 1
    assert '| plain |' in (tmp_path / 'attention.md').read_text()

    # Without --method, a study's winner (chosen on validation) is the
    # aligned model.
    setting = {'align_weight': 0.3, 'align_samples': 64, 'align_over': 'heads'}
    (tmp_path / 'chosen.json').write_text(json.dumps({'best': {
        'ct': {'setting': {}, 'val_acc': 0.6},
        'mmd': {'setting': setting, 'val_acc': 0.7}}}))
    result = subprocess.run(
        [sys.executable, str(REPO / 'benchmarks' / 'diagnose.py'), '--root',
         str(hetero_root), '--dataset', 'minesweeper', '--attention-only',
         '--folder', str(tmp_path), '--epochs', '2', '--set', 'hidden=8',
         '--set', 'heads=2', '--set', 'layers=1', '--set',
         'model=platonov-gt'], capture_output=True, text=True,
        timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / 'attention.json').read_text())
    assert set(report['models']) == {'plain', 'mmd'}
    assert report['models']['mmd']['setting'] == setting


def test_attention_table(tmp_path, capsys):
    # One finished cell (chosen.json, attention.json), one still running,
    # and a folder that is not a study (selection.py's runs): the table has
    # a row for each study, with the winner on the plain model's seeds.
    import attention_table

    done = tmp_path / 'cora-noise' / 'gatv2'
    done.mkdir(parents=True)
    (done / 'study.json').write_text(json.dumps(dict(
        dataset='cora', set=dict(edge_noise=0.5, conv='gatv2'))))
    rows = [dict(method='none', setting={}, seeds=10, test_mean=0.75,
                 test_std=0.01, val_mean=0.74, diff=0.0, ttest_p=None,
                 wilcoxon_p=None),
            dict(method='mmd', setting=dict(align_weight=1.0), seeds=3,
                 test_mean=0.9, test_std=0.0, val_mean=0.9, diff=0.15,
                 ttest_p=0.5, wilcoxon_p=0.5),
            dict(method='ct', setting=dict(align_weight=0.1, rho=0.5,
                                           align_over='heads'),
                 seeds=10, test_mean=0.7612, test_std=0.02, val_mean=0.75,
                 diff=0.0112, ttest_p=0.0042, wilcoxon_p=0.0059)]
    (done / 'chosen.json').write_text(json.dumps(dict(best={}, rows=rows)))
    (done / 'attention.json').write_text(json.dumps(dict(models=dict(
        plain=dict(uniformity=[0.97, 0.91],
                   score=dict(trained=0.75, uniform=0.7))))))
    running = tmp_path / 'chameleon-filtered' / 'gt'
    running.mkdir(parents=True)
    (running / 'study.json').write_text(json.dumps(dict(
        dataset='chameleon-filtered', set=dict(model='platonov-gt'))))
    (running / 'runs.jsonl').write_text('{}\n{}\n{}\n')
    other = tmp_path / 'cora' / 'selection'
    other.mkdir(parents=True)
    (other / 'runs.jsonl').write_text('{}\n')
    diagnosed = tmp_path / 'minesweeper' / 'gat'
    diagnosed.mkdir(parents=True)
    (diagnosed / 'attention.json').write_text(json.dumps(dict(
        dataset='minesweeper', set=dict(hidden=64), models=dict(plain=dict(
            uniformity=[0.9], score=dict(trained=0.9, uniform=0.8))))))

    attention_table.main(['--folder', str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert lines[2] == ('| chameleon-filtered | Transformer | running: 3 runs '
                        'done |  |  |  |  |  |  |')
    assert lines[4] == ('| minesweeper | GAT | study not run |  |  |  |  |  | '
                        '0.90–0.90; 90.00 → 80.00 |')
    assert lines[3] == ('| cora (edge_noise 0.5) | GATv2 | 75.00 ± 1.00 | '
                        '76.12 ± 2.00 | ct: λ 0.1, over heads | +1.12 | '
                        '0.0042 / 0.0059 | 10 | 0.91–0.97; 75.00 → 70.00 |')
    with pytest.raises(SystemExit, match='is not a folder'):
        attention_table.main(['--folder', str(tmp_path / 'none')])


def test_attention_study_cells(tmp_path):
    # The study script runs each cell as study.py with the cell's data set,
    # folder and --set fields, then diagnose.py with the same fields (a
    # stand-in `python` prints the commands); an unknown cell is an error.
    fake = tmp_path / 'python'
    fake.write_text('#!/bin/bash\nprintf python; printf " %q" "$@"; echo\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}',
               ROOT=str(tmp_path / 'data'))
    script = str(REPO / 'benchmarks' / 'attention_study.sh')
    cells = ['cora-noise-gatv2', 'squirrel-gt', 'dictionary-lookup-gat',
             'minesweeper-gatv2', 'citeseer-noise-transformer']
    out = subprocess.run(['bash', script, *cells], env=env, text=True,
                         capture_output=True, check=True,
                         timeout=HANG_SECONDS).stdout
    commands = [shlex.split(line) for line in out.splitlines()
                if line.startswith('python')]
    wanted = [('cora', 'study/cora-noise/gatv2',
               ['edge_noise=0.5', 'conv=gatv2'], True),
              ('squirrel-filtered', 'study/squirrel-filtered/gt',
               ['hidden=64', 'model=platonov-gt'], True),
              ('dictionary-lookup', 'study/dictionary-lookup/gat',
               ['k=6', 'model=platonov-gat', 'layers=1', 'heads=1',
                'hidden=64', 'dropout=0', 'lr=0.001'], False),
              ('minesweeper', 'study/minesweeper/gatv2',
               ['model=platonov-gat', 'conv=gatv2'], True),
              ('citeseer', 'study/citeseer-noise/transformer',
               ['edge_noise=0.5', 'conv=transformer'], True)]
    study_runs = [c for c in commands if c[1] == 'benchmarks/study.py']
    assert len(study_runs) == 5
    for command, (dataset, folder, fields, variant) in zip(study_runs,
                                                           wanted):
        option = dict(zip(command[2::2], command[3::2]))
        assert option['--dataset'] == dataset
        assert option['--folder'] == folder
        assert option['--root'] == str(tmp_path / 'data')
        assert [command[i + 1] for i, word in enumerate(command)
                if word == '--set'] == fields
        assert ('ct.align_over=nodes,heads' in command) == variant
        study_args = study.parse_args(command[2:])
        assert study_args.final_seeds == 10 and study_args.peers == []
        assert study_args.device == 'cpu'  # DEVICE=cuda for a GPU
        # the paper's width and schedule (all 1000 steps) on minesweeper
        assert study_args.patience == (1000 if dataset == 'minesweeper'
                                       else 100)
    for command in commands:
        if command[1] == 'benchmarks/diagnose.py':
            assert '--attention-only' in command

    bad = subprocess.run(['bash', script, 'cora-gcn'], env=env, text=True,
                         capture_output=True, timeout=HANG_SECONDS)
    assert bad.returncode == 2 and "unknown cell 'cora-gcn'" in bad.stderr
