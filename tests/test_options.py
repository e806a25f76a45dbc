r"""Every option acts or is refused (issue 30): an option of `Config` or a
flag of train_gat.py given where it would act on nothing is refused in one
line, walked over every option (generated from `Config`'s fields and the
parser, so that a new option fails here until it has a scope)."""
from dataclasses import fields

import pytest

import train_gat
from align_gnn.config import Config
from align_gnn.options import EVERYWHERE, SCOPES

# A config where no scoped option acts: Cora, a peer (no divergence, its
# own layer), the GAT model, full-batch, no attack; for the options of
# full-batch training, neighbour sampling (BATCHED).
OUTSIDE = dict(dataset='cora', methods=['gatv2'])
BATCHED = {'capture'}
# Per scoped option: a value other than its default, and a config where
# it acts.
ACTING = {
    'k': (6, dict(dataset='dictionary-lookup')),
    'label_attr': ('y', dict(dataset='g.graphml')),
    'feature_attr': (['a', 'b'], dict(dataset='g.graphml')),
    'node_attributes': ('nodes.csv', dict(dataset='g.edgelist')),
    'split': ([0.5, 0.25, 0.25], dict(dataset='g.graphml')),
    'align_weight': (0.3, dict(methods=['mmd'])),
    'align_samples': (64, dict(methods=['sinkhorn'])),
    'align_warmup': (5, dict(methods=['adversarial'])),
    'align_over': ('heads', dict(methods=['ct'])),
    'rho': (0.25, dict(methods=['none', 'ct'])),
    'adversary_channels': (8, dict(methods=['adversarial'])),
    'adversary_lr_scale': (0.5, dict(methods=['ct'])),
    'conv': ('gatv2', dict(methods=['none'])),
    'fanout': ([5, 5], dict(batch_size=64)),
    'budgets': ([0.2], dict(attack='prbcd')),
    'attack_epochs': (3, dict(attack='prbcd')),
    'hidden': (64, dict(model='platonov-gt')),
    'heads': (2, dict(model='platonov-gat')),
    'layers': (2, dict(dataset='ogbn-arxiv', methods=['none'])),
    'dropout': (0.5, dict(model='platonov-gat-sep')),
    'edge_drop': (0.2, dict(dataset='ogbn-arxiv', methods=['none'])),
    'norm_adj': (False, dict(dataset='ogbn-arxiv', methods=['none'])),
    'att_dst': (True, dict(dataset='ogbn-arxiv', methods=['none'])),
    'capture': (False, dict(methods=['none'])),
}
CHOOSE_SCOPES = {'dataset', 'methods', 'labels'}  # checked in Config


def test_every_config_option_has_a_scope():
    names = {field.name for field in fields(Config)}
    assert set(SCOPES) | set(EVERYWHERE) | CHOOSE_SCOPES == names
    assert not set(SCOPES) & set(EVERYWHERE)
    assert set(ACTING) == set(SCOPES)  # a new scope needs a case here


@pytest.mark.parametrize('name', sorted(SCOPES))
def test_config_option_outside_its_scope(name):
    value, acting = ACTING[name]
    config = Config(**acting, **{name: value})  # acts: accepted
    assert getattr(config, name) in (value, list(value) if isinstance(
        value, list) else value)
    outside = dict(OUTSIDE, batch_size=64) if name in BATCHED else OUTSIDE
    with pytest.raises(ValueError) as info:
        Config(**outside, **{name: value})
    message = str(info.value)
    assert message.startswith(f"'{name}' must be ") and '\n' not in message
    assert 'acts on nothing here' in message and SCOPES[name][1] in message


def cli(capsys, *argv):
    try:
        code = train_gat.main([*argv, '--quiet'])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.err


def flag_value(parser, name, value):
    action = next(a for a in parser._actions if a.dest == name)
    flag = action.option_strings[0]
    if action.nargs == 0:  # --norm-adj / --no-norm-adj
        return [action.option_strings[0 if value else 1]]
    if isinstance(value, list):
        value = ','.join(map(str, value))
    return [flag, str(value)]


@pytest.mark.parametrize('name', sorted(SCOPES))
def test_cli_option_outside_its_scope(name, capsys, tmp_path):
    # Given explicitly, even at its default (`--k 4` on Cora), a flag that
    # would act on nothing is refused before any data is read.
    parser = train_gat.build_parser()
    default = parser.get_default(name)
    value = ACTING[name][0] if default is None else default
    out = str(tmp_path / 'r.json')
    batched = ['--batch-size', '64'] if name in BATCHED else []
    code, err = cli(capsys, '--dataset', 'cora', '--align', 'gatv2', *batched,
                    '--out', out, *flag_value(parser, name, value))
    assert code == 2, err
    assert err.count('\n') == 1 and err.startswith(f"error: '{name}' must")
    assert not (tmp_path / 'r.json').exists()


# Per flag of MODES: a command line where it acts on nothing.
OUT_OF_MODE = {
    'align': ['--compare', 'none,ct', '--align', 'ct'],
    'compare': ['--check-attention', '--compare', 'none,ct'],
    'runs': ['--check-attention', '--runs', '3'],
    'checkpoint': ['--check-attention', '--checkpoint', 'ckpt'],
    'attack': ['--check-attention', '--attack', 'prbcd'],
    'resume': ['--resume'],
    'checkpoint_every': ['--checkpoint-every', '5'],
    'root': ['--dataset', 'dictionary-lookup', '--root', 'datasets'],
    'overwrite': ['--overwrite'],
}


def test_every_flag_has_a_mode():
    parser = train_gat.build_parser()
    config = {field.name for field in fields(Config)}
    for action in parser._actions:
        assert (action.dest in config or action.dest in train_gat.MODES
                or action.dest in train_gat.EVERY_MODE), action.dest
    assert set(OUT_OF_MODE) == set(train_gat.MODES)


@pytest.mark.parametrize('dest', sorted(train_gat.MODES))
def test_flag_outside_its_mode(dest, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, *OUT_OF_MODE[dest])
    flag = '--' + dest.replace('_', '-')
    assert code == 2
    assert err.count('\n') == 1
    assert err.startswith(f'error: argument {flag}: ')
    assert train_gat.MODES[dest][1] in err
    assert list(tmp_path.iterdir()) == []


def test_flags_in_their_mode_are_accepted():
    # The same flags where they act pass the parser.
    for argv in (['--compare', 'none,ct', '--runs', '3'],
                 ['--checkpoint', 'ckpt', '--resume', '--checkpoint-every',
                  '5'], ['--root', 'datasets', '--overwrite', '--out', 'r'],
                 ['--check-attention', '--seed', '3']):
        train_gat.parse_args(argv)


def valued_flags():
    return [action for action in train_gat.build_parser()._actions
            if action.option_strings and action.nargs is None]


@pytest.mark.parametrize('flag', [action.option_strings[0]
                                  for action in valued_flags()])
def test_empty_value(flag, capsys, tmp_path, monkeypatch):
    # Every flag that takes a value refuses an empty one (an empty --out or
    # --root would otherwise be the current folder or the default).
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, flag, '')
    assert code == 2
    assert err.count('\n') == 1 and err.startswith(f'error: argument {flag}')
    assert list(tmp_path.iterdir()) == []


def test_study_set_acts_where_it_can(tmp_path, capsys):
    # A study's --set field goes to the runs where it acts (--set
    # conv=gatv2: the plain and aligned runs, not the peers, which bring
    # their own layer); one that acts in no run is refused before writing.
    import bad_options  # puts benchmarks/ on sys.path
    assert bad_options
    import study
    base = dict(conv='gatv2')
    assert study.config('ct', {}, 0, 'cora', 5, 5, base).conv == 'gatv2'
    assert study.config('none', {}, 0, 'cora', 5, 5, base).conv == 'gatv2'
    assert study.config('supergat', {}, 0, 'cora', 5, 5, base).conv == 'gat'
    folder = tmp_path / 'study'
    with pytest.raises(SystemExit) as exit:
        study.main(['--dataset', 'cora', '--folder', str(folder), '--set',
                    'k=6'])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count('\n') == 1
    assert "argument --set: k=6 acts in no run" in err
    assert not folder.exists()
