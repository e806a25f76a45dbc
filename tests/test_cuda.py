r"""The GPU path, where CUDA is available (skipped elsewhere; run on a
CUDA machine with ``python -m pytest -q tests/test_cuda.py``, as
benchmarks/device_gpu_speed.sh does): every layer and divergence trains on
CUDA as on the CPU, the same weights give the same logits on both, the
captured epoch (a CUDA graph) does what the eager one does for every layer,
divergence and Platonov model (a capture fails on any host
synchronization, so each capture here also shows there is none), the
status read every 25 epochs stops where reading every epoch would, runs
several at once are the runs one at a time, the
precisions keep the accuracy, the regulariser never waits for the host, a
run out of GPU memory is one failed run named in one line, and the results
name the GPU."""
import json

import pytest
import torch

import train_gat
from align_gnn import AlignedGATConv, alignment_loss, device_loop, training
from align_gnn.config import Config
from align_gnn.data import prepare_data
from align_gnn.recipe import loss_function
from align_gnn.selection import DeviceSelection
from align_gnn.divergences import DIVERGENCES
from align_gnn.experiment import experiment, load_data
from align_gnn.models import CONVS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA device')
CUDA = torch.device('cuda')


# Every layer type plain and with CT, every divergence with GATConv:
CASES = sorted({(method, conv) for method in ('none', 'ct') for conv in CONVS}
               | {(method, 'gat') for method in DIVERGENCES})


@pytest.mark.parametrize('method,conv', CASES)
def test_cuda_trains_as_the_cpu(method, conv, data_root):
    # The same model and weights give the same eval-mode logits on both
    # devices; trained on CUDA, it reaches the CPU's accuracy on Cora.
    config = Config(methods=[method], conv=conv, runs=1, epochs=200,
                    patience=200, device='cuda')
    data = load_data(config, str(data_root))
    torch.manual_seed(0)
    model = training.make_model(method, data, config).eval()
    graph = prepare_data(data, 'dense')
    with torch.no_grad():
        cpu = model(graph.x, graph.edge_index)
        gpu = model.to(CUDA)(graph.x.to(CUDA), graph.edge_index.to(CUDA))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    results = experiment(config, str(data_root))
    assert results['runs'][0]['test_acc'] > 0.76, results['runs'][0]


def epochs_from_one_state(method, conv, data, graphs, epochs=3):
    # `epochs` epochs of a DeviceLoop from seed 0's model and, after the
    # loop is built (captured), seed 1's random generators.
    config = Config(methods=[method], conv=conv, device='cuda', epochs=10)
    full = prepare_data(data, 'dense').to(CUDA)
    torch.manual_seed(0)
    model = training.make_model(method, data, config).to(CUDA)
    optimizer = training.make_optimizer(model, config, method,
                                        capturable=True)
    selection = DeviceSelection(config.selection, config.patience, CUDA)
    with device_loop.self_loops(model, full.edge_index,
                                full.num_nodes) as edge_index:
        loop = device_loop.DeviceLoop(model, full, edge_index, optimizer,
                                      loss_function(config.loss), selection,
                                      config.epochs, graphs)
        assert (loop.graph is not None) == graphs
        torch.manual_seed(1)
        loop.weight.fill_(1.0)
        for _ in range(epochs):
            loop.epoch()
    return ([p.detach().clone() for p in model.parameters()],
            loop.curves[:epochs].clone(), loop.read())


@pytest.mark.parametrize('method,conv', CASES)
def test_captured_epoch_is_the_eager_one(method, conv, data_root):
    # Replays after the capture (its warm-up undone: weights, optimizer
    # state, generators, selection) do what eager epochs do: the same
    # dropout masks and samples, losses and weights up to the order of
    # PyG's atomic additions.
    data = load_data(Config(methods=[method], conv=conv), str(data_root))
    eager = epochs_from_one_state(method, conv, data, graphs=False)
    captured = epochs_from_one_state(method, conv, data, graphs=True)
    assert captured[2] == eager[2] == [3, 0, 0]
    torch.testing.assert_close(captured[1], eager[1], rtol=1e-4, atol=1e-5)
    for got, expected in zip(captured[0], eager[0]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('method', ['none', 'ct'])
def test_captured_run(method, data_root):
    # A run captured by default (features dense on CUDA); accuracy as the
    # epoch loop's; early stopping, read every 25 epochs, stops at the epoch
    # the rule stops at (patience after the kept one), not at a read.
    # Patience 100, the default: CT learns Cora more slowly at first (seed
    # 0's validation accuracy dips for some 40 epochs on the CPU, eager or
    # not), and patience 20 stopped it there.
    runs = {}
    for capture in (True, False):
        config = Config(methods=[method], runs=1, epochs=400, device='cuda',
                        capture=capture)
        assert config.features == ('dense' if capture else 'sparse')
        runs[capture] = experiment(config, str(data_root))['runs'][0]
    captured = runs[True]
    assert (captured['epochs'] - captured['best_epoch'] == 100
            or captured['epochs'] == 400), captured['epochs']
    assert len(captured['history']['val_acc']) == captured['epochs']
    assert captured['test_acc'] > 0.76
    assert abs(captured['test_acc'] - runs[False]['test_acc']) < 0.03


@pytest.mark.parametrize('model', ['platonov-gt', 'platonov-gat',
                                   'platonov-gat-sep'])
def test_captured_platonov(model, hetero_root):
    # Platonov et al.'s models (residual blocks, layer norm, GT's own
    # attention) captured do what they do eagerly: the same losses up to
    # the order of atomic additions, the same scores. (After 30 epochs
    # their ROC-AUC is still near 0.5: 0.42-0.55 on the CPU, so no floor.)
    runs = {}
    for capture in (True, False):
        config = Config(dataset='minesweeper', model=model, methods=['ct'],
                        hidden=32, heads=4, layers=2, runs=1, epochs=30,
                        device='cuda', capture=capture)
        runs[capture] = experiment(config, str(hetero_root))['runs'][0]
    torch.testing.assert_close(runs[True]['history']['train_loss'],
                               runs[False]['history']['train_loss'],
                               rtol=1e-3, atol=1e-4)
    assert runs[True]['epochs'] == runs[False]['epochs'] == 30
    assert abs(runs[True]['test_acc'] - runs[False]['test_acc']) < 0.01


def test_captured_run_fails_at_its_epoch(data_root):
    config = Config(methods=['mmd'], runs=1, epochs=60, lr=1e30,
                    device='cuda')
    data = load_data(config, str(data_root))
    with pytest.raises(training.NonFiniteError) as info:
        training.run(data, 'mmd', 0, config)
    assert info.value.epoch < device_loop.READ_EVERY
    assert f'became nan at epoch {info.value.epoch}' in str(info.value)


def test_runs_at_once_are_the_runs_one_at_a_time(data_root):
    # By default the runs of one call go several at once, each with its
    # own stream and generator state: the same dropout masks and samples
    # as one at a time (early losses equal up to atomic additions), the
    # same order.
    config = Config(methods=['none', 'ct'], runs=3, epochs=100, patience=20,
                    device='cuda')
    data = load_data(config, str(data_root))
    alone = training.run_many(data, config, at_once=1)
    together = training.run_many(data, config)
    assert [(r.method, r.seed) for r in together] == [
        (r.method, r.seed) for r in alone]
    for one, other in zip(alone, together):
        torch.testing.assert_close(other.history['train_loss'][:5],
                                   one.history['train_loss'][:5],
                                   rtol=1e-3, atol=1e-4)
        assert abs(other.test_acc - one.test_acc) < 0.03


@pytest.mark.parametrize('method', ['none', 'ct'])
def test_precisions_keep_the_accuracy(method, data_root):
    accs = {}
    for precision in ('fp32', 'tf32', 'bf16'):
        config = Config(methods=[method], runs=1, epochs=200, patience=200,
                        device='cuda', precision=precision)
        accs[precision] = experiment(config,
                                     str(data_root))['runs'][0]['test_acc']
    assert accs['fp32'] > 0.78
    for precision in ('tf32', 'bf16'):
        assert abs(accs[precision] - accs['fp32']) < 0.03, accs


@pytest.mark.parametrize('divergence', DIVERGENCES)
def test_regulariser_never_waits_for_the_host(divergence):
    conv = AlignedGATConv(32, 16, heads=4, divergence=divergence,
                          num_samples=256).to(CUDA)
    x = torch.randn(5000, 32, device=CUDA)
    edge_index = torch.randint(5000, (2, 50000), device=CUDA)
    conv(x, edge_index)
    alignment_loss(conv).backward()  # warm-up: lazy initialisation
    conv(x, edge_index)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        alignment_loss(conv).backward()
    finally:
        torch.cuda.set_sync_debug_mode('default')


def test_out_of_memory_is_one_failed_run(data_root, monkeypatch, tmp_path,
                                         capsys):
    make_model = training.make_model

    def greedy(method, data, config):
        model = make_model(method, data, config)
        model.hoard = torch.empty(1 << 44, device=CUDA)  # 16 TiB
        return model

    monkeypatch.setattr(training, 'make_model', greedy)
    out = tmp_path / 'r.json'
    code = train_gat.main(['--root', str(data_root), '--align', 'none',
                           '--runs', '1', '--epochs', '3', '--device', 'cuda',
                           '--quiet', '--out', str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert 'error: none seed 0: out of GPU memory; the run stopped' in err
    assert json.loads(out.read_text())['failed'][0]['seed'] == 0


def test_results_name_the_gpu(data_root):
    config = Config(methods=['none'], runs=1, epochs=2, device='cuda')
    env = experiment(config, str(data_root))['environment']
    assert env['gpu'] == torch.cuda.get_device_name(CUDA)
    assert env['cuda'] == torch.version.cuda
