"""multilabel_soft_margin_loss, multilabel_margin_loss, multi_margin_loss, triplet_margin_loss and
triplet_margin_with_distance_loss: errors against live torch, custom distances, edge cases.

Values and gradients over options, shapes and dtypes are in the conformance suite
(conformance/cases.py); this file checks what it cannot express.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lossy_core  # noqa: E402
import lossy_jax  # noqa: E402
import lossy_torch  # noqa: E402
import lossy_torch.functional as LF  # noqa: E402

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4))
T3 = np.array([0, 3, 1])
A, P, N = (rng.standard_normal((3, 4)) for _ in range(3))


def t(a):
    return torch.from_numpy(np.array(a, copy=True))


# -- errors: torch's exception type, raised before compute, naming the argument -------

# (label, arrays as numpy, keyword arguments, the argument the message must name)
BAD = [
    ("mlsm 0-d input", "multilabel_soft_margin_loss", (np.array(1.0), np.array(1.0)), {}, "input"),
    ("mlsm int input", "multilabel_soft_margin_loss", (np.ones((2, 3), dtype=np.int64), np.ones((2, 3))), {},
     "input"),
    ("mlsm target shape", "multilabel_soft_margin_loss", (X, np.ones((3, 3))), {}, "target"),
    ("mlsm weight shape", "multilabel_soft_margin_loss", (X, np.ones((3, 4))), {"weight": np.ones(5)}, "weight"),
    ("mlsm reduction", "multilabel_soft_margin_loss", (X, np.ones((3, 4))), {"reduction": "avg"}, "reduction"),
    ("mlm float target", "multilabel_margin_loss", (X, np.zeros((3, 4))), {}, "target"),
    ("mlm int32 target", "multilabel_margin_loss", (X, np.zeros((3, 4), dtype=np.int32)), {}, "target"),
    ("mlm target shape", "multilabel_margin_loss", (X, np.zeros((3, 2), dtype=np.int64)), {}, "target"),
    ("mlm out of range", "multilabel_margin_loss", (X, np.full((3, 4), 4, dtype=np.int64)), {}, "target"),
    ("mlm below -1", "multilabel_margin_loss", (X, np.full((3, 4), -2, dtype=np.int64)), {}, "target"),
    ("mlm out of range after -1", "multilabel_margin_loss",
     (X[:1], np.array([[0, -1, 5, 7]], dtype=np.int64)), {}, "target"),
    ("mlm 3-d input", "multilabel_margin_loss", (np.ones((2, 3, 4)), np.zeros((2, 3, 4), dtype=np.int64)), {},
     "input"),
    ("mlm (N, 0) input", "multilabel_margin_loss", (np.ones((2, 0)), np.zeros((2, 0), dtype=np.int64)), {},
     "input"),
    ("mlm int input", "multilabel_margin_loss", (np.ones((2, 3), dtype=np.int64), np.zeros((2, 3),
                                                                                           dtype=np.int64)), {},
     "input"),
    ("mm p=3", "multi_margin_loss", (X, T3), {"p": 3}, "p"),
    ("mm p=0", "multi_margin_loss", (X, T3), {"p": 0}, "p"),
    ("mm weight 2-d", "multi_margin_loss", (X, T3), {"weight": np.ones((1, 4))}, "weight"),
    ("mm weight size", "multi_margin_loss", (X, T3), {"weight": np.ones(5)}, "weight"),
    ("mm weight dtype", "multi_margin_loss", (X, T3), {"weight": np.ones(4, dtype=np.float32)}, "weight"),
    ("mm target high", "multi_margin_loss", (X, np.array([0, 4, 1])), {}, "target"),
    ("mm target negative", "multi_margin_loss", (X, np.array([0, -1, 1])), {}, "target"),
    ("mm float target", "multi_margin_loss", (X, T3.astype(np.float64)), {}, "target"),
    ("mm target size", "multi_margin_loss", (X, np.array([0, 1])), {}, "target"),
    ("mm 3-d input", "multi_margin_loss", (np.ones((2, 3, 4)), np.array([0, 1])), {}, "input"),
    ("mm int input", "multi_margin_loss", (np.ones((3, 4), dtype=np.int64), T3), {}, "input"),
    ("triplet margin 0", "triplet_margin_loss", (A, P, N), {"margin": 0.0}, "margin"),
    ("triplet margin < 0", "triplet_margin_loss", (A, P, N), {"margin": -1.0}, "margin"),
    ("triplet rank", "triplet_margin_loss", (A, P, N[0]), {}, "negative"),
    ("triplet shapes", "triplet_margin_loss", (A, P, N[:2]), {}, "negative"),
    ("triplet reduction", "triplet_margin_loss", (A, P, N), {"reduction": "avg"}, "reduction"),
    ("twd margin 0", "triplet_margin_with_distance_loss", (A, P, N), {"margin": 0.0}, "margin"),
    ("twd rank", "triplet_margin_with_distance_loss", (A, P[0], N), {}, "positive"),
    ("twd reduction", "triplet_margin_with_distance_loss", (A, P, N), {"reduction": "avg"}, "reduction"),
    ("twd not callable", "triplet_margin_with_distance_loss", (A, P, N), {"distance_function": 3},
     "distance_function"),
]


DATA_DEPENDENT = {"mlm out of range", "mlm below -1", "mlm out of range after -1", "mm target high",
                  "mm target negative"}


def _torch_kwargs(kwargs):
    return {k: t(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


@pytest.mark.parametrize("label,name,arrays,kwargs,argument", BAD, ids=[b[0] for b in BAD])
def test_errors_match_torch(label, name, arrays, kwargs, argument):
    with pytest.raises(Exception) as torch_error:
        getattr(F, name)(*(t(a) for a in arrays), **_torch_kwargs(kwargs))
    expected = type(torch_error.value)
    core_kwargs = {k: v for k, v in kwargs.items()}
    # lossy_core on numpy, lossy_torch, lossy_jax: the same exception type, the argument named
    with pytest.raises(expected) as ours:
        getattr(lossy_core, name)(*arrays, **core_kwargs)
    assert argument in str(ours.value) or (argument == "reduction" and "avg" in str(ours.value))
    with pytest.raises(expected):
        getattr(LF, name)(*(t(a) for a in arrays), **_torch_kwargs(kwargs))
    jax_call = (lambda: getattr(lossy_jax, name)(
        *(jnp.asarray(a) for a in arrays),
        **{k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}))
    if label in DATA_DEPENDENT:  # compiled code cannot raise on values: the loss is NaN (lossy_jax's docstring)
        assert np.isnan(np.asarray(jax_call())).all()
    else:
        with pytest.raises(expected):
            jax_call()


def test_errors_are_raised_before_compute(monkeypatch):
    """A bad call never reaches the formula: the hinge and the distance are not computed."""
    import lossy_core._embedding as embedding
    import lossy_core._multilabel as multilabel

    def forbidden(*args, **kwargs):
        raise AssertionError("computed before checking")

    monkeypatch.setattr(multilabel, "_multi_margin_terms", forbidden)
    monkeypatch.setattr(multilabel, "_multilabel_margin_terms", forbidden)
    monkeypatch.setattr(embedding, "_triplet", forbidden)
    with pytest.raises(RuntimeError, match="target"):
        lossy_core.multi_margin_loss(X, np.array([0, 1]))
    with pytest.raises(RuntimeError, match="Long"):
        lossy_core.multilabel_margin_loss(X, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="margin must be greater than 0"):
        lossy_core.triplet_margin_loss(A, P, N, margin=0.0)


# -- data-dependent checks under tracing: NaN, never a wrapped index -------------------

def test_out_of_range_targets_are_nan_under_jit():
    loss = lossy_jax.multi_margin_loss(jnp.asarray(X), jnp.array([0, 7, 1]), reduction="none")
    loss = np.asarray(loss)
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()
    target = np.array([[0, -1, 0, 0], [9, -1, 0, 0], [1, 2, -1, 0]])
    loss = lossy_jax.multilabel_margin_loss(jnp.asarray(X), jnp.asarray(target), reduction="none")
    loss = np.asarray(loss)
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()


def test_traced_margin_out_of_range_is_nan():
    @jax.jit
    def f(margin):
        return lossy_jax.triplet_margin_loss(jnp.asarray(A), jnp.asarray(P), jnp.asarray(N), margin=margin)

    assert np.isfinite(f(1.0)) and np.isnan(f(0.0)) and np.isnan(f(-1.0))


# -- documented values -----------------------------------------------------------------

def test_multilabel_margin_docs_example():
    # torch.nn.MultiLabelMarginLoss docstring: 0.25 * ((1-(0.1-0.2)) + (1-(0.1-0.4)) + (1-(0.8-0.2)) + (1-(0.8-0.4)))
    x, y = np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([[3, 0, -1, 1]])
    assert lossy_core.multilabel_margin_loss(x, y) == pytest.approx(0.85, rel=1e-15)
    assert float(LF.multilabel_margin_loss(t(x).float(), t(y))) == pytest.approx(0.85, rel=1e-7)


def test_multi_margin_weston_watkins_value():
    # loss-landscape.md: scores [1, 2, 3] with y = 0 give 1.667 in torch ((1 + 1 - 2) + ... ) / 3 = 5 / 3
    assert lossy_core.multi_margin_loss(np.array([[1.0, 2.0, 3.0]]), np.array([0])) == pytest.approx(5 / 3)


def test_multilabel_margin_duplicates_count_twice():
    x = np.array([[0.1, 0.2, 0.4, 0.8]])
    y = np.array([[0, 0, -1, 0]])
    want = float(F.multilabel_margin_loss(t(x), t(y)))  # 2.05 (measured on torch 2.13)
    assert lossy_core.multilabel_margin_loss(x, y) == pytest.approx(want, rel=1e-14)
    assert want == pytest.approx(2 * lossy_core.multilabel_margin_loss(x, np.array([[0, -1, 0, 0]])))


# Logits with NaN and +-inf entries, in target and non-target places: torch's kernels skip a
# hinge whose argument is NaN (``z > 0`` fails), so such rows can stay finite.
_EXTREME = np.array([
    [0.3, np.nan, -0.2, 1.5, 0.1],
    [np.inf, 0.2, -0.7, 0.4, -1.1],
    [0.5, -np.inf, 0.9, -0.3, 0.2],
    [-0.4, 0.8, np.inf, -np.inf, 0.0],
    [0.6, -0.1, 0.7, 0.2, -0.5],
])
# Targets: a -1 first, garbage after the -1, duplicates, every class, a row with no -1.
_MULTILABEL_TARGETS = np.array([
    [-1, 2, 0, 1, 4],
    [0, 3, -1, 3, 1],
    [1, 1, 2, -1, -1],
    [2, 4, 3, 0, 1],
    [3, -1, 4, 2, 2],
])


def _torch_value_and_grad(function, x, target, reduction):
    x = t(x).requires_grad_(True)
    value = function(x, t(target), reduction=reduction)
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach().numpy(), grad.numpy()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name,target", [
    ("multilabel_margin_loss", _MULTILABEL_TARGETS),
    ("multi_margin_loss", np.array([0, 1, 2, 3, 4])),
])
def test_margin_losses_with_non_finite_logits_match_torch(name, target, reduction):
    """Values and gradients against live torch 2.13 (float64) for NaN and +-inf logits: lossy_torch
    (autograd through the formula), lossy_core's analytic gradient on NumPy, lossy_jax under jit."""
    want, want_grad = _torch_value_and_grad(getattr(F, name), _EXTREME, target, reduction)
    if reduction == "none":  # the case has rows that stay finite and rows that do not
        assert np.isfinite(want).any() and not np.isfinite(want).all()
    got, got_grad = _torch_value_and_grad(getattr(LF, name), _EXTREME, target, reduction)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the masked infinities stay quiet on NumPy
        np.testing.assert_allclose(getattr(lossy_core, name)(_EXTREME, target, reduction=reduction), want, rtol=1e-14)
    if reduction != "none":
        _, grads = lossy_core.value_and_grad(name)(_EXTREME, target, reduction=reduction)
        np.testing.assert_allclose(grads["input"], want_grad, rtol=1e-14)
    jitted = jax.jit(lambda x, y: getattr(lossy_jax, name)(x, y, reduction=reduction))
    np.testing.assert_allclose(np.asarray(jitted(jnp.asarray(_EXTREME, jnp.float32), jnp.asarray(target))),
                               want.astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("name,target", [
    ("multi_margin_loss", np.zeros((0,), dtype=np.int64)),
    ("multilabel_margin_loss", np.zeros((0, 4), dtype=np.int64)),
])
def test_empty_batch_of_the_margin_losses(name, target):
    """torch 2.13 returns uninitialized memory for an empty batch's 'sum'/'mean'; lossy: 0 and NaN."""
    x = np.zeros((0, 4))
    assert getattr(lossy_core, name)(x, target, reduction="sum") == 0.0
    assert np.isnan(getattr(lossy_core, name)(x, target, reduction="mean"))
    none = getattr(lossy_core, name)(x, target, reduction="none")
    assert none.shape == tuple(getattr(F, name)(t(x), t(target), reduction="none").shape) == (0,)
    _, grads = lossy_core.value_and_grad(name)(x, target, reduction="sum")
    assert grads["input"].shape == (0, 4)


def test_triplet_p_zero_counts_nonzero_entries_with_zero_gradient():
    a, p, n = np.array([[0.0, 1.0, 2.0]]), np.array([[0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]])
    want = F.triplet_margin_loss(t(a), t(p), t(n), p=0, eps=0.0, margin=3.0)  # 3 + 1 - 3 = 1
    value, grads = lossy_core.value_and_grad("triplet_margin_loss")(a, p, n, p=0, eps=0.0, margin=3.0)
    assert value == float(want) == 1.0
    assert all((g == 0).all() for g in grads.values())


def test_pairwise_distance_matches_torch():
    for p in (2.0, 1.0, 3.0, 0.5, math.inf, 0.0):
        for x1, x2 in ((A, P), (A, P[0]), (A[0, 0], P[0, 0])):
            for keepdim in (False, True):
                want = F.pairwise_distance(t(np.asarray(x1)), t(np.asarray(x2)), p=p, keepdim=keepdim).numpy()
                got = lossy_core.pairwise_distance(np.asarray(x1), np.asarray(x2), p=p, keepdim=keepdim)
                np.testing.assert_allclose(got, want, rtol=1e-12)
                assert np.shape(got) == want.shape


# -- custom distance functions ------------------------------------------------------------

def _l1_torch(x, y):
    return (x - y).abs().sum(-1)


def _l1_jax(x, y):
    return jnp.abs(x - y).sum(-1)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_custom_distance_function_torch_and_jax(swap, reduction):
    kwargs = {"margin": 0.5, "swap": swap, "reduction": reduction}
    leaves = [t(a).requires_grad_() for a in (A, P, N)]
    want = F.triplet_margin_with_distance_loss(*leaves, distance_function=_l1_torch, **kwargs)
    want_grads = torch.autograd.grad(want.sum(), leaves)
    ours = [t(a).requires_grad_() for a in (A, P, N)]
    got = LF.triplet_margin_with_distance_loss(*ours, distance_function=_l1_torch, **kwargs)
    got_grads = torch.autograd.grad(got.sum(), ours)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    module = lossy_torch.TripletMarginWithDistanceLoss(distance_function=_l1_torch, **kwargs)
    torch.testing.assert_close(module(*(t(a) for a in (A, P, N))), want.detach(), rtol=1e-12, atol=1e-12)

    def jax_loss(a, p, n):
        return lossy_jax.triplet_margin_with_distance_loss(a, p, n, distance_function=_l1_jax, **kwargs).sum()

    value, grads = jax.value_and_grad(jax_loss, argnums=(0, 1, 2))(*(jnp.asarray(a) for a in (A, P, N)))
    np.testing.assert_allclose(value, float(want.sum()), rtol=1e-12)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=1e-12, atol=1e-12)


def test_custom_distance_is_static_for_jax_and_a_new_callable_recompiles():
    function = lossy_jax.triplet_margin_with_distance_loss
    args = [jnp.asarray(a) for a in (A, P, N)]
    function(*args, distance_function=_l1_jax)
    compiled = function.jitted._cache_size()
    function(*args, distance_function=_l1_jax)
    assert function.jitted._cache_size() == compiled  # the same callable: cached

    def other(x, y):
        return jnp.abs(x - y).max(-1)

    function(*args, distance_function=other)
    assert function.jitted._cache_size() == compiled + 1  # a new callable: compiled anew


def test_custom_distance_has_no_analytic_gradient():
    """value_and_grad is analytic for the default distance only; a custom one raises, clearly."""
    def l1(x, y):
        return np.abs(x - y).sum(-1)

    value, grads = lossy_core.value_and_grad("triplet_margin_with_distance_loss")(A, P, N)
    np.testing.assert_allclose(value, float(F.triplet_margin_with_distance_loss(t(A), t(P), t(N))), rtol=1e-12)
    assert set(grads) == {"anchor", "positive", "negative"}
    assert lossy_core.triplet_margin_with_distance_loss(A, P, N, distance_function=l1) == pytest.approx(
        float(F.triplet_margin_with_distance_loss(t(A), t(P), t(N), distance_function=_l1_torch)), rel=1e-12)
    with pytest.raises(NotImplementedError, match="default distance"):
        lossy_core.value_and_grad("triplet_margin_with_distance_loss")(A, P, N, distance_function=l1)
    assert lossy_core.missing_gradients() == []


def test_default_distance_module_matches_torch_module():
    want = torch.nn.TripletMarginWithDistanceLoss(margin=2.0)(*(t(a) for a in (A, P, N)))
    got = lossy_torch.TripletMarginWithDistanceLoss(margin=2.0)(*(t(a) for a in (A, P, N)))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_legacy_arguments_are_absent_where_torch_lacks_them():
    with pytest.raises(TypeError):
        LF.triplet_margin_with_distance_loss(t(A), t(P), t(N), size_average=True)
    with pytest.raises(TypeError):  # keyword-only, as in torch
        LF.triplet_margin_with_distance_loss(t(A), t(P), t(N), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = LF.multi_margin_loss(t(X), t(T3), 2, 0.5, None, None, False)  # torch's positional order
    want = F.multi_margin_loss(t(X), t(T3), 2, 0.5, None, None, False)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
