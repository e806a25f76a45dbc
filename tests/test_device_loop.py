r"""Full-batch training kept on the device (align_gnn/device_loop.py): the
same run as the epoch loop that reads every epoch (``capture=False``), bit
for bit on the CPU, for every layer type, divergence, model and selection
rule; an epoch that asks nothing of the host (what a CUDA graph needs,
checked on the CPU by the operators it dispatches); the selection rules on
the device; where it does not apply. tests/test_cuda.py replays it as CUDA
graphs."""
import math
import random

import pytest
import torch
from scipy.stats import rankdata
from torch_geometric.nn import GATConv

from align_gnn import device_loop, device_runs, training
from align_gnn.config import Config
from align_gnn.data import prepare_data
from align_gnn.divergences import DIVERGENCES
from align_gnn.experiment import load_data
from align_gnn.metrics import roc_auc
from align_gnn.models import CONVS
from align_gnn.recipe import loss_function
from align_gnn.selection import SELECTIONS, DeviceSelection, make_selection
from host_syncs import HostSyncs

CPU = torch.device('cpu')
# Every layer type plain and with CT, every divergence with GATConv:
CORA = sorted({(method, conv) for method in ('none', 'ct') for conv in CONVS}
              | {(method, 'gat') for method in DIVERGENCES})
# The Platonov models: self-loops added by the model (GT), by the layers
# (GAT) or by none (-sep); ROC-AUC on minesweeper.
PLATONOV = [('platonov-gt', 'ct', 'gat'), ('platonov-gat', 'none', 'gatv2'),
            ('platonov-gat-sep', 'mmd', 'gat'),
            ('platonov-gt-sep', 'adversarial', 'gat')]


def both_loops(data, **options):
    # The run of seed 0 by the epoch loop and by the device loop.
    return [training.run(data, options['methods'][0], 0,
                         Config(**options, capture=capture))
            for capture in (False, True)]


def assert_same_run(host, device):
    assert device.history == host.history
    for name in ('val_acc', 'test_acc', 'nll', 'ece', 'epochs', 'best_epoch',
                 'params', 'calibration'):
        assert getattr(device, name) == getattr(host, name), name


@pytest.mark.parametrize('method,conv', CORA)
def test_device_loop_is_the_epoch_loop(method, conv, data_root):
    options = dict(methods=[method], conv=conv, epochs=40, patience=8,
                   device='cpu')
    data = load_data(Config(**options), str(data_root))
    host, device = both_loops(data, **options)
    assert_same_run(host, device)


@pytest.mark.parametrize('model,method,conv', PLATONOV)
def test_device_loop_is_the_epoch_loop_platonov(model, method, conv,
                                                hetero_root):
    options = dict(dataset='minesweeper', model=model, methods=[method],
                   conv=conv if model.startswith('platonov-gat') else 'gat',
                   hidden=16, heads=2, layers=1, epochs=12, patience=4,
                   device='cpu')
    data = load_data(Config(**options), str(hetero_root))
    host, device = both_loops(data, **options)
    assert_same_run(host, device)
    assert 0.0 < device.test_acc < 1.0  # a ROC-AUC


@pytest.mark.parametrize('selection', SELECTIONS)
def test_device_loop_stops_where_the_epoch_loop_does(selection, data_root):
    options = dict(methods=['none'], selection=selection, epochs=300,
                   patience=3, lr=0.05, device='cpu')
    data = load_data(Config(**options), str(data_root))
    host, device = both_loops(data, **options)
    assert host.epochs < 300  # it stopped early
    assert_same_run(host, device)


def test_device_loop_fails_where_the_epoch_loop_does(data_root):
    options = dict(methods=['mmd'], epochs=5, lr=1e30, device='cpu')
    data = load_data(Config(**options), str(data_root))
    errors = []
    for capture in (False, True):
        with pytest.raises(training.NonFiniteError) as info:
            training.run(data, 'mmd', 0, Config(**options, capture=capture))
        errors.append((str(info.value), info.value.epoch))
    assert errors[0] == errors[1]
    assert 'became nan at epoch' in errors[0][0]


@pytest.mark.parametrize('method,conv', CORA)
def test_an_epoch_never_asks_the_host(method, conv, data_root):
    # What a CUDA graph needs, on the CPU: no operator of a whole epoch
    # (step, alignment loss, backward, optimizer, evaluation, selection)
    # reads a value or has a size that depends on the data. The CPU
    # optimizer's step counters are host values (capturable on CUDA).
    config = Config(methods=[method], conv=conv, epochs=10, device='cpu')
    data = load_data(config, str(data_root))
    torch.manual_seed(0)
    model = training.make_model(method, data, config)
    full = prepare_data(data, 'dense')
    optimizer = training.make_optimizer(model, config, method)
    selection = DeviceSelection(config.selection, config.patience, CPU)
    with device_loop.self_loops(model, full.edge_index,
                                full.num_nodes) as edge_index:
        loop = device_loop.DeviceLoop(model, full, edge_index, optimizer,
                                      loss_function(config.loss), selection,
                                      config.epochs)
        loop.epoch()  # the optimizer's lazy state
        steps = [state['step'] for state in optimizer.state.values()]
        with HostSyncs(host=steps) as syncs:
            loop.epoch()
    assert syncs.found == []
    assert loop.read() == [2, 0, 0]


def test_epoch_loop_asks_the_host(data_root):
    # The check above can fail: GATConv adding self-loops in each forward
    # pass (a boolean mask) and the loss on a boolean mask do ask.
    config = Config(methods=['none'], epochs=10, device='cpu')
    data = load_data(config, str(data_root))
    model = training.make_model('none', data, config)
    full = prepare_data(data, 'dense')
    with HostSyncs() as syncs:
        out = model(full.x, full.edge_index)
        out[full.train_mask].sum().backward()
    assert {'aten.index.Tensor'} <= {op for op, _ in syncs.found}
    assert any('remove_self_loops' in where for _, where in syncs.found)


def test_self_loops_once(data_root):
    # The layers see the edges they would make, and add none meanwhile,
    # also after an error.
    conv = GATConv(4, 2)
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 1, 0]])
    x = torch.randn(3, 4)
    expected = conv(x, edge_index)
    with pytest.raises(RuntimeError):
        with device_loop.self_loops(conv, edge_index, 3) as looped:
            assert not conv.add_self_loops
            assert looped.tolist() == [[0, 1, 2, 0, 1, 2], [1, 0, 0, 0, 1, 2]]
            torch.testing.assert_close(conv(x, looped), expected, rtol=0,
                                       atol=0)
            raise RuntimeError('inside')
    assert conv.add_self_loops


def test_where_the_device_loop_does_not_apply():
    class Mixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = GATConv(4, 4)
            self.b = GATConv(4, 4, add_self_loops=False)

    x = torch.randn(3, 4)
    plain = GATConv(4, 4)
    assert device_loop.unsupported(plain, x, True, False, 1, False) is None
    assert device_loop.unsupported(
        Mixed(), x, True, False, 1, False) == ('layers that disagree on '
                                               'self-loops')
    for args, reason in [((False, False, 1, False), 'neighbour sampling'),
                         ((True, False, 2, False), 'several processes'),
                         ((True, False, 1, True), 'a checkpoint'),
                         ((True, True, 1, False), 'labels as input')]:
        assert device_loop.unsupported(plain, x, *args) == reason
    config = Config(methods=['supergat'], device='cpu')
    model = training.make_model('supergat', _shapes(), config)
    assert device_loop.unsupported(model, x, True, False, 1,
                                   False) == 'SuperGATConv'


def _shapes():
    from torch_geometric.data import Data
    return Data(x=torch.randn(3, 4), num_nodes=3, num_classes=2,
                num_features=4)


@pytest.mark.parametrize('name', SELECTIONS)
def test_selection_on_the_device(name):
    # Random validation curves with many ties: the same epochs kept, the
    # same stop, and nothing counted once stopped.
    rng = random.Random(0)
    for _ in range(200):
        patience, length = rng.randint(1, 6), rng.randint(1, 40)
        curve = [(rng.choice([0.5, 0.6, 0.7]), rng.choice([0.9, 1.0, 1.1]))
                 for _ in range(length)]
        host, device = make_selection(name, patience), DeviceSelection(
            name, patience, CPU)
        kept = []
        for acc, loss in curve:
            keep, stop = host.step(acc, loss)
            kept.append(keep)
            if stop:
                break
        on_device = [bool(device.step(torch.tensor(acc), torch.tensor(loss),
                                      torch.tensor(True)))
                     for acc, loss in curve]
        assert on_device[:len(kept)] == kept
        assert not any(on_device[len(kept):])
        assert int(device.epoch) == len(kept)
        assert int(device.best_epoch) == host.best_epoch
        assert bool(device.stopped) == (len(kept) < length or stop)
    device.reset_()
    assert int(device.epoch) == 0 and not bool(device.stopped)


def test_inactive_epochs_change_nothing():
    selection = DeviceSelection('acc', 5, CPU)
    assert not bool(selection.step(torch.tensor(0.5), torch.tensor(1.0),
                                   torch.tensor(False)))
    assert int(selection.epoch) == 0 and float(selection.best_acc) == -1.0


def test_roc_auc_is_scipys():
    # Average ranks of ties, exactly as scipy's; nan without a class.
    generator = torch.Generator().manual_seed(0)
    for size in (2, 10, 1000):
        for tied in (False, True):
            score = (torch.randint(0, 5, (size, ), generator=generator).float()
                     if tied else torch.randn(size, generator=generator))
            labels = torch.arange(size) % 3 == 0
            ranks = rankdata(score.double().numpy())
            pos, neg = int(labels.sum()), int((~labels).sum())
            u = ranks[labels.numpy()].sum() - pos * (pos + 1) / 2
            assert roc_auc(score, labels) == float(u / (pos * neg))
    assert math.isnan(roc_auc(torch.randn(4), torch.zeros(4)))


def test_runs_at_once_are_the_runs_one_at_a_time(data_root):
    # Interleaved in turns, each with its own random generators (on the
    # CPU for the test; on CUDA by default): the same results, in order.
    config = Config(methods=['none', 'ct'], runs=3, epochs=25, patience=4,
                    device='cpu')
    data = load_data(config, str(data_root))
    alone = training.run_many(data, config)
    together = training.run_many(data, config, at_once=4)
    assert [(r.method, r.seed) for r in together] == [
        (r.method, r.seed) for r in alone]
    for one, other in zip(alone, together):
        assert_same_run(one, other)


def test_failed_runs_at_once_are_recorded_in_order(data_root):
    config = Config(methods=['none', 'mmd'], runs=2, epochs=5, lr=1e30,
                    device='cpu')
    data = load_data(config, str(data_root))
    records = {}
    for at_once in (1, 3):
        records[at_once] = []
        assert training.run_many(data, config, failed=records[at_once],
                                 at_once=at_once) == []
    assert records[3] == records[1]
    assert [(r['method'], r['seed']) for r in records[3]] == [
        ('none', 0), ('mmd', 0), ('none', 1), ('mmd', 1)]
    with pytest.raises(training.NonFiniteError):
        training.run_many(data, config, at_once=3)


def test_turns_keep_each_runs_generators():
    # Two runs drawing from the global generator in alternating turns draw
    # what each draws alone.
    def draws(seed):
        torch.manual_seed(seed)
        values = []
        for _ in range(3):
            values.append(torch.rand(2))
            yield
        return torch.cat(values)

    alone = [device_runs.finish(draws(seed)) for seed in (1, 2)]
    outcomes = dict(device_runs.interleave(
        [(seed, lambda seed=seed: draws(seed)) for seed in (1, 2)], CPU,
        at_once=2))
    assert torch.equal(outcomes[1], alone[0])
    assert torch.equal(outcomes[2], alone[1])


def test_a_failed_capture_is_one_line(data_root, monkeypatch, capsys):
    # Where a GPU cannot capture the epoch, the run says so in one line
    # with the way around it (the capture itself is tested on CUDA).
    def fails(self):
        raise RuntimeError('operation not permitted when stream is '
                           'capturing\nCUDA kernel errors ...')

    monkeypatch.setattr(device_loop.DeviceLoop, '_capture', fails)
    real = device_loop.DeviceLoop.__init__

    def on_cuda(self, *args, **kwargs):  # as on CUDA: with graphs
        real(self, *args[:7], graphs=True)

    monkeypatch.setattr(device_loop.DeviceLoop, '__init__', on_cuda)
    import train_gat
    code = train_gat.main(['--root', str(data_root), '--align', 'none',
                           '--runs', '1', '--epochs', '3', '--device', 'cpu',
                           '--quiet'])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1, err
    assert err == ('error: none seed 0: capturing the epoch as a CUDA graph '
                   'failed (operation not permitted when stream is '
                   'capturing); train without it: --no-capture '
                   '(Config(capture=False))\n')
