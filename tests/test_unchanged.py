r"""What a refactor must leave as it was: short Cora experiments of every
divergence and aligned layer give the results recorded in
`cora_reference.json` (written by the code before the package split of the
layers, divergences and training loop), bit for bit on the CPU, PyTorch and
PyG that recorded them, within float rounding elsewhere; and train_gat.py
takes the flags it took, each shown in one named group of --help.

    python tests/test_unchanged.py   # records cora_reference.json again
"""
import json
import sys
from pathlib import Path

import torch
import torch_geometric

from align_gnn.config import Config
from align_gnn.experiment import experiment
from align_gnn.reproducibility import cpu_model

REFERENCE = Path(__file__).with_name('cora_reference.json')
EPOCHS = 5
# Every divergence on GATConv, CT on the other layers and across heads:
CASES = [
    dict(methods=['none', 'ct', 'adversarial', 'sinkhorn', 'mmd']),
    dict(methods=['ct'], conv='gatv2'),
    dict(methods=['ct'], conv='transformer'),
    dict(methods=['ct'], align_over='heads'),
]
KEYS = ('method', 'seed', 'val_acc', 'test_acc', 'ece', 'nll', 'epochs',
        'best_epoch', 'params', 'adversary_params', 'history')
FLAGS = {
    '--adversary-channels', '--adversary-lr-scale', '--align',
    '--align-over', '--align-samples', '--align-warmup', '--align-weight',
    '--att-dst', '--attack', '--attack-epochs', '--batch-size', '--budgets',
    '--check-attention', '--checkpoint', '--checkpoint-every', '--compare', '--conv', '--dataset',
    '--debug', '--device', '--dropout', '--edge-drop', '--edge-noise',
    '--epochs', '--fanout', '--feature-attr', '--features', '--heads',
    '--help', '--hidden', '--k', '--label-attr', '--labels', '--layers',
    '--loss', '--lr', '--lr-warmup', '--model', '--no-att-dst',
    '--no-norm-adj', '--node-attributes', '--norm-adj', '--optimizer',
    '--out', '--overwrite', '--patience', '--plot-dir', '--quiet',
    '--resume', '--rho', '--root', '--runs', '--seed', '--selection',
    '--precision', '--split', '--threads', '--weight-decay', '-h',
    '--capture', '--no-capture',
}


def versions() -> dict:
    return dict(cpu=cpu_model(), torch=torch.__version__,
                torch_geometric=torch_geometric.__version__)


def cora_runs(root: str) -> list:
    r"""Per case, the recorded fields of each run (times left out)."""
    out = []
    for case in CASES:
        config = Config(dataset='cora', runs=1, epochs=EPOCHS, device='cpu',
                        **case)
        out.append([{key: run[key] for key in KEYS}
                    for run in experiment(config, root)['runs']])
    return out


def test_cora_runs_are_unchanged(data_root):
    reference = json.loads(REFERENCE.read_text())
    runs = json.loads(json.dumps(cora_runs(str(data_root))))
    if {key: reference[key] for key in versions()} == versions():
        assert runs == reference['runs']
    else:  # another CPU or version: the same up to float rounding
        for case, expected in zip(runs, reference['runs']):
            for run, record in zip(case, expected, strict=True):
                assert run.keys() == record.keys()
                names = [key for key, value in record.items()
                         if isinstance(value, str)]  # the method
                assert [run[key] for key in names] == [
                    record[key] for key in names]
                torch.testing.assert_close(
                    {key: run[key] for key in run if key not in names},
                    {key: record[key] for key in record if key not in names},
                    rtol=1e-3, atol=5e-3, check_dtype=False)


def test_help_has_the_same_flags_each_in_one_group():
    import train_gat
    parser = train_gat.build_parser()
    flags = [flag for action in parser._actions
             for flag in action.option_strings]
    assert set(flags) == FLAGS
    assert len(flags) == len(FLAGS)
    grouped = [action for group in parser._action_groups
               if group.title not in ('options', 'positional arguments')
               for action in group._group_actions]
    ungrouped = [action for action in parser._actions
                 if action not in grouped and '-h' not in action.option_strings]
    assert not ungrouped
    assert len(grouped) == len(set(map(id, grouped)))
    help_text = parser.format_help()
    for group in parser._action_groups[2:]:
        assert f'\n{group.title}:\n' in help_text


if __name__ == '__main__':
    root = sys.argv[1] if len(sys.argv) > 1 else 'datasets'
    REFERENCE.write_text(json.dumps(dict(versions(), runs=cora_runs(root)),
                                    indent=1) + '\n')
    print(f'wrote {REFERENCE}')
