"""AdaptiveLogSoftmaxWithLoss against torch's module, live, with the same parameters:
output, loss, log_prob, predict, gradients for the input and every weight, errors; and the
core functions on jax (jit) and NumPy.

Not in the conformance case machinery: it is a module with parameters whose number depends
on ``cutoffs`` and whose result is a pair, which the registry's (arrays, options) -> loss
shape does not describe. Every expected value here is torch's, computed on the same inputs.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lossy_core  # noqa: E402
import lossy_torch  # noqa: E402

CONFIGS = [
    dict(in_features=16, n_classes=20, cutoffs=[5, 12]),
    dict(in_features=16, n_classes=20, cutoffs=[5, 12], div_value=2.0, head_bias=True),
    dict(in_features=8, n_classes=10, cutoffs=[9]),
]


def _pair(config, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(**config, dtype=dtype)
    ours = lossy_torch.AdaptiveLogSoftmaxWithLoss(**config, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _data(config, batch=11, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config["in_features"], generator=g, dtype=dtype)
    y = torch.randint(0, config["n_classes"], (batch,), generator=g)
    y[:3] = torch.tensor([0, config["cutoffs"][-1], config["n_classes"] - 1])  # shortlist and last cluster
    return x, y


def test_constructor_signature_parameters_and_initialisation_are_torchs():
    def params(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()]

    assert params(lossy_torch.AdaptiveLogSoftmaxWithLoss) == params(torch.nn.AdaptiveLogSoftmaxWithLoss)
    for config in CONFIGS:
        torch.manual_seed(3)
        theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(**config)
        torch.manual_seed(3)
        ours = lossy_torch.AdaptiveLogSoftmaxWithLoss(**config)
        a, b = ours.state_dict(), theirs.state_dict()
        assert list(a) == list(b)
        for k in a:  # same shapes and, from the same seed, the same initial values
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        for attr in ("in_features", "n_classes", "cutoffs", "div_value", "head_bias", "shortlist_size",
                     "n_clusters", "head_size"):
            assert getattr(ours, attr) == getattr(theirs, attr), attr


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_forward_log_prob_predict_and_gradients_match_torch(index):
    config = CONFIGS[index]
    ours, theirs = _pair(config)
    x, y = _data(config)
    results = []
    for module in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        out = module(xi, y)
        assert type(out).__name__ == "_ASMoutput" and out._fields == ("output", "loss")
        (out.output.sum() * 0.3 + out.loss).backward()
        results.append((out.output.detach(), out.loss.detach(), xi.grad,
                        {k: p.grad for k, p in module.named_parameters()},
                        module.log_prob(x).detach(), module.predict(x)))
    (o1, l1, g1, p1, lp1, pr1), (o2, l2, g2, p2, lp2, pr2) = results
    for a, b in ((o1, o2), (l1, l2), (g1, g2), (lp1, lp2)):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert p1.keys() == p2.keys()
    for k in p1:
        torch.testing.assert_close(p1[k], p2[k], rtol=1e-12, atol=1e-12)
    assert torch.equal(pr1, pr2)


def test_unbatched_and_float32():
    config = CONFIGS[0]
    ours, theirs = _pair(config, dtype=torch.float32)
    x, y = _data(config, dtype=torch.float32)
    a, b = ours(x[0], y[0]), theirs(x[0], y[0])
    assert a.output.shape == b.output.shape == ()
    torch.testing.assert_close(a.output, b.output)
    torch.testing.assert_close(a.loss, b.loss)
    for module in (ours, theirs):  # torch 2.13's log_prob has no unbatched form: IndexError
        with pytest.raises(IndexError, match="Dimension out of range"):
            module.log_prob(x[0])
    torch.testing.assert_close(ours.log_prob(x), theirs.log_prob(x))
    torch.testing.assert_close(ours(x, y).loss, theirs(x, y).loss)


@pytest.mark.parametrize("cutoffs", [[], [12, 5], [0, 5], [5, 20], [5, 5], [5.5]])
def test_cutoff_errors(cutoffs):
    with pytest.raises(ValueError) as theirs:
        torch.nn.AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs)
    with pytest.raises(ValueError) as ours:
        lossy_torch.AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs)
    assert str(ours.value) == str(theirs.value)


def test_forward_errors():
    config = CONFIGS[0]
    ours, theirs = _pair(config)
    x, y = _data(config)
    bad_target = y.clone()
    bad_target[4] = config["n_classes"]
    for args in ((x, bad_target), (x[:4], y), (x[0], y), (x, y[0]), (x, y[None])):
        with pytest.raises(Exception) as t:
            theirs(*args)
        with pytest.raises(Exception) as o:
            ours(*args)
        assert type(o.value) is type(t.value)
        assert str(o.value).split(",")[0] == str(t.value).split(",")[0].strip("(").strip("'")


def test_core_on_jax_jit_and_numpy():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    config = CONFIGS[1]
    _, theirs = _pair(config)
    x, y = _data(config)
    want = theirs(x, y)
    head_w, head_b = theirs.head.weight.detach().numpy(), theirs.head.bias.detach().numpy()
    tails = [(a.weight.detach().numpy(), b.weight.detach().numpy()) for a, b in theirs.tail]
    cutoffs = theirs.cutoffs
    # NumPy
    out, loss = lossy_core.adaptive_log_softmax_with_loss(x.numpy(), y.numpy(), head_w, tails, cutoffs=cutoffs,
                                                          head_bias=head_b)
    np.testing.assert_allclose(out, want.output.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(loss, want.loss.item(), rtol=1e-12)
    # jax, jitted, with the gradient for the input
    jt = [(jnp.asarray(a), jnp.asarray(b)) for a, b in tails]

    @jax.jit
    def f(xx, yy):
        return lossy_core.adaptive_log_softmax_with_loss(xx, yy, jnp.asarray(head_w), jt, cutoffs=cutoffs,
                                                         head_bias=jnp.asarray(head_b))[1]

    value, grad = jax.value_and_grad(f)(jnp.asarray(x.numpy()), jnp.asarray(y.numpy()))
    xi = x.clone().requires_grad_(True)
    theirs(xi, y).loss.backward()
    np.testing.assert_allclose(float(value), want.loss.item(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), xi.grad.numpy(), rtol=1e-10, atol=1e-12)
    # a target out of range under jit cannot raise: its output is NaN
    y_bad = y.numpy().copy()
    y_bad[0] = 99
    assert np.isnan(float(f(jnp.asarray(x.numpy()), jnp.asarray(y_bad))))
    np.testing.assert_allclose(
        lossy_core.adaptive_log_prob(x.numpy(), head_w, tails, cutoffs=cutoffs, head_bias=head_b),
        theirs.log_prob(x).detach().numpy(), rtol=1e-12, atol=1e-12)
    # the lossy_jax bindings (cutoffs static)
    import lossy_jax

    args = (jnp.asarray(head_w), jt)
    out, loss = lossy_jax.adaptive_log_softmax_with_loss(jnp.asarray(x.numpy()), jnp.asarray(y.numpy()), *args,
                                                         cutoffs=cutoffs, head_bias=jnp.asarray(head_b))
    np.testing.assert_allclose(np.asarray(out), want.output.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(lossy_jax.adaptive_log_prob(jnp.asarray(x.numpy()), *args, cutoffs=cutoffs,
                                               head_bias=jnp.asarray(head_b))),
        theirs.log_prob(x).detach().numpy(), rtol=1e-12, atol=1e-12)
