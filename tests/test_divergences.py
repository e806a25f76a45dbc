import pytest
import torch

from align_gnn import (
    MMD,
    AdversarialDivergence,
    ConditionalTransport,
    SinkhornDivergence,
)
from align_gnn.divergences import HeadwiseMLP, resolve_divergence

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
    (dict(cls=SinkhornDivergence, blur=0.0), "'blur' must be positive"),
    (dict(cls=MMD, bandwidths=()), "'bandwidths' must be positive"),
    (dict(cls=MMD, bandwidths=(1.0, -1.0)), "'bandwidths' must be positive"),
])
def test_bad_arguments(kwargs, match):
    cls = kwargs.pop('cls')
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)
