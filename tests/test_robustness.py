import sys
from pathlib import Path

import matplotlib.image
import pytest
import torch

from torch_geometric.nn import (
    GATConv,
    GATv2Conv,
    SuperGATConv,
    TransformerConv,
)
from torch_geometric.utils import to_undirected

from align_gnn import AlignedGATConv, plots, robustness
from align_gnn.config import Config

REPO = Path(__file__).resolve().parents[1]


def test_random_flips():
    edge_index = to_undirected(torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))
    gen = torch.Generator().manual_seed(0)
    flipped = robustness.random_flips(edge_index, 6, 4, gen)
    before = {tuple(e) for e in edge_index.t().tolist()}
    after = {tuple(e) for e in flipped.t().tolist()}
    changed = before ^ after
    assert len(changed) == 2 * 4  # 4 pairs, both directions
    assert all((j, i) in changed for i, j in changed)
    assert all(i != j for i, j in after) and after == {(j, i)
                                                       for i, j in after}
    again = robustness.random_flips(edge_index, 6, 4,
                                    torch.Generator().manual_seed(0))
    assert torch.equal(again, flipped)
    assert torch.equal(robustness.random_flips(edge_index, 6, 0, gen),
                       edge_index)
    # Every pair of a complete graph on 4 nodes flipped: no edge left.
    complete = torch.combinations(torch.arange(4)).t()
    assert robustness.random_flips(complete, 4, 6, gen).numel() == 0


@pytest.mark.parametrize('conv', [
    GATConv, AlignedGATConv, GATv2Conv, TransformerConv,
    lambda *args, **kwargs: SuperGATConv(*args, **kwargs, is_undirected=True)
])
def test_edge_weights_in_attention(conv):
    torch.manual_seed(0)
    model = conv(5, 3, heads=2).eval()
    x = torch.randn(6, 5)
    edge_index = to_undirected(torch.tensor([[0, 1, 2, 3, 4, 0],
                                             [1, 2, 3, 4, 5, 5]]))
    weighted = robustness.EdgeWeightedModel(model)
    ones = torch.ones(edge_index.size(1))
    expected = model(x, edge_index)
    assert torch.allclose(weighted(x, edge_index, ones), expected, atol=1e-6)
    # Weight 0 on the edges {0, 5} is as if they were absent:
    drop = ((edge_index[0] == 0) & (edge_index[1] == 5)) | (
        (edge_index[0] == 5) & (edge_index[1] == 0))
    weight = torch.where(drop, 0.0, 1.0)
    assert torch.allclose(weighted(x, edge_index, weight),
                          model(x, edge_index[:, ~drop]), atol=1e-5)
    # and a weight in between lies in between, differentiably:
    weight = torch.where(drop, 0.5, 1.0).requires_grad_()
    out = weighted(x, edge_index, weight)
    out.sum().backward()
    assert weight.grad[drop].abs().sum() > 0
    # The layers' softmax is restored:
    assert robustness.gat_conv.softmax is robustness.gatv2_conv.softmax


@pytest.fixture(scope='module')
def cora_results(data_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp('attack')
    sys.path.insert(0, str(REPO))
    try:
        import train_gat
    finally:
        sys.path.remove(str(REPO))
    code = train_gat.main([
        '--root', str(data_root), '--compare', 'none,ct', '--runs', '1',
        '--epochs', '150', '--align-samples', '128', '--attack', 'prbcd',
        '--budgets', '0,0.1',
        '--attack-epochs', '3', '--plot-dir', str(folder / 'plots'),
        '--out', str(folder / 'results.json'), '--quiet'])
    assert code == 0
    import json
    return json.loads((folder / 'results.json').read_text()), folder


def test_attack_results(cora_results):
    results, _ = cora_results
    for run in results['runs']:
        assert 0 < run['ece'] < 1 and run['nll'] > 0
        # Budget 0 (the attack runs, flips nothing) gives the clean accuracy:
        assert run['attack']['prbcd']['0.0'] == run['test_acc']
        assert run['attack']['random']['0.0'] == run['test_acc']
    gat = results['runs'][0]
    assert gat['method'] == 'none' and gat['test_acc'] > 0.75
    # A real attack lowers the accuracy, far more than random flips:
    assert gat['attack']['prbcd']['0.1'] < gat['test_acc'] - 0.05
    assert gat['attack']['prbcd']['0.1'] < gat['attack']['random']['0.1']
    summary = results['summary']['none']['attack']
    assert summary['prbcd']['0.1']['mean'] == gat['attack']['prbcd']['0.1']
    bins = gat['calibration']
    assert sum(bins['count']) == 1000 and sum(bins['correct']) == round(
        1000 * gat['test_acc'])
    ece = sum(abs(conf - correct) for conf, correct in zip(
        bins['confidence'], bins['correct'])) / 1000
    assert ece == pytest.approx(gat['ece'])


def test_figures(cora_results):
    results, folder = cora_results
    names = sorted(p.name for p in (folder / 'plots').iterdir())
    assert names == ['attack.png', 'keys_queries_ct.png',
                     'keys_queries_none.png', 'learning_curves.png',
                     'reliability_ct.png', 'reliability_none.png']
    for name in names:
        path = folder / 'plots' / name
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert 10_000 < path.stat().st_size < 3_000_000
        height, width, _ = matplotlib.image.imread(path).shape
        assert height > 300 and width > 300
    layers = results['runs'][1]['keys_queries']
    assert [layer['layer'] for layer in layers] == ['conv1', 'conv2']
    assert len(layers[0]['heads']) == 8 and len(layers[1]['heads']) == 1
    head = layers[0]['heads'][0]
    assert len(head['keys']) == len(head['queries']) == 256
    assert head['mmd'] > 0
    assert results['runs'][2:] == [] or not results['runs'][2][
        'keys_queries']

    # The same figures from the results file alone:
    again = folder / 'again'
    assert plots.main([str(folder / 'results.json'), str(again)]) == 0
    assert sorted(p.name for p in again.iterdir()) == names


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / 'figure.png'
    path.write_bytes(b'old')
    figure = plots._figure(2, 2)

    def fail(f, **kwargs):
        f.write(b'partial')
        raise RuntimeError('disk full')

    monkeypatch.setattr(figure, 'savefig', fail)
    with pytest.raises(RuntimeError, match='disk full'):
        plots.save_figure(figure, str(path))
    assert path.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['figure.png']


def test_plots_need_matplotlib(monkeypatch, data_root, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    with pytest.raises(ImportError, match=r"the 'plot' extra"):
        plots.require_matplotlib()
    sys.path.insert(0, str(REPO))
    try:
        import train_gat
    finally:
        sys.path.remove(str(REPO))
    code = train_gat.main(['--root', str(data_root), '--plot-dir',
                           str(tmp_path), '--quiet'])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1
    assert "pip install -e '.[plot]'" in err


def test_attack_config_errors():
    with pytest.raises(ValueError, match="'attack' must be one of"):
        Config(attack='nettack')
    with pytest.raises(ValueError, match="'budgets' must be a list of fractions"):
        Config(attack='prbcd', budgets=[0.1, 1.5])
