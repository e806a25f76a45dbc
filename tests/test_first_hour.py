r"""A library user's first hour: an optimizer built before `convert` keeps
training the model, the adversaries' parameters are public, the alignment
weight's warm-up, the README's snippet and the example run cleanly, and
`--help` shows defaults as the flags take them."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.nn import GATConv

import align_gnn
from align_gnn import (
    AlignedGATConv,
    adversary_parameters,
    alignment_loss,
    alignment_weight,
    convert,
    model_parameters,
)
from align_gnn import device_loop, training
from align_gnn.config import Config
from align_gnn.models import GAT
from conftest import HANG_SECONDS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))


def graph(num_nodes=12, channels=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(num_nodes, (2, 40), generator=gen)
    return (torch.randn(num_nodes, channels, generator=gen), edge_index,
            torch.randint(3, (num_nodes, ), generator=gen))


@pytest.mark.parametrize('divergence', ['ct', 'adversarial', 'mmd'])
def test_optimizer_built_before_convert_keeps_training(divergence):
    torch.manual_seed(0)
    x, edge_index, y = graph()
    model = GAT(6, 3, GATConv, hidden_channels=4, heads=2)
    params = list(model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    before = {name: p.detach().clone()
              for name, p in model.named_parameters()}

    convert(model, divergence=divergence, num_samples=8)
    assert isinstance(model.conv1, AlignedGATConv)
    # The converted layers hold the very same Parameter objects:
    assert {id(p) for p in model_parameters(model)} == {id(p)
                                                        for p in params}
    adversary = adversary_parameters(model)
    assert all(id(p) not in {id(q) for q in params} for p in adversary)
    optimizer.add_param_group(dict(params=adversary, lr=0.003))
    start = [p.detach().clone() for p in adversary]

    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x, edge_index), y)
    (loss + 0.1 * alignment_loss(model)).backward()
    optimizer.step()
    for name, p in model.named_parameters():
        if name in before:
            assert not torch.equal(p, before[name]), name
    assert all(not torch.equal(p, q) for p, q in zip(adversary, start))


def test_convert_keeps_optimizer_state():
    # Adam's moments for the layer's parameters survive the conversion:
    torch.manual_seed(0)
    x, edge_index, y = graph()
    conv = GATConv(6, 3, heads=2, concat=False)
    optimizer = torch.optim.Adam(conv.parameters(), lr=0.01)
    F.cross_entropy(conv(x, edge_index), y).backward()
    optimizer.step()
    aligned = convert(conv, divergence='mmd')
    assert all(p in optimizer.state for p in aligned.parameters())


def test_adversary_parameters_api():
    assert {'adversary_parameters', 'model_parameters',
            'alignment_weight'} <= set(align_gnn.__all__)
    model = GAT(6, 3, lambda *a, **k: AlignedGATConv(*a, **k,
                                                     divergence='ct'),
                hidden_channels=4, heads=2)
    adversary = adversary_parameters(model)
    critic_navigator = [p for name, p in model.named_parameters()
                        if '.divergence.' in name]
    assert {id(p) for p in adversary} == {id(p) for p in critic_navigator}
    assert adversary and model_parameters(model)
    assert ({id(p) for p in adversary} | {id(p) for p in model_parameters(
        model)}) == {id(p) for p in model.parameters()}
    assert not ({id(p) for p in adversary}
                & {id(p) for p in model_parameters(model)})
    # In model.parameters()' order:
    ids = [id(p) for p in model_parameters(model)]
    assert ids == [id(p) for p in model.parameters() if id(p) in set(ids)]
    mmd = GAT(6, 3, lambda *a, **k: AlignedGATConv(*a, **k,
                                                   divergence='mmd'))
    assert adversary_parameters(mmd) == []
    assert len(model_parameters(mmd)) == len(list(mmd.parameters()))
    plain = GAT(6, 3, GATConv)
    assert adversary_parameters(plain) == []
    # The training code's optimizer uses the same split:
    config = Config(methods=['ct'], adversary_lr_scale=0.3)
    main, second = training.make_optimizer(model, config, 'ct').param_groups
    assert [id(p) for p in second['params']] == [id(p) for p in adversary]
    assert [id(p) for p in main['params']] == ids
    assert second['lr'] == pytest.approx(0.3 * config.lr)
    # The old home still works:
    from align_gnn.models import adversary_parameters as old
    assert old is adversary_parameters


def test_alignment_weight_warmup():
    assert [alignment_weight(t, 0.1, warmup=4) for t in range(6)] == \
        pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, 0.1])
    assert alignment_weight(0, 0.1) == 0.1
    assert alignment_weight(0, 0.1, warmup=0) == 0.1
    assert alignment_weight(1000, 0.3, warmup=50) == 0.3
    assert alignment_weight(0, 0.0, warmup=10) == 0.0
    with pytest.raises(ValueError, match='>= 0'):
        alignment_weight(-1, 0.1, warmup=5)
    with pytest.raises(ValueError, match='>= 0'):
        alignment_weight(0, 0.1, warmup=-5)


@pytest.mark.parametrize('capture', [False, True])
def test_fit_ramps_the_alignment_weight(capture, monkeypatch):
    # The weight each epoch trains with, in the epoch loop and in the loop
    # kept on the device (which reads it from a device tensor).
    weights = []
    if capture:
        epoch = device_loop.DeviceLoop.epoch

        def record(loop):
            weights.append(float(loop.weight))
            epoch(loop)
        monkeypatch.setattr(device_loop.DeviceLoop, 'epoch', record)
    else:
        def train_epoch(model, data, optimizer, align_weight, *args):
            weights.append(align_weight)
            zero = torch.zeros(())
            return zero, zero
        monkeypatch.setattr(training, 'train_epoch', train_epoch)
    x, edge_index, y = graph(channels=4)
    mask = torch.ones(12, dtype=torch.bool)
    data = Data(x=x, edge_index=edge_index, y=y, train_mask=mask,
                val_mask=mask, test_mask=mask)
    data.num_classes = 3
    config = Config(methods=['ct'], epochs=6, patience=10, align_weight=0.2,
                    align_warmup=4, features='dense', capture=capture)
    training.run(data, 'ct', 0, config)
    assert weights == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])
    weights.clear()
    training.run(data, 'ct', 0, Config(methods=['ct'], epochs=2,
                                       align_weight=0.2, features='dense',
                                       capture=capture))
    assert weights == pytest.approx([0.2, 0.2])  # no warm-up unless asked
    with pytest.raises(ValueError, match="'align_warmup' must be an integer >= 0"):
        Config(align_warmup=-1)


def test_help_shows_defaults_as_flags_take_them():
    sys.path.insert(0, str(REPO))
    try:
        import train_gat
    finally:
        sys.path.remove(str(REPO))
    proc = subprocess.run([sys.executable, str(REPO / 'train_gat.py'),
                           '--help'], capture_output=True, text=True,
                          timeout=HANG_SECONDS, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    text = ' '.join(proc.stdout.split())
    assert '(default: None)' not in text
    assert '(default: [' not in text
    assert '(default: 0.01,0.05,0.1)' in text
    assert '(default: 0.6,0.2,0.2)' in text
    assert '--align-warmup EPOCHS' in text
    assert train_gat.parse_args(['--align-warmup', '5']).align_warmup == 5
    assert train_gat.parse_args([]).align_warmup == 0


def test_readme_snippet_and_example_run_without_warnings(data_root):
    from snippet_from_scratch import readme_snippet, run_snippet, variant
    from torch_geometric.datasets import Planetoid
    import torch_geometric.transforms as T
    import warnings

    dataset = Planetoid(str(data_root), 'Cora',
                        transform=T.NormalizeFeatures())
    snippet = readme_snippet()
    assert 'alignment_weight(epoch, 0.01, warmup=50)' in snippet
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for code in (snippet, variant(snippet, 'None')):
            val, test = run_snippet(code, dataset, 2, 0)
            assert 0 <= val <= 1 and 0 <= test <= 1
    proc = subprocess.run(
        [sys.executable, '-W', 'error::UserWarning',
         str(REPO / 'examples' / 'train_cora.py'), '--root', str(data_root),
         '--epochs', '3'], capture_output=True, text=True,
        timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr
    assert 'Warning' not in proc.stderr
    assert 'Best validation accuracy' in proc.stdout
