r"""Issue 30 for the study scripts: diagnose.py and selection.py check every
option before they write anything (walked from their parsers with the
table of `tests/bad_options.py`, as `tests/test_inputs.py` walks
study.py's); every option of study.py, diagnose.py and selection.py acts
where it is given or is refused (each script's MODES, walked); and the
manifest beside each script's runs file (study.json, diagnose.options.json,
selection.json) records every option that changes a run outside the run's
key, so that a rerun with another value of one is refused and leaves the
folder as it was. Every such mistake is one line, exit code 2."""
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import bad_options  # puts benchmarks/ on sys.path
import diagnose
import selection
import study
from align_gnn import cli
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
    assert code == 2 and "'align_weight' must be a finite number >= 0" in err
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


# Every option acts or is refused ############################################

SCRIPTS = {'study': study, 'diagnose': diagnose, 'selection': selection}
#: Per script, per option of its MODES: a command line where it acts on
#: nothing.
OUT_OF_MODE = {
    'study': {
        **{dest: ['--measure-workers', flag, value]
           for dest, flag, value in (
               ('folder', '--folder', 'x'), ('methods', '--methods', 'ct'),
               ('search_samples', '--search-samples', '1'),
               ('search_seeds', '--search-seeds', '1'),
               ('space', '--space', 'ct.rho=0.5'), ('peers', '--peers', ''),
               ('final_seeds', '--final-seeds', '1'),
               ('peer_seeds', '--peer-seeds', '0'),
               ('stage', '--stage', 'search'),
               ('workers', '--workers', '1'))},
        'measure_runs': ['--measure-runs', '2'],
    },
    'diagnose': {
        'seeds': ['--attention-only', '--seeds', '3'],
        'workers': ['--attention-only', '--workers', '1'],
        'trace_epochs': ['--attention-only', '--trace-epochs', '1'],
        'set': ['--method', 'mmd', '--setting', '{}', '--set', 'hidden=8'],
        'setting': ['--attention-only', '--setting', '{}'],
    },
    'selection': {},
}
#: Per script: command lines where every option of its MODES acts.
IN_MODE = {
    'study': [['--measure-workers', '--measure-runs', '2'],
              ['--folder', 'x', '--methods', 'ct', '--search-samples', '1',
               '--search-seeds', '1', '--space', 'ct.rho=0.5', '--peers', '',
               '--final-seeds', '1', '--peer-seeds', '0', '--stage',
               'search', '--workers', '1']],
    'diagnose': [['--seeds', '3', '--workers', '1', '--trace-epochs', '1',
                  '--method', 'mmd', '--setting', '{}'],
                 ['--attention-only', '--set', 'hidden=8', '--method', 'ct',
                  '--setting', '{}']],
    'selection': [[]],
}
MODE_CASES = [(name, dest) for name, script in SCRIPTS.items()
              for dest in sorted(script.MODES)]


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_every_option_has_a_mode(name):
    # Every option of the parser acts in every mode (EVERY_MODE) or in
    # some (MODES, with a command line here where it acts on nothing): a
    # new option fails here until it is placed.
    script = SCRIPTS[name]
    dests = {action.dest for action in script.make_parser()._actions}
    assert dests == set(script.MODES) | set(script.EVERY_MODE)
    assert not set(script.MODES) & set(script.EVERY_MODE)
    assert set(OUT_OF_MODE[name]) == set(script.MODES)


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_options_in_their_mode_are_accepted(name):
    script = SCRIPTS[name]
    given = set()
    for argv in IN_MODE[name]:
        script.parse_args(argv)  # no SystemExit
        given |= set(cli.given_options(script.make_parser(), argv))
    assert given >= set(script.MODES)


@pytest.mark.parametrize('name,dest', MODE_CASES)
def test_option_outside_its_mode(name, dest, tmp_path, monkeypatch, capsys):
    # Given where it acts on nothing, an option is refused in one line
    # naming it and where it acts, before anything is read or written.
    monkeypatch.chdir(tmp_path)
    script = SCRIPTS[name]
    flag = next(action.option_strings[0]
                for action in script.make_parser()._actions
                if action.dest == dest)
    with pytest.raises(SystemExit) as info:
        script.main(OUT_OF_MODE[name][dest])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count('\n') == 1, err
    assert err.startswith(f'error: argument {flag}: ')
    assert script.MODES[dest][1] in err and 'leave it out' in err
    assert list(tmp_path.iterdir()) == []


# The manifests: what a rerun may change #####################################

FAST = ['--methods', 'mmd', '--search-samples', '1', '--search-seeds', '1',
        '--final-seeds', '1', '--peer-seeds', '0', '--peers', '',
        '--workers', '1', '--epochs', '2', '--patience', '5']
#: Per script: the options of a quick finished folder, and another valid
#: value of every option its manifest records.
RERUNS = {
    'study': (FAST, {'--dataset': 'citeseer', '--set': 'lr=0.01',
                     '--epochs': '3', '--patience': '6'}),
    'diagnose': (['--method', 'mmd', '--setting', '{}', '--seeds', '1',
                  '--trace-epochs', '1', '--workers', '1', '--epochs', '2',
                  '--patience', '5'],
                 {'--dataset': 'citeseer', '--epochs': '3',
                  '--patience': '6'}),
    'selection': (['--seeds', '1', '--workers', '1', '--epochs', '2',
                   '--patience', '5'],
                  {'--dataset': 'citeseer', '--epochs': '3',
                   '--patience': '6'}),
}
#: What each manifest holds after the quick run.
HELD = {'study': dict(dataset='cora', set={}, epochs=2, patience=5),
        'diagnose': dict(dataset='cora', epochs=2, patience=5),
        'selection': dict(dataset='cora', epochs=2, patience=5)}
REFUSALS = [(name, option) for name in sorted(RERUNS)
            for option in sorted(RERUNS[name][1])]


def rerun(name, data_root, folder, *extra):
    SCRIPTS[name].main(['--root', str(data_root), '--folder', str(folder),
                        *RERUNS[name][0], *extra])


def study_main(data_root, folder, *extra):
    rerun('study', data_root, folder, *extra)


@pytest.fixture(scope='module')
def finished(tmp_path_factory, data_root):
    r"""A finished folder of a script, made once (a few runs of 2 epochs on
    Cora): :obj:`finished(name)`."""
    made = {}

    def get(name: str) -> Path:
        if name not in made:
            folder = tmp_path_factory.mktemp(name) / 'out'
            rerun(name, data_root, folder)
            made[name] = folder
        return made[name]

    return get


@pytest.fixture
def copy_of(finished, tmp_path, capsys):
    r"""A copy of a :func:`finished` folder for one test to rerun."""
    def get(name: str) -> Path:
        folder = Path(shutil.copytree(finished(name), tmp_path / name))
        capsys.readouterr()  # the first run's output, if made now
        return folder

    return get


@pytest.fixture
def folder(copy_of) -> Path:
    return copy_of('study')


def files(name: str, folder: Path) -> tuple:
    script = SCRIPTS[name]
    return folder / script.MANIFEST, folder / script.JOURNAL


def recorded(name: str) -> dict:
    script = SCRIPTS[name]
    return {action.option_strings[0]: action
            for action in study.recorded_options(script.make_parser(),
                                                 script.NOT_RECORDED)}


@pytest.mark.parametrize('name', sorted(RERUNS))
def test_every_recorded_option_has_another_value(name):
    # A manifest records every option but NOT_RECORDED's (which names
    # options of the parser only); the test below needs another value of
    # each recorded one.
    script = SCRIPTS[name]
    assert set(recorded(name)) == set(RERUNS[name][1])
    dests = {action.dest for action in script.make_parser()._actions}
    assert set(script.NOT_RECORDED) <= dests
    names = {script.MANIFEST for script in SCRIPTS.values()}
    assert len(names) == len(SCRIPTS)  # study/cora holds two of them


@pytest.mark.parametrize('name', sorted(RERUNS))
def test_manifest_records_the_options(name, finished):
    manifest, _ = files(name, finished(name))
    assert json.loads(manifest.read_text()) == HELD[name]


@pytest.mark.parametrize('name,option', REFUSALS)
def test_rerun_with_another_recorded_value_is_refused(name, option, copy_of,
                                                      data_root, capsys):
    folder = copy_of(name)
    manifest, journal = files(name, folder)
    before = bad_options.tree(folder)
    held = json.loads(manifest.read_text())
    with pytest.raises(SystemExit) as info:
        rerun(name, data_root, folder, option, RERUNS[name][1][option])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count('\n') == 1, err
    action = recorded(name)[option]
    was = study.as_options(action, held[action.dest])
    assert err.startswith(f"error: argument {option}: the runs in "
                          f"'{journal}' were made with {was} (recorded in "
                          f"'{manifest}'), not ")
    assert RERUNS[name][1][option] in err.split(' not ')[1]
    assert f'resume them with {was}, or give another --folder' in err
    assert bad_options.tree(folder) == before  # manifest, runs ...


@pytest.mark.parametrize('name', sorted(RERUNS))
@pytest.mark.parametrize('dataset', ['cora', 'CORA'])
def test_rerun_with_the_same_options_resumes(name, dataset, copy_of,
                                             data_root, capsys):
    # The same options (a named data set in any case: Cora is cora)
    # resume: no new run, the manifest as it was.
    folder = copy_of(name)
    manifest, journal = files(name, folder)
    runs, held = journal.read_bytes(), manifest.read_bytes()
    rerun(name, data_root, folder, '--dataset', dataset)
    captured = capsys.readouterr()
    assert '[1/' not in captured.out and captured.err == ''
    assert journal.read_bytes() == runs
    assert manifest.read_bytes() == held


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


@pytest.mark.parametrize('name,extra,runs', [
    ('diagnose', ['--seeds', '2', '--trace-epochs', '2'], 12),
    ('selection', ['--seeds', '2'], 4)])
def test_rerun_may_extend_the_runs(name, extra, runs, copy_of, data_root,
                                   capsys):
    # More seeds (in each run's key) and other traced epochs (part 1, made
    # anew) may differ: the rerun adds the runs it lacks.
    folder = copy_of(name)
    manifest, journal = files(name, folder)
    held, before = manifest.read_bytes(), journal.read_text()
    rerun(name, data_root, folder, *extra)
    assert capsys.readouterr().err == ''
    assert journal.read_text().startswith(before)
    assert len(journal.read_text().splitlines()) == runs
    assert manifest.read_bytes() == held


@pytest.mark.parametrize('name', sorted(RERUNS))
def test_runs_without_a_manifest_are_completed(name, copy_of, data_root,
                                               capsys):
    # A runs file made before its script kept a manifest: its runs are
    # taken to have been made with the values given now (a note says so),
    # which the manifest then records; from then on, others are refused.
    folder = copy_of(name)
    manifest, journal = files(name, folder)
    runs = journal.read_bytes()
    manifest.unlink()
    rerun(name, data_root, folder)
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(
        f"note: '{journal}' holds runs but there is no '{manifest}'")
    assert json.loads(manifest.read_text()) == HELD[name]
    assert journal.read_bytes() == runs
    with pytest.raises(SystemExit) as info:
        rerun(name, data_root, folder, '--epochs', '3')
    assert info.value.code == 2
    assert 'made with --epochs 2' in capsys.readouterr().err


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
    assert json.loads((folder / 'study.json').read_text()) == HELD['study']
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


CODE_SPAN = re.compile(r'`(python benchmarks/(?:diagnose|selection)\.py'
                       r'[^`]*)`')
CODE_LINE = re.compile(r'^ *(python benchmarks/(?:diagnose|selection)\.py'
                       r'(?:[^`\n\\]|\\\n)*)$', re.M)


def documented_commands() -> list:
    r"""(script, options) of every diagnose.py and selection.py command in
    the documentation (docs/*.md, benchmarks/README.md; code spans and
    code blocks, over several lines too) and on the first line of the
    committed outputs (diagnose.md, attention.md, a selection's
    table.md)."""
    texts = [path.read_text() for path in (
        *sorted((REPO / 'docs').glob('*.md')),
        REPO / 'benchmarks' / 'README.md')]
    texts += [path.read_text().splitlines()[0]
              for pattern in ('diagnose.md', 'attention.md', 'table.md')
              for path in sorted((REPO / 'study').rglob(pattern))]
    commands = []
    for text in texts:
        for pattern in (CODE_SPAN, CODE_LINE):
            for command in pattern.findall(text):
                words = shlex.split(command.replace('\\\n', ' '))
                commands.append((words[1].split('/')[1][:-3], words[2:]))
    return commands


def test_committed_runs_resume_under_their_commands(tmp_path, data_root,
                                                    capsys):
    # Every documented diagnose.py and selection.py command is accepted
    # (each option where it acts), and on a committed folder that holds
    # the script's runs (study/cora/diagnose.jsonl, study/cora/selection/
    # runs.jsonl ...), made before the scripts kept a manifest, the whole
    # check before writing passes: the manifest is completed with the
    # command's values, not refused.
    commands = documented_commands()
    assert {name for name, _ in commands} == {'diagnose', 'selection'}
    journals = {path.parent.relative_to(REPO) for name in ('diagnose',
                                                           'selection')
                for path in (REPO / 'study').rglob(SCRIPTS[name].JOURNAL)
                if name == 'diagnose' or path.parent.name == 'selection'}
    resumed = set()
    for number, (name, command) in enumerate(commands):
        script = SCRIPTS[name]
        args = script.parse_args(command)
        folder = REPO / args.folder
        if not (folder / script.JOURNAL).is_file() or getattr(
                args, 'attention_only', False):
            continue
        copy = tmp_path / f'{number}'
        copy.mkdir()
        for file in (script.JOURNAL, script.MANIFEST, 'chosen.json'):
            if (folder / file).is_file():
                shutil.copy(folder / file, copy / file)
        parser = script.make_parser()
        args = script.parse_args([*command, '--folder', str(copy),
                                  '--root', str(data_root)], parser)
        if name == 'selection':
            script.validate(args, parser, script.selection_tasks(args))
        else:
            script.validate(args, parser)
        if not (folder / script.MANIFEST).is_file():
            assert args.manifest == {
                action.dest: getattr(args, action.dest)
                for action in recorded(name).values()}
            assert 'holds runs but there is no' in capsys.readouterr().err
        resumed.add(folder.relative_to(REPO))
    assert journals and journals <= resumed, journals - resumed
