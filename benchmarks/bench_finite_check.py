r"""Cost of AlignedGATConv's non-finite input check (training mode, CPU): the
check alone against a forward+backward of the layer, interleaved (benchmarks/timing.py),
on Cora-sized dense, sparse CSR and hidden inputs.

    python benchmarks/bench_finite_check.py
"""
import sys, torch, numpy as np
sys.path.insert(0, 'benchmarks')
from timing import measure
from align_gnn import AlignedGATConv
from align_gnn.conv import quiet_sparse_csr
torch.manual_seed(0)
n, e, f = 2708, 10556, 1433
dense = torch.randn(n, f) * (torch.rand(n, f) < 0.013)
with quiet_sparse_csr():
    sparse = dense.to_sparse_csr()
ei = torch.randint(n, (2, e))
for name, x in (('dense 1433', dense), ('sparse CSR 1433', sparse), ('hidden 64', torch.randn(n, 64))):
    conv = AlignedGATConv(x.size(1), 8, heads=8, divergence=None)
    conv.check_finite = False
    def step():
        conv.zero_grad(set_to_none=True)
        conv(x, ei).square().mean().backward()
    v = x.values() if x.layout != torch.strided else x
    s = measure({'step': step, 'check': lambda: bool(torch.isfinite(v).all())}, 200)
    print(f'{name}: step {1e3*np.median(s["step"]):.2f} ms, check {1e3*np.median(s["check"]):.3f} ms, '
          f'ratio of medians {np.median(s["check"])/np.median(s["step"]):.4f}')
