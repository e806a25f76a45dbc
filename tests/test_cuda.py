r"""The GPU path, where CUDA is available (skipped elsewhere; run on a
CUDA machine with ``python -m pytest -q tests/test_cuda.py``, as
benchmarks/device_gpu_speed.sh does): every layer and divergence trains on
CUDA as on the CPU, the same weights give the same logits on both, the
precisions keep the accuracy, the regulariser never waits for the host, a
run out of GPU memory is one failed run named in one line, and the results
name the GPU."""
import json

import pytest
import torch

import train_gat
from align_gnn import AlignedGATConv, alignment_loss, training
from align_gnn.config import Config
from align_gnn.data import prepare_data
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
