import math
import warnings

import pytest
import torch

from align_gnn import (
    MMD,
    AdversarialDivergence,
    ConditionalTransport,
    SinkhornDivergence,
)
from align_gnn.divergences import (
    HeadwiseMLP,
    fusable,
    fused_default,
    resolve_divergence,
)

HEADS, CHANNELS = 3, 4


def make(name):
    return resolve_divergence(name, HEADS, CHANNELS)


def samples(shift=0.0, m=64, n=48):
    query = torch.randn(HEADS, m, CHANNELS)
    key = torch.randn(HEADS, n, CHANNELS) + shift
    return query, key


@pytest.mark.parametrize('name, cls', [
    ('ct', ConditionalTransport),
    ('adversarial', AdversarialDivergence),
    ('sinkhorn', SinkhornDivergence),
    ('mmd', MMD),
])
def test_per_head_values(name, cls):
    divergence = make(name)
    assert isinstance(divergence, cls)
    assert resolve_divergence(name.upper(), HEADS, CHANNELS).__class__ is cls
    query, key = samples()
    value = divergence(query, key)
    assert value.size() == (HEADS, )
    assert torch.isfinite(value).all()


def test_heads_are_independent():
    # Batched over heads: the value of a head depends on that head only.
    for name in ['ct', 'adversarial', 'sinkhorn', 'mmd']:
        torch.manual_seed(0)
        divergence = make(name)
        query, key = samples()
        value = divergence(query, key)
        query2 = query.clone()
        query2[1] += 3.0
        value2 = divergence(query2, key)
        assert torch.allclose(value[[0, 2]], value2[[0, 2]], atol=1e-5), name
        assert not torch.allclose(value[1], value2[1]), name


@pytest.mark.parametrize('name', ['sinkhorn', 'mmd'])
def test_zero_for_identical_samples(name):
    divergence = make(name)
    query, _ = samples()
    same = divergence(query, query.clone())
    assert same.abs().max() < 1e-4
    near = divergence(*samples(shift=0.0))
    far = divergence(*samples(shift=2.0))
    assert (far > 3 * near.abs()).all() and (far > 0.05).all()


def train_adversary(divergence, shift, steps=200):
    adversary = getattr(divergence, 'critic', None) or divergence.discriminator
    optimizer = torch.optim.Adam(adversary.parameters(), lr=0.01)
    for _ in range(steps):
        query, key = samples(shift)
        optimizer.zero_grad()
        # Reversed gradients: descending on the value ascends for the
        # adversary.
        divergence(query, key).sum().backward()
        optimizer.step()
    query, key = samples(shift, m=256, n=256)
    with torch.no_grad():
        return divergence(query, key)


@pytest.mark.parametrize('name', ['ct', 'adversarial'])
def test_adversary_detects_shift(name):
    torch.manual_seed(0)
    identical = train_adversary(make(name), shift=0.0)
    torch.manual_seed(0)
    shifted = train_adversary(make(name), shift=2.0)
    assert (shifted > identical + 0.1).all()
    if name == 'adversarial':
        # A Jensen--Shannon estimate: near 0 for equal distributions, at most
        # log(2).
        assert identical.abs().max() < 0.05
        assert (shifted < torch.log(torch.tensor(2.0))).all()


def test_ct_rho_weighs_the_two_directions():
    torch.manual_seed(0)
    query, key = samples(shift=1.0)
    forward = ConditionalTransport(HEADS, CHANNELS, rho=1.0)
    backward = ConditionalTransport(HEADS, CHANNELS, rho=0.0)
    mixed = ConditionalTransport(HEADS, CHANNELS, rho=0.25)
    backward.load_state_dict(forward.state_dict())
    mixed.load_state_dict(forward.state_dict())
    expected = 0.25 * forward(query, key) + 0.75 * backward(query, key)
    assert torch.allclose(mixed(query, key), expected, atol=1e-6)
    cost = 1 - torch.nn.functional.cosine_similarity(
        forward.critic(query).unsqueeze(2), forward.critic(key).unsqueeze(1),
        dim=-1)
    assert ((forward(query, key) >= cost.min() - 1e-6) &
            (forward(query, key) <= cost.max() + 1e-6)).all()


def test_scale_invariance_of_mmd_and_sinkhorn():
    query, key = samples(shift=1.0)
    for divergence in [MMD(), SinkhornDivergence()]:
        value = divergence(query, key)
        scaled = divergence(10 * query, 10 * key)
        assert torch.allclose(value, scaled, rtol=1e-3, atol=1e-5)


def extreme_inputs():
    torch.manual_seed(0)
    query, key = samples(shift=0.5, m=16, n=12)
    point = torch.randn(HEADS, 1, CHANNELS)
    return {
        'random': (query, key),
        'huge': (query * 1e4, key * 1e4),
        'tiny': (query * 1e-4, key * 1e-4),
        'zeros': (torch.zeros_like(query), torch.zeros_like(key)),
        'zero rows': (torch.cat([query[:, :8], 0 * query[:, 8:]], 1), key),
        'duplicates': (point.expand(-1, 16, -1), point.expand(-1, 12, -1)),
        'one node': (query[:, :1], key[:, :1]),
    }


@pytest.mark.parametrize('name', ['ct', 'adversarial', 'sinkhorn', 'mmd'])
@pytest.mark.parametrize('case', list(extreme_inputs().keys()))
def test_numerically_safe(name, case):
    torch.manual_seed(0)
    divergence = make(name)
    query, key = (t.clone().requires_grad_() for t in extreme_inputs()[case])
    value = divergence(query, key)
    assert torch.isfinite(value).all()
    value.sum().backward()
    grads = [query.grad, key.grad] + [p.grad for p in divergence.parameters()]
    for grad in grads:
        assert grad is not None and torch.isfinite(grad).all()


def test_headwise_mlp():
    mlp = HeadwiseMLP(HEADS, CHANNELS, 16, 5)
    x = torch.randn(HEADS, 7, CHANNELS)
    out = mlp(x)
    assert out.size() == (HEADS, 7, 5)
    # Head h uses only its own weights:
    hidden = torch.nn.functional.leaky_relu(
        x[1] @ mlp.weight1[1] + mlp.bias1[1], 0.2)
    assert torch.allclose(out[1], hidden @ mlp.weight2[1] + mlp.bias2[1],
                          atol=1e-6)

    reversed_mlp = HeadwiseMLP(HEADS, CHANNELS, 16, 5, reverse=True)
    reversed_mlp.load_state_dict(mlp.state_dict())
    xr = x.clone().requires_grad_()
    x.requires_grad_()
    mlp(x).sum().backward()
    reversed_mlp(xr).sum().backward()
    assert torch.allclose(reversed_mlp.weight1.grad, -mlp.weight1.grad)
    assert torch.allclose(xr.grad, x.grad)  # The input's gradient is kept.


@pytest.mark.parametrize('kwargs, match', [
    (dict(cls=SinkhornDivergence, blur=0.0), "'blur' must be a positive"),
    (dict(cls=MMD, bandwidths=()), "'bandwidths' must be a non-empty"),
    (dict(cls=MMD, bandwidths=(1.0, -1.0)), "'bandwidths' must be a non-"),
])
def test_bad_arguments(kwargs, match):
    cls = kwargs.pop('cls')
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def pooled_mmd(query, key, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)):
    # The MMD as first written: one exponential per bandwidth on the pooled
    # (M + N) x (M + N) distance matrix.
    m = query.size(1)
    points = torch.cat([query, key], dim=1)
    dist = (points.unsqueeze(2) - points.unsqueeze(1)).pow(2).sum(-1)
    median = dist[:, :m, m:].flatten(1).median(dim=1).values.view(-1, 1, 1)
    kernel = sum((-dist / (s * median)).exp()
                 for s in bandwidths) / len(bandwidths)
    return (kernel[:, :m, :m].mean((1, 2)) + kernel[:, m:, m:].mean((1, 2)) -
            2 * kernel[:, :m, m:].mean((1, 2)))


def value_and_grads(divergence, query, key, params=None):
    query, key = query.clone().requires_grad_(), key.clone().requires_grad_()
    value = divergence(query, key)
    if params is None:
        params = getattr(divergence, 'parameters', list)()
    return value, torch.autograd.grad(value.sum(), [query, key, *params])


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('bandwidths', [(0.25, 0.5, 1.0, 2.0, 4.0),
                                        (0.3, 1.0, 2.5)])
def test_mmd_matches_pooled_reference(dtype, bandwidths):
    torch.manual_seed(0)
    query, key = (t.to(dtype) for t in samples(shift=0.5))
    value, grads = value_and_grads(MMD(bandwidths), query, key)
    expected, expected_grads = value_and_grads(
        lambda q, k: pooled_mmd(q, k, bandwidths), query, key)
    assert torch.allclose(value, expected, rtol=1e-4, atol=1e-6)
    for grad, expected_grad in zip(grads, expected_grads):
        assert torch.allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('shift', [0.0, 0.5, 2.0])
def test_sinkhorn_matches_pot(dtype, shift):
    # Fixed iterations without convergence check against POT's solver that
    # stops at marginals within 1e-4: values within 3e-4, gradients within 5%.
    torch.manual_seed(0)
    query, key = (t.to(dtype) for t in samples(shift=shift))
    value, grads = value_and_grads(SinkhornDivergence(), query, key)
    expected, expected_grads = value_and_grads(
        SinkhornDivergence(max_iter=100, tol=1e-4), query, key)
    assert (value - expected).abs().max() < 3e-4
    for grad, expected_grad in zip(grads, expected_grads):
        assert (grad - expected_grad).abs().max() < (
            0.05 * expected_grad.abs().max())


def reference_ct(divergence, query, key):
    # CT as first written: the (H, M, N) cosines and plans under autograd.
    m, rho = query.size(1), divergence.rho
    critic = torch.nn.functional.normalize(
        divergence.critic(torch.cat([query, key], 1)), dim=-1)
    navigator = divergence.navigator(torch.cat([query, key], 1))
    cos = critic[:, :m] @ critic[:, m:].transpose(1, 2)
    logits = (navigator[:, :m] / navigator.size(-1)**0.5 @
              navigator[:, m:].transpose(1, 2))
    forward = (logits.softmax(dim=2) * cos).sum(2).mean(1)
    backward = (logits.softmax(dim=1) * cos).sum(1).mean(1)
    return 1 - rho * forward - (1 - rho) * backward


def reference_sinkhorn(query, key, blur=0.1, num_iter=30):
    # Sinkhorn as first written: every iteration in the log domain, the
    # plan's gradient under autograd.
    def cost(x, y):
        return (x.unsqueeze(2) - y.unsqueeze(1)).pow(2).sum(-1)

    def entropic_ot(cost, num_iter, symmetric):
        log_kernel = cost.detach() / -blur
        (B, M, N), lse = log_kernel.shape, torch.logsumexp
        u, v = log_kernel.new_zeros(B, M), log_kernel.new_zeros(B, N)
        for _ in range(num_iter):
            if symmetric:
                u = v = 0.5 * (u - math.log(M) -
                               lse(log_kernel + u.unsqueeze(1), 2))
            else:
                u = -math.log(M) - lse(log_kernel + v.unsqueeze(1), 2)
                v = -math.log(N) - lse(log_kernel + u.unsqueeze(2), 1)
        plan = (log_kernel + u.unsqueeze(2) + v.unsqueeze(1)).exp()
        dual = blur * (u.mean(1) + v.mean(1) + 1 - plan.sum((1, 2)))
        return dual + (plan * (cost - cost.detach())).sum((1, 2))

    cost_qk = cost(query, key)
    scale = cost_qk.mean((1, 2), keepdim=True)
    return (entropic_ot(cost_qk / scale, num_iter, False) -
            0.5 * entropic_ot(cost(query, query) / scale, num_iter // 3,
                              True) -
            0.5 * entropic_ot(cost(key, key) / scale, num_iter // 3, True))


@pytest.mark.parametrize('name', ['ct', 'sinkhorn', 'mmd'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('heads, m, n', [(1, 256, 256), (8, 256, 256),
                                         (3, 64, 48), (2, 5, 7)])
def test_matches_reference(name, dtype, heads, m, n):
    # The values and gradients (the adversaries' included) of the
    # divergences, which compute their (H, M, N) matrices without autograd,
    # against the plain autograd formulas.
    torch.manual_seed(0)
    divergence = resolve_divergence(name, heads, CHANNELS).to(dtype)
    reference = {
        'ct': lambda q, k: reference_ct(divergence, q, k),
        'sinkhorn': reference_sinkhorn,
        'mmd': pooled_mmd,
    }[name]
    query = torch.randn(heads, m, CHANNELS, dtype=dtype)
    key = torch.randn(heads, n, CHANNELS, dtype=dtype) + 0.5
    value, grads = value_and_grads(divergence, query, key)
    params = list(divergence.parameters())
    expected, expected_grads = value_and_grads(
        reference, query, key, params)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    assert torch.allclose(value, expected, rtol=tol, atol=tol)
    for grad, expected_grad in zip(grads, expected_grads):
        assert torch.allclose(grad, expected_grad, rtol=tol,
                              atol=tol * expected_grad.abs().max())


@pytest.mark.parametrize('name, cases', [
    ('ct', [(2, 6, 5, torch.float64), (3, 4, 4, torch.float32)]),
    ('adversarial', [(2, 6, 5, torch.float64)]),
    ('sinkhorn', [(2, 6, 5, torch.float64)]),
    ('mmd', [(2, 6, 5, torch.float64)]),
])
def test_fused_matches_eager(name, cases):
    # Few and small: every shape and dtype compiles anew (10-60 s on 2 CPU
    # cores, seconds once torch.compile's cache holds it).
    for heads, m, n, dtype in cases:
        torch.manual_seed(0)
        eager = resolve_divergence(name, heads, CHANNELS, fused=False)
        fused = resolve_divergence(name, heads, CHANNELS, fused=True)
        fused.load_state_dict(eager.state_dict())
        eager, fused = eager.to(dtype), fused.to(dtype)
        query = torch.randn(heads, m, CHANNELS, dtype=dtype)
        key = torch.randn(heads, n, CHANNELS, dtype=dtype) + 0.5
        with warnings.catch_warnings():
            warnings.filterwarnings('error', 'torch.compile of')  # No
            # fallback to eager.
            value, grads = value_and_grads(fused, query, key)
        expected, expected_grads = value_and_grads(eager, query, key)
        assert torch.allclose(value, expected, rtol=1e-5, atol=1e-6)
        # The adversaries' gradients included (reversed in both):
        for grad, expected_grad in zip(grads, expected_grads):
            assert torch.allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_fused_falls_back_to_eager(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError('no compiler here')

    monkeypatch.setattr(torch, 'compile', fail)
    double = fusable(lambda x: 2 * x)
    x = torch.arange(3.0)
    with pytest.warns(UserWarning, match='no compiler here'):
        assert torch.equal(double(x, fused=True), 2 * x)
    assert torch.equal(double(x, fused=True), 2 * x)  # Warned once.


def test_fused_default(monkeypatch):
    monkeypatch.delenv('ALIGN_GNN_FUSED', raising=False)
    assert not MMD().fused and not fused_default()
    monkeypatch.setenv('ALIGN_GNN_FUSED', '1')
    assert MMD().fused and resolve_divergence('ct', HEADS, CHANNELS).fused
    assert not SinkhornDivergence(fused=False).fused
