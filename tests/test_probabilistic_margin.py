"""poisson_nll_loss, gaussian_nll_loss and the +-1-target margin losses, against torch live.

Beyond the registry-driven suites (conformance, adapters, gradients): every error
torch raises for these losses (same exception type, raised before compute, a
message naming the argument) on every backend; gaussian_nll_loss's accepted and
rejected ``var`` shapes, including a Python float; torch's silent results for
targets other than +-1.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lossy_core  # noqa: E402
import lossy_torch  # noqa: E402
import lossy_torch.functional as LF  # noqa: E402

rng = np.random.default_rng(0)
X34, Y34 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
V34 = rng.uniform(0.1, 2.0, (3, 4))
PM = np.array([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Bad:
    id: str
    loss: str
    arrays: tuple
    options: dict
    argument: str  # the argument lossy's message must name
    static: bool = True  # False: a data-dependent check (NaN under jax.jit instead)


BAD = [
    Bad("poisson reduction", "poisson_nll_loss", (X34, Y34), {"reduction": "avg"}, "reduction"),
    Bad("poisson not broadcastable", "poisson_nll_loss", (X34, Y34[:, :3]), {}, "target"),
    Bad("gaussian negative var", "gaussian_nll_loss", (X34, Y34, -V34), {}, "var", static=False),
    Bad("gaussian var (4,)", "gaussian_nll_loss", (X34, Y34, V34[0]), {}, "var"),
    Bad("gaussian var (1,1): two size-1 dims", "gaussian_nll_loss", (X34, Y34, V34[:1, :1]), {}, "var"),
    Bad("gaussian var (3,4,1)", "gaussian_nll_loss", (X34, Y34, V34[..., None]), {}, "var"),
    Bad("gaussian var 0-d", "gaussian_nll_loss", (X34, Y34, V34[0, 0]), {}, "var"),
    Bad("gaussian var (1,3,4)", "gaussian_nll_loss", (X34, Y34, V34[None]), {}, "var"),
    Bad("gaussian reduction", "gaussian_nll_loss", (X34, Y34, V34), {"reduction": "avg"}, "reduction"),
    Bad("gaussian target not broadcastable", "gaussian_nll_loss", (X34, Y34.reshape(4, 3), V34), {}, "target"),
    Bad("margin_ranking ndim", "margin_ranking_loss", (X34[0], X34[1], PM[:, None]), {}, "target"),
    Bad("margin_ranking 0-d input1", "margin_ranking_loss", (X34[0, 0], X34[1], X34[2]), {}, "input1"),
    Bad("margin_ranking not broadcastable", "margin_ranking_loss", (X34[0], X34[1, :3], X34[2]), {}, "input2"),
    Bad("margin_ranking reduction", "margin_ranking_loss", (X34[0], X34[1], X34[2]), {"reduction": "x"},
        "reduction"),
    Bad("hinge not broadcastable", "hinge_embedding_loss", (X34[0], PM), {}, "target"),
    Bad("hinge reduction", "hinge_embedding_loss", (X34, Y34), {"reduction": "avg"}, "reduction"),
    Bad("soft_margin broadcast beyond input", "soft_margin_loss", (X34[0], np.sign(Y34)), {}, "target"),
    Bad("soft_margin not broadcastable", "soft_margin_loss", (X34[0], PM), {}, "target"),
    Bad("soft_margin integer input", "soft_margin_loss", (np.ones(3, np.int64), PM), {}, "input"),
    Bad("soft_margin reduction", "soft_margin_loss", (X34, Y34), {"reduction": "avg"}, "reduction"),
    Bad("cosine 3-d inputs", "cosine_embedding_loss", (rng.standard_normal((3, 4, 2)),) * 2 + (PM,), {}, "input1"),
    Bad("cosine 1-d inputs, 1-d target", "cosine_embedding_loss", (X34[0], X34[1], PM), {}, "input1"),
    Bad("cosine 2-d inputs, 0-d target", "cosine_embedding_loss", (X34, Y34, np.array(1.0)), {}, "input1"),
    Bad("cosine 2-d target", "cosine_embedding_loss", (X34, Y34, np.ones((3, 1))), {}, "target"),
    Bad("cosine target length", "cosine_embedding_loss", (X34, Y34, PM[:2]), {}, "target"),
    Bad("cosine rows differ", "cosine_embedding_loss", (X34, Y34[:2], PM), {}, "input2"),
    Bad("cosine features differ", "cosine_embedding_loss", (X34, Y34[:, :3], PM), {}, "input2"),
    Bad("cosine reduction", "cosine_embedding_loss", (X34, Y34, PM), {"reduction": "avg"}, "reduction"),
]
IDS = [b.id for b in BAD]


def _torch(a):
    return torch.from_numpy(np.array(a))


def _torch_error(bad):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            getattr(F, bad.loss)(*map(_torch, bad.arrays), **bad.options)
    return info.value


def _check(bad, call):
    expected = _torch_error(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            call()
    got = info.value
    assert type(got) is type(expected), f"torch: {type(expected).__name__}: {expected}\nlossy: {got!r}"
    assert re.search(rf"\b{re.escape(bad.argument)}\b", str(got)), f"does not name {bad.argument!r}: {got}"


@pytest.mark.parametrize("bad", BAD, ids=IDS)
def test_core_raises_like_torch(bad, xp):
    _check(bad, lambda: getattr(lossy_core, bad.loss)(*map(xp.asarray, bad.arrays), **bad.options))


@pytest.mark.parametrize("bad", BAD, ids=IDS)
def test_lossy_torch_raises_like_torch(bad):
    _check(bad, lambda: getattr(LF, bad.loss)(*map(_torch, bad.arrays), **bad.options))


@pytest.mark.parametrize("bad", [b for b in BAD if b.static], ids=[b.id for b in BAD if b.static])
def test_lossy_jax_raises_like_torch(bad):
    jnp = pytest.importorskip("jax.numpy")
    import lossy_jax

    _check(bad, lambda: getattr(lossy_jax, bad.loss)(*map(jnp.asarray, bad.arrays), **bad.options))


def test_lossy_jax_negative_variance_is_nan_under_jit():
    jnp = pytest.importorskip("jax.numpy")
    import lossy_jax

    _torch_error(BAD[2])  # torch raises ValueError for it
    value = lossy_jax.gaussian_nll_loss(jnp.asarray(X34), jnp.asarray(Y34), jnp.asarray(-V34))
    assert bool(jnp.isnan(value))
    # a negative Python float is readable before jit: it raises, as torch
    with pytest.raises(ValueError, match="var has negative entry"):
        lossy_jax.gaussian_nll_loss(jnp.asarray(X34), jnp.asarray(Y34), -0.5)


class _ComputeReached(AssertionError):
    pass


@pytest.mark.parametrize("bad", BAD, ids=IDS)
def test_validation_before_compute(bad, monkeypatch):
    """Every check runs before the formula: numpy's math and the formulas' helpers are tripwired."""
    import array_api_compat.numpy as xnp

    import lossy_core._margin as margin
    import lossy_core._probabilistic as probabilistic

    def trip(name):
        def fail(*args, **kwargs):
            raise _ComputeReached(f"{name} ran before validation")
        return fail

    for name in ("exp", "log", "log1p", "sqrt", "sum", "logaddexp"):
        monkeypatch.setattr(xnp, name, trip(f"xp.{name}"))
    for module, names in ((probabilistic, ("reduce", "_stirling_term")),
                          (margin, ("reduce", "softplus", "_hinge", "_cosine_setup"))):
        for name in names:
            monkeypatch.setattr(module, name, trip(name))
    _check(bad, lambda: getattr(lossy_core, bad.loss)(*map(xnp.asarray, bad.arrays), **bad.options))


def test_tripwire_is_live(monkeypatch):
    import lossy_core._margin as margin

    monkeypatch.setattr(margin, "_cosine_setup", lambda *a: (_ for _ in ()).throw(_ComputeReached()))
    with pytest.raises(_ComputeReached):
        lossy_core.cosine_embedding_loss(X34, Y34, PM)


# -- gaussian_nll_loss: every accepted var -----------------------------------------

ACCEPTED_VAR = {
    "same shape": V34,
    "input shape minus last dim": V34[:, 0],
    "(3,1)": V34[:, :1],
    "(1,4)": V34[:1],
}


@pytest.mark.parametrize("label", list(ACCEPTED_VAR))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gaussian_accepted_var_shapes_match_torch(label, reduction, xp):
    var = ACCEPTED_VAR[label]
    want = F.gaussian_nll_loss(_torch(X34), _torch(Y34), _torch(var), full=True, reduction=reduction).numpy()
    got = lossy_core.gaussian_nll_loss(xp.asarray(X34), xp.asarray(Y34), xp.asarray(var), full=True,
                                       reduction=reduction)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("var", [0.5, 1e-9, 0.0])
def test_gaussian_python_float_var_on_every_adapter(var, xp):
    want = F.gaussian_nll_loss(_torch(X34), _torch(Y34), var, reduction="none").numpy()
    got = lossy_core.gaussian_nll_loss(xp.asarray(X34), xp.asarray(Y34), var, reduction="none")
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    # value_and_grad: no gradient for a float var; the input's is torch's
    x = _torch(X34).requires_grad_(True)
    F.gaussian_nll_loss(x, _torch(Y34), var).backward()
    _, grads = lossy_core.value_and_grad(lossy_core.gaussian_nll_loss)(xp.asarray(X34), xp.asarray(Y34), var)
    assert set(grads) == {"input", "target"}
    np.testing.assert_allclose(np.asarray(grads["input"]), x.grad.numpy(), rtol=1e-12)


def test_gaussian_python_float_var_torch_and_jax_adapters():
    jnp = pytest.importorskip("jax.numpy")
    import lossy_jax

    want = F.gaussian_nll_loss(_torch(X34), _torch(Y34), 0.7, full=True)
    torch.testing.assert_close(LF.gaussian_nll_loss(_torch(X34), _torch(Y34), 0.7, full=True), want)
    torch.testing.assert_close(lossy_torch.GaussianNLLLoss(full=True)(_torch(X34), _torch(Y34), 0.7), want)
    got = lossy_jax.gaussian_nll_loss(jnp.asarray(X34), jnp.asarray(Y34), 0.7, full=True)
    np.testing.assert_allclose(float(got), want.item(), rtol=1e-12)
    compiled = lossy_jax.gaussian_nll_loss.jitted._cache_size()
    lossy_jax.gaussian_nll_loss(jnp.asarray(X34), jnp.asarray(Y34), 0.9, full=True)
    assert lossy_jax.gaussian_nll_loss.jitted._cache_size() == compiled  # a new float does not recompile


def test_gaussian_nll_module_is_keyword_only():
    with pytest.raises(TypeError):
        torch.nn.GaussianNLLLoss(True)
    with pytest.raises(TypeError):
        lossy_torch.GaussianNLLLoss(True)


# -- targets other than +-1: torch's silent results ---------------------------------

def test_non_pm1_targets_give_torchs_silent_results(xp):
    x = np.array([0.3, -0.7, 2.0, 0.5])
    y = np.array([0.0, 0.0, 2.0, 0.5])
    for name, args in (("hinge_embedding_loss", (x, y)), ("soft_margin_loss", (x, y)),
                       ("margin_ranking_loss", (x, x[::-1].copy(), y)),
                       ("cosine_embedding_loss", (X34, Y34, np.array([0.0, 2.0, -1.0])))):
        want = getattr(F, name)(*map(_torch, args), reduction="none").numpy()
        got = getattr(lossy_core, name)(*map(xp.asarray, args), reduction="none")
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-15, err_msg=name)
    # the documented values (loss-landscape.md §2b): x + max(0, 1 - x) for hinge, log 2 for soft margin, 0 cosine
    hinge = lossy_core.hinge_embedding_loss(xp.asarray(x[:2]), xp.asarray(y[:2]), reduction="none")
    np.testing.assert_allclose(np.asarray(hinge), x[:2] + np.maximum(0, 1 - x[:2]), rtol=1e-12)
    soft = lossy_core.soft_margin_loss(xp.asarray(x[:2]), xp.asarray(y[:2]), reduction="none")
    np.testing.assert_allclose(np.asarray(soft), np.log(2.0), rtol=1e-12)


def test_soft_margin_stays_finite_where_torch_overflows():
    """A documented deviation: torch's log1p(exp(-y x)) is inf (gradient NaN) at y x = -1e4."""
    x = torch.tensor([1e4], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([-1.0], dtype=torch.float64)
    assert torch.isinf(F.soft_margin_loss(x, y))
    value = LF.soft_margin_loss(x, y)
    value.backward()
    assert value.item() == 1e4 and x.grad.item() == 1.0


def test_poisson_module_forward_names_log_input():
    import inspect

    assert list(inspect.signature(lossy_torch.PoissonNLLLoss.forward).parameters) == ["self", "log_input", "target"]
    x, y = _torch(X34), _torch(np.abs(Y34) * 3)
    torch.testing.assert_close(lossy_torch.PoissonNLLLoss(full=True)(log_input=x, target=y),
                               torch.nn.PoissonNLLLoss(full=True)(log_input=x, target=y))
