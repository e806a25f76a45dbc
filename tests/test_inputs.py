r"""The classes of issue 30, each walked whole: derived data never stands in
for its source (every data source's `processed/`), every results file goes
through the one writer (special files, links, a full disk, damaged
journals), the data loaders' messages, and study.py validating before it
writes."""
import ast
import errno
import gzip
import json
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train_gat
from align_gnn import outputs
from align_gnn.checkpoint import Checkpoint
from align_gnn.data import (
    SOURCES,
    DataError,
    dictionary_lookup,
    heterophilous,
    load_dataset,
    load_graph_file,
    ogb,
    planetoid,
)
from align_gnn.data.utils import (
    FINGERPRINT_FILE,
    library_message,
    loader_error,
    raw_fingerprint,
)
from align_gnn.outputs import (
    SPECIAL_FILES,
    WriteError,
    append_line,
    atomic_write,
    read_lines,
)
import bad_options
from conftest import HANG_SECONDS
from fakes import write_fake_arxiv, write_fake_planetoid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import study  # noqa: E402

NAMED = [(source, name) for source in SOURCES for name in source.NAMES]


def fill(source, name: str, root: Path, hetero_root: Path):
    r"""The raw files of the data set :obj:`name` under :obj:`root`, in the
    layout its loader reads; a new source needs an entry here."""
    if source is planetoid:
        write_fake_planetoid(root / planetoid.NAMES[name] / 'raw', name)
    elif source is heterophilous:
        folder = heterophilous.folder(name)
        shutil.copytree(hetero_root / folder / 'raw', root / folder / 'raw')
    elif source is ogb:
        write_fake_arxiv(root)
    elif source is not dictionary_lookup:  # generated: no files
        pytest.fail(f'no raw files for the data source {source.__name__}: '
                    f'add them to fill()')


def files(folder: Path):
    return {path: path.stat().st_mtime_ns for path in folder.rglob('*')
            if path.is_file() and path.name != FINGERPRINT_FILE}


def alter(path: Path):
    # Other bytes that the loader still reads: a gzip file gets an empty
    # second member, any other file (pickle, npz) a trailing byte.
    with open(path, 'ab') as f:
        f.write(gzip.compress(b'') if path.suffix == '.gz' else b'\n')


def built_from_raw(source, name: str, root: Path) -> bool:
    processed = Path(source.processed_dir(name, root))
    stored = json.loads((processed / FINGERPRINT_FILE).read_text())
    return stored == raw_fingerprint(source.raw_files(name, root))


# 1. Derived data never stands in for its source #############################


@pytest.mark.parametrize('source,name', NAMED, ids=[n for _, n in NAMED])
def test_processed_follows_raw(source, name, tmp_path, hetero_root):
    # Built with the fingerprint of its raw files; raw files changed, or
    # the fingerprint gone: rebuilt (every processed file written again).
    fill(source, name, tmp_path, hetero_root)
    if source.processed_dir(name, tmp_path) is None:  # nothing derived
        before = set(tmp_path.rglob('*'))
        load_dataset(name, str(tmp_path))
        assert set(tmp_path.rglob('*')) == before
        return
    first = load_dataset(name, str(tmp_path))
    assert built_from_raw(source, name, tmp_path)
    processed = Path(source.processed_dir(name, tmp_path))
    for change in ('raw', 'fingerprint'):
        built = files(processed)
        if change == 'raw':
            alter(Path(source.raw_files(name, tmp_path)[0]))
        else:
            (processed / FINGERPRINT_FILE).unlink()
        again = load_dataset(name, str(tmp_path))
        now = files(processed)
        assert set(built) <= set(now)
        assert all(now[path] != built[path] for path in built), change
        assert built_from_raw(source, name, tmp_path)
        assert torch.equal(again.x, first.x)
    built = files(processed)
    load_dataset(name, str(tmp_path))  # unchanged: used as it is
    assert files(processed) == built


PROCESSED = [(source, name) for source, name in NAMED
             if source.processed_dir(name, 'root') is not None]


@pytest.mark.parametrize('index', range(len(PROCESSED)),
                         ids=[name for _, name in PROCESSED])
def test_processed_of_another_source(index, tmp_path, hetero_root):
    # Another data set's processed/ (tolokers' in minesweeper's folder,
    # CiteSeer's in Cora's, ...) is rebuilt from the raw files.
    source, name = PROCESSED[index]
    other, other_name = PROCESSED[(index + 1) % len(PROCESSED)]
    fill(source, name, tmp_path / 'a', hetero_root)
    fill(other, other_name, tmp_path / 'b', hetero_root)
    expected = load_dataset(name, str(tmp_path / 'a'))
    load_dataset(other_name, str(tmp_path / 'b'))
    target = Path(source.processed_dir(name, tmp_path / 'a'))
    shutil.rmtree(target)
    shutil.copytree(other.processed_dir(other_name, tmp_path / 'b'), target)
    data = load_dataset(name, str(tmp_path / 'a'))
    assert data.num_nodes == expected.num_nodes
    assert torch.equal(data.x, expected.x)
    assert built_from_raw(source, name, tmp_path / 'a')


# 2. The one writer ###########################################################


def special_file(kind: str, folder: Path) -> Path:
    r"""A file of :obj:`kind` (see :data:`~align_gnn.outputs.SPECIAL_FILES`)
    in :obj:`folder`, or a link to one."""
    path = folder / 'special'
    if kind == 'a directory':
        path.mkdir()
    elif kind == 'a FIFO (named pipe)':
        os.mkfifo(path)
    elif kind in ('a character device', 'a block device'):
        # A node of no driver (major 240: local use) here, never a link to
        # a device of the machine: a writer that failed the test would
        # replace it (as root) or write to it.
        mode = stat.S_IFCHR if kind == 'a character device' else stat.S_IFBLK
        try:
            os.mknod(path, mode | 0o600, os.makedev(240, 0))
        except PermissionError:
            pytest.skip(f'creating {kind} needs root')
    elif kind == 'a socket':
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
    else:
        pytest.fail(f'no example of {kind}: add one to special_file()')
    return path


@pytest.mark.parametrize('kind', [kind for _, kind in SPECIAL_FILES])
def test_writer_refuses_special_files(kind, tmp_path):
    path = special_file(kind, tmp_path)
    mode, is_link = os.stat(path).st_mode, path.is_symlink()
    for write in (lambda: atomic_write(str(path), lambda f: f.write('x')),
                  lambda: append_line(str(path), '{}'),
                  lambda: outputs.check_output(str(path))):
        with pytest.raises(ValueError) as info:
            write()
        assert f'is {kind}, not a regular file' in str(info.value)
        assert '\n' not in str(info.value)
        assert os.stat(path).st_mode == mode and path.is_symlink() == is_link
    assert sorted(os.listdir(tmp_path)) == ['special']  # nothing left


def test_writer_follows_links(tmp_path):
    target = tmp_path / 'target.json'
    target.write_text('old')
    link = tmp_path / 'link.json'
    link.symlink_to(target)
    atomic_write(str(link), lambda f: f.write('new'))
    append_line(str(link), '{"a": 1}')
    assert link.is_symlink() and target.read_text() == 'new{"a": 1}\n'


def test_out_stdout_keeps_the_link(tmp_path):
    # --out /dev/stdout: a link to the process's standard output (here a
    # pipe); a link of our own to it, so that a failing writer replaces
    # that, not the machine's /dev/stdout.
    out = tmp_path / 'stdout'
    out.symlink_to('/dev/stdout')
    result = train_gat_cli(tmp_path, '--out', str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: argument --out: cannot write '{out}' ('{out}' is a FIFO "
        f"(named pipe), not a regular file; give the path of a file); choose "
        f"a writable file (see --help)"]
    assert out.is_symlink()


def train_gat_cli(folder: Path, *args):
    import subprocess
    edges = folder / 'g.txt'
    edges.write_text(''.join(f'{i} {(i + 1) % 12}\n' for i in range(12)))
    nodes = folder / 'nodes.csv'
    nodes.write_text('node,label\n' + ''.join(f'{i},{i % 2}\n'
                                              for i in range(12)))
    return subprocess.run(
        [sys.executable, str(REPO / 'train_gat.py'), '--dataset', str(edges),
         '--node-attributes', str(nodes), '--epochs', '2', '--quiet',
         *args], cwd=folder, capture_output=True, text=True,
        timeout=HANG_SECONDS)


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'r.json'
    path.write_text('old')

    def write(f):
        f.write('half')
        no_space()

    with pytest.raises(WriteError, match=r"writing '.*r.json' failed \(No "
                       r"space left on device\); the file that was there"):
        atomic_write(str(path), write)
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['r.json']

    journal = tmp_path / 'runs.jsonl'
    append_line(str(journal), '{"a": 1}')
    real_write = os.write

    def half(fd, data):  # half the line written, then the disk is full
        monkeypatch.setattr(os, 'write', no_space)
        return real_write(fd, data[:len(data) // 2])

    monkeypatch.setattr(os, 'write', half)
    with pytest.raises(WriteError, match='No space left on device'):
        append_line(str(journal), '{"b": 2}')
    monkeypatch.undo()
    assert journal.read_text() == '{"a": 1}\n'  # no part of a line


def test_journal_damaged_line(tmp_path):
    # A damaged line inside: an error naming it, nothing dropped or cut; a
    # last line cut short by a kill: left out (and cut off with repair).
    path = tmp_path / 'runs.jsonl'
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(ValueError, match=r"runs.jsonl' line 2 is damaged"):
        read_lines(str(path), repair=True)
    assert path.read_text() == '{"a": 1}\n{"a": \n{"a": 3}\n'
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_lines(str(path)) == [{'a': 1}, {'a': 2}]
    assert read_lines(str(path), repair=True) == [{'a': 1}, {'a': 2}]
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'


def test_study_damaged_runs_file(tmp_path, data_root, capsys):
    (tmp_path / 'runs.jsonl').write_text('{"key": 1, "result": {}}\nx\n'
                                         '{"key": 2, "result": {}}\n')
    with pytest.raises(SystemExit) as info:
        study.main(['--root', str(data_root), '--folder', str(tmp_path),
                    '--methods', 'mmd', '--search-samples', '1',
                    '--search-seeds', '1'])
    assert info.value.code == 2  # found before anything is written
    assert re.match(r"error: '.*runs.jsonl' line 2 is damaged",
                    capsys.readouterr().err)
    assert not (tmp_path / 'study.json').exists()
    for script, name, argv in (
            ('selection.py', 'runs.jsonl', ['--seeds', '1', '--epochs', '1',
                                            '--workers', '1']),
            ('diagnose.py', 'diagnose.jsonl', ['--method', 'mmd',
                                               '--setting', '{}'])):
        (tmp_path / name).write_text('{"key": 1, "result": {}}\nx\n')
        result = subprocess.run(
            [sys.executable, str(REPO / 'benchmarks' / script), '--root',
             str(data_root), '--folder', str(tmp_path), *argv],
            capture_output=True, text=True, timeout=HANG_SECONDS)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"error: '{tmp_path / name}' line 2 is damaged"), result.stderr
    (tmp_path / 'runs.jsonl').write_text('[1]\n')
    with pytest.raises(ValueError, match='line 1 is not a record of a run'):
        study.Store(str(tmp_path / 'runs.jsonl'))


@pytest.mark.parametrize('checkpoint', [False, True])
def test_full_disk_at_the_results_file(tmp_path, monkeypatch, capsys,
                                       checkpoint):
    # The finished runs are kept: in the checkpoint, else in a journal
    # beside the results file; the file that was there is left as it was.
    out = tmp_path / 'r.json'
    out.write_text(json.dumps(dict(dataset='x', config={}, runs=[],
                                   summary={})))
    before = out.read_text()
    real_save = train_gat.save_results

    def save_results(results, path):
        if path == str(out):
            raise WriteError(f"writing '{path}' failed (No space left on "
                             f"device); the file that was there is left "
                             f"as it was")
        real_save(results, path)

    monkeypatch.setattr(train_gat, 'save_results', save_results)
    # train_gat.main adds a handler of its notes: dropped after the test.
    monkeypatch.setattr(logging.getLogger('align_gnn'), 'handlers', [])
    edges = tmp_path / 'g.txt'
    edges.write_text(''.join(f'{i} {(i + 1) % 12}\n' for i in range(12)))
    nodes = tmp_path / 'nodes.csv'
    nodes.write_text('node,label\n' + ''.join(f'{i},{i % 2}\n'
                                              for i in range(12)))
    extra = ['--checkpoint', str(tmp_path / 'ckpt')] if checkpoint else []
    code = train_gat.main(['--dataset', str(edges), '--node-attributes',
                           str(nodes), '--epochs', '2', '--runs', '2',
                           '--quiet', '--align', 'none', '--overwrite',
                           '--out', str(out), *extra])
    assert code == 1
    err = [line for line in capsys.readouterr().err.splitlines()
           if not line.startswith('note:')]
    assert len(err) == 1 and err[0].startswith(
        f"error: writing '{out}' failed (No space left on device)")
    assert out.read_text() == before
    if checkpoint:
        path = tmp_path / 'ckpt' / Checkpoint.FILE
        assert f'kept in {path}' in err[0]
        state = torch.load(path, weights_only=True)
        assert len(state['finished']) == 2
    else:
        journal = tmp_path / 'r.unsaved.json'
        assert f'kept in {journal}' in err[0]
        assert len(json.loads(journal.read_text())['runs']) == 2


WRITES = ('json.dump', 'pickle.dump', 'torch.save', 'np.save', 'np.savez',
          'os.open', 'os.replace', 'os.rename', 'os.truncate',
          'tempfile.mkstemp', 'shutil.copy', 'shutil.copyfile',
          'shutil.copytree', 'shutil.move')
METHOD_WRITES = ('savefig', 'write_text', 'write_bytes', 'to_csv')


def writes_outside_the_writer(path: Path):
    r"""(line, call) of each write in the file :obj:`path` that is not made
    through :func:`~align_gnn.outputs.atomic_write` (a call of
    :data:`WRITES` or :data:`METHOD_WRITES` outside the arguments of an
    :obj:`atomic_write(...)` call, or :func:`open` in a writing mode)."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree)
               for child in ast.iter_child_nodes(node)}

    def inside_writer(node) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.Call) and ast.unparse(
                    node.func).split('.')[-1] == 'atomic_write':
                return True
        return False

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        modes = [*node.args[1:2], *(k.value for k in node.keywords
                                    if k.arg == 'mode')]
        if name == 'open':
            if modes and not (isinstance(modes[0], ast.Constant)
                              and not set(modes[0].value) & set('wax+')):
                found.append((node.lineno, f'open({ast.unparse(modes[0])})'))
        elif (name in WRITES or name.split('.')[-1] in METHOD_WRITES) and (
                not inside_writer(node)):
            found.append((node.lineno, name))
    return found


def test_results_written_only_through_the_writer():
    # Every file of align_gnn/, benchmarks/ and train_gat.py writes files
    # only through align_gnn.outputs (atomic_write, append_line); the lock
    # files of outputs.FileLock are the writer's own.
    sources = [*sorted((REPO / 'align_gnn').rglob('*.py')),
               *sorted((REPO / 'benchmarks').glob('*.py')),
               REPO / 'train_gat.py']
    allowed = {REPO / 'align_gnn' / 'outputs.py'}
    found = {str(path.relative_to(REPO)): writes_outside_the_writer(path)
             for path in sources if path not in allowed}
    assert {path: calls for path, calls in found.items() if calls} == {}


# 3. The loaders' messages ####################################################


@pytest.mark.parametrize('err,says,not_says', [
    (PermissionError(errno.EACCES, 'Permission denied', '/d/processed'),
     'is read-only', 'corrupt'),
    (OSError(errno.EROFS, 'Read-only file system', '/d/processed'),
     'is read-only', 'corrupt'),
    (IsADirectoryError(errno.EISDIR, 'Is a directory', '/d/raw/x.npz'),
     "'/d/raw/x.npz' is a directory", 'corrupt'),
    (__import__('pickle').UnpicklingError(
        'Weights only load failed. This file can still be loaded, to do so '
        'you have two options, do those steps only if you trust the source '
        'of the checkpoint. (1) ... weights_only=False ...'),
     'holds Python objects other than tensors', 'weights_only'),
    (ValueError('Object arrays cannot be loaded when allow_pickle=False'),
     'holds Python objects, not arrays', 'allow_pickle'),
])
def test_loader_error(err, says, not_says):
    try:
        raise RuntimeError('wrapped by the library') from err
    except RuntimeError as wrapped:
        for raised in (err, wrapped):
            message = str(loader_error('x', '/d', raised,
                                       'a file is corrupt: copy it again'))
            if raised is wrapped and not isinstance(err, OSError):
                continue  # the library's own message is the wrapper's
            assert says in message and not_says not in message
            assert '\n' not in message


@pytest.mark.parametrize('index', range(len(PROCESSED)),
                         ids=[name for _, name in PROCESSED])
def test_read_only_root(index, tmp_path, hetero_root, monkeypatch):
    # Every source with processed/: a root that cannot be written says so.
    from torch_geometric.io import fs

    source, name = PROCESSED[index]
    fill(source, name, tmp_path, hetero_root)

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, 'Permission denied', path)

    monkeypatch.setattr(fs, 'makedirs', refuse)
    monkeypatch.setattr(os, 'makedirs', refuse)
    with pytest.raises(DataError, match='is read-only') as info:
        load_dataset(name, str(tmp_path))
    assert 'corrupt' not in str(info.value)


def test_library_advice_is_ours(tmp_path, hetero_root):
    # numpy's allow_pickle advice, for every source reading .npz files.
    import numpy as np
    for source, name in NAMED:
        if source is not heterophilous:
            continue
        root = tmp_path / name
        fill(source, name, root, hetero_root)
        path = Path(heterophilous.raw_path(name, root))
        with np.load(path) as raw:
            arrays = dict(raw)
        arrays['node_features'] = arrays['node_features'].astype(object)
        np.savez(path.with_suffix(''), **arrays)
        with pytest.raises(DataError) as info:
            load_dataset(name, str(root))
        assert 'allow_pickle' not in str(info.value), name
        assert 'holds Python objects' in str(info.value), name
    assert 'weights_only' not in library_message(
        __import__('pickle').UnpicklingError('Weights only load failed. '
                                             'Use weights_only=False'))


def test_graph_file_messages(tmp_path):
    edges = tmp_path / 'g.txt'
    edges.write_text('a b\nb c\nc a\n')
    nodes = tmp_path / 'nodes.csv'
    nodes.write_text('node,label,x\na,0,1\nb,1,nan\nc,0,2\n')
    with pytest.raises(DataError) as info:
        load_graph_file(str(edges), feature_attr=['x'],
                        node_attributes=str(nodes))
    assert str(info.value) == (
        f"'{nodes}': the features of 1 node(s) are NaN or inf (first: node "
        f"'b', attribute(s) x); give finite numbers")
    folder = tmp_path / 'graph.graphml'
    folder.mkdir()
    with pytest.raises(DataError, match=r"graph.graphml' is a directory, "
                       r"not a graph file"):
        load_graph_file(str(folder))
    with pytest.raises(DataError, match=r"nodes.csv' is a directory, not a "
                       r"CSV file of node attributes"):
        nodes.unlink()
        nodes.mkdir()
        load_graph_file(str(edges), node_attributes=str(nodes))
    with pytest.raises(SystemExit):
        train_gat.parse_args(['--dataset', str(folder)])


# 4. study.py validates before it writes ######################################


STUDY_CASES = bad_options.cases(study.make_parser())


def test_every_study_option_is_walked():
    # An option without bad values in tests/bad_options.py is one whose
    # every value is valid (bad_options.UNCHECKED): a new one must be added.
    assert bad_options.unwalked(study.make_parser()) == set()


@pytest.mark.parametrize('option,value', STUDY_CASES)
def test_study_validates_before_writing(option, value, tmp_path, data_root,
                                        capsys):
    folder = tmp_path / 'study'
    with pytest.raises(SystemExit) as info:
        study.main(['--root', str(data_root), '--folder', str(folder),
                    '--search-samples', '2', '--search-seeds', '1',
                    '--final-seeds', '1', '--peer-seeds', '1',
                    option, value])
    assert info.value.code == 2  # every mistake, as the parser's
    message = capsys.readouterr().err
    assert message.count('\n') == 1 and message.startswith('error: ')
    assert not folder.exists()  # nothing written
