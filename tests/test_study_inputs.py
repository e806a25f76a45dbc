r"""Issue 30 for the study scripts: diagnose.py and selection.py check every
option before they write anything (walked from their parsers with the
table of `tests/bad_options.py`, as `tests/test_inputs.py` walks
study.py's), and a study folder's study.json records every option of
study.py that changes a run outside the run's key, so that a rerun with
another value of one is refused and leaves the folder as it was."""
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import bad_options  # puts benchmarks/ on sys.path
import diagnose
import selection
import study
from conftest import HANG_SECONDS

REPO = Path(__file__).resolve().parents[1]

# The options every case of a script starts from (small, so that a value
# the script wrongly accepts costs seconds, not hours); the bad value comes
# last and wins.
BASE = {
    'diagnose': ['--method', 'mmd', '--setting', '{}', '--seeds', '1',
                 '--epochs', '1', '--trace-epochs', '1', '--workers', '1'],
    'selection': ['--seeds', '1', '--epochs', '1', '--workers', '1'],
}
MODES = {  # diagnose.py's two modes check alike
    'diagnose': (diagnose, BASE['diagnose']),
    'diagnose --attention-only': (diagnose,
                                  BASE['diagnose'] + ['--attention-only']),
    'selection': (selection, BASE['selection']),
}
CASES = [(mode, option, value) for mode, (script, _) in MODES.items()
         for option, value in bad_options.cases(script.make_parser())]


@pytest.mark.parametrize('script', [diagnose, selection],
                         ids=lambda script: script.__name__)
def test_every_option_is_walked(script):
    # A new option needs bad values in tests/bad_options.py (or a place in
    # its UNCHECKED, with the reason).
    assert bad_options.unwalked(script.make_parser()) == set()


@pytest.mark.parametrize('mode,option,value', CASES)
def test_validates_before_writing(mode, option, value, tmp_path, data_root,
                                  capsys):
    script, base = MODES[mode]
    folder = tmp_path / 'out'
    with pytest.raises(SystemExit) as info:
        script.main(['--root', str(data_root), '--folder', str(folder),
                     *base, option, value])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.startswith('error: ') and err.count('\n') == 1, err
    assert bad_options.tree(tmp_path) == {}  # nothing written


def diagnose_error(argv, capsys) -> tuple:
    with pytest.raises(SystemExit) as info:
        diagnose.main(argv)
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: '), err
    return info.value.code, err


def test_diagnose_checks_the_study_folder(tmp_path, data_root, hetero_root,
                                          capsys):
    # The aligned model comes from the folder's chosen.json: a folder
    # without one, a divergence it did not choose, a chosen.json that is
    # not study.py's, and parts 1 and 3 on a data set whose model is not
    # the two-layer GAT are one line each, before anything is written.
    root = ['--root', str(data_root), '--seeds', '1', '--epochs', '1',
            '--trace-epochs', '1']
    folder = tmp_path / 'study'
    folder.mkdir()
    argv = [*root, '--folder', str(folder)]
    code, err = diagnose_error(argv, capsys)
    assert code == 2 and 'argument --folder' in err and 'chosen.json' in err
    (folder / 'chosen.json').write_text(json.dumps({'best': {'ct': {
        'setting': {'align_weight': 0.1}, 'val_acc': 0.8}}}))
    code, err = diagnose_error([*argv, '--method', 'mmd'], capsys)
    assert code == 2 and "settings of ct (chosen.json), not of mmd" in err
    (folder / 'chosen.json').write_text(json.dumps({'best': {'ct': {
        'setting': {'align_weight': -1}, 'val_acc': 0.8}}}))
    code, err = diagnose_error(argv, capsys)
    assert code == 2 and "'align_weight' must be >= 0" in err
    (folder / 'chosen.json').write_text('[]')
    code, err = diagnose_error(argv, capsys)
    assert code == 2 and 'is not a chosen.json of study.py' in err
    (folder / 'chosen.json').unlink()
    code, err = diagnose_error(
        ['--root', str(hetero_root), '--dataset', 'chameleon-filtered',
         '--folder', str(folder), '--method', 'mmd', '--setting', '{}'],
        capsys)
    assert code == 2 and 'give --attention-only' in err
    assert bad_options.tree(tmp_path) == {}


# study.json: what a rerun may change ########################################

FAST = ['--methods', 'mmd', '--search-samples', '1', '--search-seeds', '1',
        '--final-seeds', '1', '--peer-seeds', '0', '--peers', '',
        '--workers', '1', '--epochs', '2', '--patience', '5']
#: Another valid value of every option study.json records.
OTHER = {'--dataset': 'citeseer', '--set': 'lr=0.01', '--epochs': '3',
         '--patience': '6'}


def study_main(data_root, folder, *extra):
    study.main(['--root', str(data_root), '--folder', str(folder), *FAST,
                *extra])


@pytest.fixture(scope='module')
def finished(tmp_path_factory, data_root) -> Path:
    r"""A finished study folder (3 runs of 2 epochs on Cora)."""
    folder = tmp_path_factory.mktemp('finished') / 'study'
    study_main(data_root, folder)
    return folder


@pytest.fixture
def folder(finished, tmp_path) -> Path:
    r"""A copy of :func:`finished` for one test to rerun."""
    return Path(shutil.copytree(finished, tmp_path / 'study'))


def recorded():
    return {action.option_strings[0]: action
            for action in study.recorded_options(study.make_parser())}


def test_every_recorded_option_has_another_value():
    # study.json records every option but NOT_RECORDED's (which names
    # options of the parser only); the test below needs another value of
    # each recorded one.
    assert set(recorded()) == set(OTHER)
    dests = {action.dest for action in study.make_parser()._actions}
    assert set(study.NOT_RECORDED) <= dests


def test_study_json_records_the_options(finished):
    assert json.loads((finished / 'study.json').read_text()) == dict(
        dataset='cora', set={}, epochs=2, patience=5)


@pytest.mark.parametrize('option', sorted(OTHER))
def test_rerun_with_another_recorded_value_is_refused(option, folder,
                                                      data_root, capsys):
    before = bad_options.tree(folder)
    held = json.loads((folder / 'study.json').read_text())
    with pytest.raises(SystemExit) as info:
        study_main(data_root, folder, option, OTHER[option])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count('\n') == 1, err
    action = recorded()[option]
    was = study.as_options(action, held[action.dest])
    assert err.startswith(f'error: argument {option}: ')
    assert f"made with {was} (recorded in '{folder / 'study.json'}')" in err
    assert OTHER[option] in err.split(' not ')[1]
    assert f'resume them with {was}, or give another --folder' in err
    assert bad_options.tree(folder) == before  # study.json, runs.jsonl ...


def test_rerun_with_the_same_options_resumes(folder, data_root, capsys):
    runs = (folder / 'runs.jsonl').read_bytes()
    manifest = (folder / 'study.json').read_bytes()
    study_main(data_root, folder)
    out = capsys.readouterr().out
    assert 'search: 0 new run(s)' in out and 'final: 0 new run(s)' in out
    assert (folder / 'runs.jsonl').read_bytes() == runs
    assert (folder / 'study.json').read_bytes() == manifest


def test_rerun_may_extend_the_study(folder, data_root, capsys):
    # Options in each run's key (here: the final seeds) and those that do
    # not change a run (--workers, --stage) may differ: the rerun makes
    # the runs it lacks and keeps the others.
    manifest = (folder / 'study.json').read_bytes()
    study_main(data_root, folder, '--final-seeds', '2', '--workers', '2')
    assert 'final: 2 new run(s)' in capsys.readouterr().out
    study_main(data_root, folder, '--final-seeds', '2', '--stage', 'search')
    assert 'search: 0 new run(s)' in capsys.readouterr().out
    assert (folder / 'study.json').read_bytes() == manifest


def test_older_study_json_is_completed(folder, data_root, capsys):
    # A study.json of an older study.py (the data set and --set only): its
    # runs are taken to have been made with the values given now, which it
    # then records; from then on, others are refused.
    (folder / 'study.json').write_text('{"dataset": "cora", "set": {}}')
    study_main(data_root, folder)
    captured = capsys.readouterr()
    assert 'final: 0 new run(s)' in captured.out
    assert captured.err.count('\n') == 1 and captured.err.startswith(
        "note: ") and 'does not record --epochs, --patience' in captured.err
    assert json.loads((folder / 'study.json').read_text()) == dict(
        dataset='cora', set={}, epochs=2, patience=5)
    with pytest.raises(SystemExit):
        study_main(data_root, folder, '--epochs', '3')
    assert 'made with --epochs 2' in capsys.readouterr().err


def script_commands(tmp_path) -> dict:
    r"""study.py's command of every cell of attention_study.sh by folder
    (a stand-in `python` prints the commands)."""
    fake = tmp_path / 'bin' / 'python'
    fake.parent.mkdir()
    fake.write_text('#!/bin/bash\nprintf python; printf " %q" "$@"; echo\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{fake.parent}:{os.environ["PATH"]}')
    out = subprocess.run(['bash', str(REPO / 'benchmarks' /
                                      'attention_study.sh')],
                         env=env, text=True, capture_output=True,
                         check=True, timeout=HANG_SECONDS).stdout
    commands = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if words[:2] == ['python', 'benchmarks/study.py']:
            commands[words[words.index('--folder') + 1]] = words[2:]
    return commands


def test_committed_studies_resume_under_their_commands(tmp_path, capsys):
    # Every committed study folder accepts the commands that made it (the
    # first line of its table.md, attention_study.sh's cell): its
    # study.json, written before it recorded --epochs and --patience, is
    # completed with theirs, not refused.
    cells = script_commands(tmp_path)
    paths = sorted((REPO / 'study').rglob('study.json'))
    assert paths
    for path in paths:
        name = str(path.parent.relative_to(REPO))
        commands = [cells[name]] if name in cells else []
        table = path.parent / 'table.md'
        if table.is_file():
            commands.append(shlex.split(
                table.read_text().splitlines()[0].split('`')[1])[2:])
        assert commands, f'{name}: no command made it'
        held = json.loads(path.read_text())
        for number, command in enumerate(commands):
            copy = tmp_path / f'{number}' / name
            copy.mkdir(parents=True)
            shutil.copy(path, copy / 'study.json')
            args = study.parse_args([*command, '--folder', str(copy)])
            manifest = study.check_manifest(
                study.make_parser(), args, str(copy / 'study.json'),
                str(copy / 'runs.jsonl'), study.NOT_RECORDED, write=False)
            if manifest is not None:  # completed with the command's values
                assert {k: manifest[k] for k in held} == held
                assert (manifest['epochs'], manifest['patience']) == (
                    args.epochs, args.patience)
    capsys.readouterr()
