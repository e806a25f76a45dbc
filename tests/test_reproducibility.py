import itertools
import os
import subprocess
import sys

import pytest
import torch

import align_gnn
from align_gnn import AlignedGATConv, alignment_loss
from align_gnn.reproducibility import (
    cpu_model,
    mkl_threads,
    single_threaded_blas,
)
from conftest import HANG_SECONDS

MKL = torch.backends.mkl.is_available()


@pytest.fixture
def threads():
    r"""Restores PyTorch's (and so MKL's) thread count after the test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def products(seed: int = 0) -> list:
    r"""Matrix products with small outputs and long inner dimensions, the
    shapes whose inner dimension MKL splits across threads (on AMD CPUs
    41 of such 1,620 shapes differ between one and two threads, e.g. the
    7 x 256 by 256 x 16 weight gradient of CT's critic)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for m, n, k in itertools.product((3, 7, 8, 64), (7, 16, 100),
                                     (64, 256, 1433)):
        a = torch.randn(m, k, generator=gen)
        b = torch.randn(k, n, generator=gen)
        b_t = torch.randn(n, k, generator=gen).t()
        out += [a @ b, a @ b_t, torch.bmm(a[None], b[None]),
                torch.addmm(torch.ones(n), a, b)]
    return out


def test_mkl_mode_is_set_on_import():
    # A fresh process, as the command line starts: importing align_gnn
    # sets MKL's reproducible mode unless the user chose one.
    code = 'import os, align_gnn; print(os.environ["MKL_CBWR"])'
    env = {k: v for k, v in os.environ.items() if k != 'MKL_CBWR'}
    out = subprocess.run([sys.executable, '-c', code], env=env,
                         capture_output=True, text=True, check=True,
                         timeout=HANG_SECONDS).stdout
    assert out.strip() == 'AUTO,STRICT'
    env['MKL_CBWR'] = 'COMPATIBLE'
    out = subprocess.run([sys.executable, '-c', code], env=env,
                         capture_output=True, text=True, check=True,
                         timeout=HANG_SECONDS).stdout
    assert out.strip() == 'COMPATIBLE'


@pytest.mark.skipif(not MKL, reason='PyTorch without MKL')
def test_single_threaded_blas_is_in_effect(threads):
    torch.set_num_threads(2)
    assert mkl_threads() == 2  # torch.set_num_threads sets MKL's too
    assert single_threaded_blas()
    assert mkl_threads() == 1
    assert torch.get_num_threads() == 2  # PyTorch's kernels keep theirs


def assert_same_on_one_and_two_threads(compute):
    r"""Asserts that :obj:`compute()` gives the same tensors, bit for bit,
    on one PyTorch thread and, as training runs, on two with MKL on one."""
    torch.set_num_threads(1)
    reference = compute()
    torch.set_num_threads(2)
    single_threaded_blas()
    for expected, actual in zip(reference, compute(), strict=True):
        assert torch.equal(expected, actual)


@pytest.mark.skipif(not MKL, reason='PyTorch without MKL')
def test_products_independent_of_thread_count(threads):
    assert_same_on_one_and_two_threads(products)


def ct_step(seed: int = 0) -> list:
    r"""Loss and gradients of one training step of a CT-aligned two-layer
    GAT at the shapes of Cora's recommended CT setting (16 adversary
    channels, one output head: the product that used to differ)."""
    torch.manual_seed(seed)
    x = torch.randn(300, 40)
    edge_index = torch.randint(0, 300, (2, 1500))
    conv1 = AlignedGATConv(40, 8, heads=8, num_samples=128, rho=0.25,
                           adversary_channels=16)
    conv2 = AlignedGATConv(64, 7, heads=1, num_samples=128, rho=0.25,
                           adversary_channels=16)
    model = torch.nn.ModuleList([conv1, conv2]).train()
    out = conv2(torch.nn.functional.elu(conv1(x, edge_index)), edge_index)
    loss = out.logsumexp(-1).mean() + alignment_loss(model)
    loss.backward()
    return [loss.detach(), *(p.grad for p in model.parameters())]


def test_ct_training_step_independent_of_thread_count(threads):
    assert_same_on_one_and_two_threads(ct_step)


def test_environment_names_the_machine():
    from align_gnn.results import environment
    env = environment()
    assert env['cpu'] == cpu_model() and env['cpu']
    assert env['torch_threads'] == torch.get_num_threads()
    assert env['mkl_cbwr'] == os.environ.get('MKL_CBWR')
    assert align_gnn.__version__
