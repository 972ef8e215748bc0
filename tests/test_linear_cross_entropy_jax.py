"""``lossy_jax.linear_cross_entropy``: ``lax.scan`` over row chunks under a ``custom_vjp``.

Expected values come from three places, named at each test:

- torch's ``torch.nn.functional.linear_cross_entropy`` (torch 2.13, ``options=None``: its
  reference path, ``cross_entropy(linear(x, W, b))``) run live on the same float64 numbers, with
  torch autograd for the gradients;
- for what torch lacks (z-loss, softcap, ``return_lse``'s lse gradient, the gradients of the
  hyperparameters), ``jax`` autodiff of the explicit formula on full logits (``_explicit``
  below), itself checked against torch where both exist (``test_explicit_formula_is_torchs``);
- JAX's own memory analysis of the compiled function, against optax on full logits.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
optax = pytest.importorskip("optax")
jax.config.update("jax_enable_x64", True)  # conftest does this at pytest start; repeated for a lone run

import jax.numpy as jnp  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lossy_jax  # noqa: E402

RTOL = 1e-12  # DESIGN.md: float64 must agree with torch to ~1e-12 relative
ATOL = 1e-12
lce = lossy_jax.linear_cross_entropy


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


def _case(seed=0, n=7, d=5, c=11, out=(), *, bias=False, weight=False, probabilities=False, ignored=(),
          ignore_index=-100, unbatched=False):
    """NumPy float64/int64 arrays for one call: ``{'input', 'linear_weight', 'target', 'linear_bias',
    'weight'}`` (None where absent); ``ignored`` positions (flat indices) get ``ignore_index``."""
    rng = np.random.default_rng(seed)
    batch = () if unbatched else (n,)
    arrays = {"input": rng.normal(size=(*batch, d)), "linear_weight": rng.normal(size=(c, *out, d)),
              "linear_bias": rng.normal(size=(c, *out)) if bias else None,
              "weight": rng.uniform(0.5, 2.0, size=(c,)) if weight else None}
    if probabilities:
        q = rng.uniform(size=(*batch, c, *out))
        arrays["target"] = q / q.sum(axis=len(batch), keepdims=True)
    else:
        target = rng.integers(0, c, size=(*batch, *out))
        target.reshape(-1)[list(ignored)] = ignore_index
        arrays["target"] = target
    return arrays


def _upstream(shape, seed=1):
    """A cotangent for the output: 0.7 for a scalar (so that the one-pass gradients are really
    multiplied by it), per-position values in [0.5, 1.5] for 'none'."""
    if shape == ():
        return np.asarray(0.7)
    return np.random.default_rng(seed).uniform(0.5, 1.5, size=shape)


def _wrt(arrays):
    return [k for k in ("input", "linear_weight", "linear_bias", "target")
            if arrays.get(k) is not None and np.issubdtype(arrays[k].dtype, np.floating)]


def _torch(arrays, kwargs, upstream=None):
    """(value, {name: gradient}) from torch.nn.functional.linear_cross_entropy and torch autograd."""
    wrt = _wrt(arrays)
    t = {k: torch.from_numpy(np.array(v)).requires_grad_(k in wrt) for k, v in arrays.items() if v is not None}
    value = F.linear_cross_entropy(t["input"], t["linear_weight"], t["target"], linear_bias=t.get("linear_bias"),
                                   weight=t.get("weight"), **kwargs)
    upstream = _upstream(tuple(value.shape)) if upstream is None else upstream
    grads = torch.autograd.grad(value, [t[k] for k in wrt], torch.from_numpy(np.array(upstream)))
    return value.detach().numpy(), dict(zip(wrt, (g.numpy() for g in grads))), upstream


def _call(arrays, kwargs, function=None):
    """f(*differentiable arrays) -> lossy_jax.linear_cross_entropy, the others fixed; and those arrays."""
    wrt = _wrt(arrays)
    fixed = {k: None if v is None else jnp.asarray(v) for k, v in arrays.items()}

    def f(*diff):
        a = dict(fixed, **dict(zip(wrt, diff)))
        return (function or lce)(a["input"], a["linear_weight"], a["target"], linear_bias=a["linear_bias"],
                                 weight=a["weight"], **kwargs)

    return f, wrt, [jnp.asarray(arrays[k]) for k in wrt]


def _vjp(f, args, cotangent, *more):
    """``(f(*args), vjp(cotangent), vjp(more[0]), ...)``, jitted as one program (DESIGN.md: JAX tests
    run jitted; one compilation per check keeps the file fast)."""

    @jax.jit
    def run(args, cotangents):
        value, vjp = jax.vjp(f, *args)
        return (value, *(vjp(c) for c in cotangents))

    return run(args, (cotangent, *more))


def _lossy(arrays, kwargs, upstream):
    f, wrt, args = _call(arrays, kwargs)
    value, grads = _vjp(f, args, jnp.asarray(upstream))
    return value, dict(zip(wrt, grads))


def _check_against_torch(arrays, kwargs, lossy_kwargs=None):
    expected, expected_grads, upstream = _torch(arrays, kwargs)
    value, grads = _lossy(arrays, dict(kwargs, **(lossy_kwargs or {})), upstream)
    assert value.shape == expected.shape and value.dtype == jnp.float64
    _close(value, expected)
    assert grads.keys() == expected_grads.keys()
    for k in grads:
        assert grads[k].shape == expected_grads[k].shape, k
        _close(grads[k], expected_grads[k])


# ------------------------------------------------------------- 1. values and gradients against torch

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_plain_matches_torch(reduction):
    _check_against_torch(_case(), {"reduction": reduction}, {"chunk_size": 3})  # 7 rows: chunks 3, 3, 1


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weight_ignore_index_smoothing_and_bias_match_torch(reduction):
    arrays = _case(2, bias=True, weight=True, ignored=(1, 4))
    _check_against_torch(arrays, {"reduction": reduction, "label_smoothing": 0.2}, {"chunk_size": 2})
    _check_against_torch(arrays, {"reduction": reduction}, {"chunk_size": 4})  # no smoothing: the specialisation


def test_custom_ignore_index_matches_torch():
    _check_against_torch(_case(3, weight=True, ignored=(0, 5), ignore_index=3),
                         {"ignore_index": 3, "label_smoothing": 0.1}, {"chunk_size": 3})


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_targets_match_torch_including_the_target_gradient(reduction):
    arrays = _case(4, weight=True, bias=True, probabilities=True)
    _check_against_torch(arrays, {"reduction": reduction, "label_smoothing": 0.3}, {"chunk_size": 3})


@pytest.mark.parametrize("probabilities", [False, True])
def test_k_dimensional_weight_matches_torch(probabilities):
    # linear_weight (C, 2, 3, D): a softmax over C for each of the 6 positions of each row.
    arrays = _case(5, n=5, d=4, c=6, out=(2, 3), bias=True, weight=True, probabilities=probabilities,
                   ignored=() if probabilities else (2, 7, 29))
    for reduction in ("mean", "none"):
        _check_against_torch(arrays, {"reduction": reduction, "label_smoothing": 0.1}, {"chunk_size": 2})


@pytest.mark.parametrize("probabilities", [False, True])
def test_unbatched_matches_torch(probabilities):
    arrays = _case(6, bias=True, weight=True, probabilities=probabilities, unbatched=True)
    _check_against_torch(arrays, {})
    _check_against_torch(arrays, {"reduction": "none", "label_smoothing": 0.2})


@pytest.mark.parametrize("chunk_size", [1, 2, 6, 50, None])
def test_every_chunk_size_matches_torch(chunk_size):
    # 7 rows: 1 (a chunk per row), 2 (ragged last chunk of 1), 6 (last chunk of 1), 50 (larger than N:
    # one chunk of 7), None (lossy_core's byte budget: one chunk of 7 here). A multiple: next test.
    arrays = _case(7, bias=True, weight=True, ignored=(3,))
    for reduction in ("mean", "none"):
        _check_against_torch(arrays, {"reduction": reduction, "label_smoothing": 0.1}, {"chunk_size": chunk_size})


def test_rows_a_multiple_of_the_chunk_match_torch():
    _check_against_torch(_case(8, n=8, weight=True), {}, {"chunk_size": 4})  # no padding at all


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_every_target_ignored_gives_torchs_nan_or_zero_and_zero_gradients(reduction):
    arrays = _case(9, weight=True, ignored=range(7))
    expected, expected_grads, upstream = _torch(arrays, {"reduction": reduction})
    value, grads = _lossy(arrays, {"reduction": reduction, "chunk_size": 3}, upstream)
    assert np.isnan(expected) if reduction == "mean" else expected == 0  # torch's own result, live
    _close(value, expected)
    for k in grads:
        assert np.all(expected_grads[k] == 0)
        _close(grads[k], expected_grads[k])


def test_empty_batch_matches_torch():
    arrays = _case(10, n=0, weight=True)
    for reduction in ("mean", "sum", "none"):
        _check_against_torch(arrays, {"reduction": reduction})


# ------------------------------------------------------------- 2. z-loss, softcap, return_lse

def _explicit(x, W, target, b=None, weight=None, eps=0.0, s=0.0, softcap=None, reduction="mean",
              ignore_index=-100):
    """``(loss, lse)`` on the full ``(N, C)`` logits, written from the definitions: torch's
    cross_entropy (class weights, ignore_index, label smoothing ``eps``; 'mean' divides by
    ``sum w[y]`` over kept targets, or by N for probabilities) plus PaLM's z-loss
    ``s * lse^2`` per position (weighted by ``w[y]`` like the target's term), on Gemma 2's soft-capped
    logits ``c * tanh(z / c)``."""
    z = x @ W.T if b is None else x @ W.T + b
    if softcap is not None:
        z = softcap * jnp.tanh(z / softcap)
    lse = jax.scipy.special.logsumexp(z, axis=1)
    log_p = z - lse[:, None]
    c = z.shape[1]
    w = jnp.ones(c, z.dtype) if weight is None else weight
    if jnp.issubdtype(target.dtype, jnp.floating):
        loss = -jnp.sum(w * ((1 - eps) * target + eps / c) * log_p, axis=1) + s * lse**2
        denominator = z.shape[0]
    else:
        kept = target != ignore_index
        y = jnp.where(kept, target, 0)
        w_y = w[y] * kept
        picked = jnp.take_along_axis(log_p, y[:, None], axis=1)[:, 0]
        loss = -(1 - eps) * w_y * picked - eps / c * kept * jnp.sum(w * log_p, axis=1) + s * w_y * lse**2
        denominator = jnp.sum(w_y)
    value = {"none": loss, "sum": jnp.sum(loss), "mean": jnp.sum(loss) / denominator}[reduction]
    return value, lse


def _explicit_call(arrays, kwargs):
    """f(*differentiable arrays) -> ``_explicit``'s (loss, lse), the analogue of ``_call``."""
    wrt = _wrt(arrays)
    fixed = {k: None if v is None else jnp.asarray(v) for k, v in arrays.items()}
    names = {"label_smoothing": "eps", "lse_square_scale": "s"}
    options = {names.get(k, k): v for k, v in kwargs.items() if k not in ("chunk_size", "return_lse")}

    def f(*diff):
        a = dict(fixed, **dict(zip(wrt, diff)))
        return _explicit(a["input"], a["linear_weight"], a["target"], a["linear_bias"], a["weight"], **options)

    return f


@pytest.mark.parametrize("probabilities", [False, True])
def test_explicit_formula_is_torchs(probabilities):
    # The reference of section 2, anchored: without z-loss and cap it is torch's value and gradients.
    arrays = _case(11, bias=True, weight=True, probabilities=probabilities, ignored=() if probabilities else (2,))
    for reduction in ("mean", "none"):
        kwargs = {"reduction": reduction, "label_smoothing": 0.2}
        expected, expected_grads, upstream = _torch(arrays, kwargs)
        f = _explicit_call(arrays, kwargs)
        args = [jnp.asarray(arrays[k]) for k in _wrt(arrays)]
        (value, _), grads = _vjp(f, args, (jnp.asarray(upstream), jnp.zeros(args[0].shape[:1])))
        _close(value, expected)
        for g, k in zip(grads, _wrt(arrays)):
            _close(g, expected_grads[k])


def _check_against_explicit(arrays, kwargs, cotangents):
    """lossy_jax vs autodiff of ``_explicit``, for each ``(g_loss, g_lse)`` pair (None: not returned)."""
    f = _call(arrays, kwargs)[0]
    reference = _explicit_call(arrays, kwargs)
    args = [jnp.asarray(arrays[k]) for k in _wrt(arrays)]
    returns_lse = kwargs.get("return_lse", False)
    pairs = [(g, jnp.zeros(args[0].shape[:1]) if g_lse is None else g_lse) for g, g_lse in cotangents]
    (expected, expected_lse), *wanted = _vjp(reference, args, *pairs)
    out, *gotten = _vjp(f, args, *(pairs if returns_lse else [g for g, _ in pairs]))
    value, lse = out if returns_lse else (out, None)
    _close(value, expected)
    if lse is not None:
        _close(lse, expected_lse)
    for got, want in zip(gotten, wanted):
        for a, e in zip(got, want):
            _close(a, e, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("probabilities", [False, True])
def test_z_loss_and_softcap_match_autodiff_of_the_explicit_formula(reduction, probabilities):
    arrays = _case(12, bias=True, weight=True, probabilities=probabilities, ignored=() if probabilities else (1, 5))
    scalar = reduction != "none"
    g = jnp.asarray(_upstream(() if scalar else (7,)))
    # softcap alone is checked against torch below; here z-loss alone, and everything together.
    for options in ({"lse_square_scale": 0.3}, {"lse_square_scale": 0.3, "softcap": 1.5, "label_smoothing": 0.2}):
        if options.keys() == {"lse_square_scale"} and reduction == "sum":
            continue  # 'sum' differs from 'mean' only by the denominator: checked with everything on
        _check_against_explicit(arrays, dict(options, reduction=reduction, chunk_size=3), [(g, None)])


def test_softcap_matches_torch_cross_entropy_on_capped_logits():
    # Gemma 2's cap, c * tanh(z / c), then torch's cross_entropy: both live in torch.
    arrays = _case(13, bias=True, weight=True, ignored=(4,))
    t = {k: torch.from_numpy(v).requires_grad_(k in ("input", "linear_weight", "linear_bias"))
         for k, v in arrays.items() if v is not None}
    logits = F.linear(t["input"], t["linear_weight"], t["linear_bias"])
    expected = F.cross_entropy(2.0 * torch.tanh(logits / 2.0), t["target"], weight=t["weight"], label_smoothing=0.1)
    expected_grads = torch.autograd.grad(expected, [t["input"], t["linear_weight"], t["linear_bias"]])
    value, grads = _lossy(arrays, {"softcap": 2.0, "label_smoothing": 0.1, "chunk_size": 2}, 1.0)
    _close(value, expected.detach().numpy())
    for k, e in zip(("input", "linear_weight", "linear_bias"), expected_grads):
        _close(grads[k], e.numpy())


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_return_lse_values_and_gradients(reduction):
    arrays = _case(14, bias=True, weight=True, ignored=(2,))
    kwargs = {"reduction": reduction, "return_lse": True, "lse_square_scale": 0.1, "chunk_size": 3}
    # The lse is torch.logsumexp of torch's linear logits (live).
    value, lse = lce(*(jnp.asarray(arrays[k]) for k in ("input", "linear_weight", "target")),
                     linear_bias=jnp.asarray(arrays["linear_bias"]), weight=jnp.asarray(arrays["weight"]), **kwargs)
    logits = F.linear(*(torch.from_numpy(arrays[k]) for k in ("input", "linear_weight", "linear_bias")))
    _close(lse, torch.logsumexp(logits, dim=1).numpy())
    assert lse.shape == (7,) and lse.dtype == jnp.float64
    g = jnp.asarray(_upstream(() if reduction == "mean" else (7,)))
    g_lse = jnp.asarray(_upstream((7,), seed=2))
    # Loss cotangent only (the one-pass gradients), lse only, and both (a recompute with upstream_lse).
    _check_against_explicit(arrays, kwargs, [(g, None), (jnp.zeros_like(g), g_lse), (g, g_lse)])


def test_return_lse_under_grad_of_each_output():
    # jax.grad of the loss alone gives the lse a symbolic-zero cotangent (the one-pass path): torch's
    # gradients; jax.grad of sum(lse) alone gives the loss a symbolic zero: autodiff of the explicit lse.
    arrays = _case(15, weight=True)
    _, expected, _ = _torch(arrays, {}, upstream=np.asarray(1.0))
    f, wrt, args = _call(arrays, {"return_lse": True, "chunk_size": 2})
    for k, g in zip(wrt, jax.jit(jax.grad(lambda *a: f(*a)[0], argnums=(0, 1)))(*args)):
        _close(g, expected[k])
    reference = _explicit_call(arrays, {})
    want = jax.jit(jax.grad(lambda *a: jnp.sum(reference(*a)[1]), argnums=(0, 1)))(*args)
    for got, e in zip(jax.jit(jax.grad(lambda *a: jnp.sum(f(*a)[1]), argnums=(0, 1)))(*args), want):
        _close(got, e)


def test_gradients_of_the_traced_hyperparameters_match_autodiff_of_the_explicit_formula():
    arrays = _case(16, bias=True, weight=True, ignored=(3,))
    x, W, t, b, w = (jnp.asarray(arrays[k]) for k in ("input", "linear_weight", "target", "linear_bias", "weight"))
    for reduction in ("mean", "none"):
        def ours(eps, s, x):
            out = lce(x, W, t, linear_bias=b, weight=w, reduction=reduction, label_smoothing=eps,
                      lse_square_scale=s, chunk_size=3)
            return jnp.sum(out * jnp.arange(1.0, 1.0 + out.size).reshape(out.shape))

        def reference(eps, s, x):
            out = _explicit(x, W, t, b, w, eps=eps, s=s, reduction=reduction)[0]
            return jnp.sum(out * jnp.arange(1.0, 1.0 + out.size).reshape(out.shape))

        got = jax.jit(jax.grad(ours, argnums=(0, 1, 2)))(0.25, 0.05, x)
        want = jax.jit(jax.grad(reference, argnums=(0, 1, 2)))(0.25, 0.05, x)
        assert want[0] != 0 and want[1] != 0  # the hyperparameters really change the loss
        for a, e in zip(got, want):
            _close(a, e, rtol=1e-11)
        # One hyperparameter alone (the other and x not differentiated), outside any user jit.
        _close(jax.grad(ours)(0.25, 0.05, x), want[0], rtol=1e-11)


# ------------------------------------------------------------- 3. transformations and compilation

def _simple():
    arrays = _case(17, bias=True, weight=True, ignored=(2,))
    return arrays, [jnp.asarray(arrays[k]) for k in ("input", "linear_weight", "target", "linear_bias", "weight")]


def test_value_and_grad_and_grad_inside_a_users_jit_match_torch():
    arrays, (x, W, t, b, w) = _simple()
    expected, expected_grads, _ = _torch(arrays, {"label_smoothing": 0.1}, upstream=np.asarray(1.0))

    def loss(x, W, b, smoothing):
        return lce(x, W, t, linear_bias=b, weight=w, label_smoothing=smoothing, chunk_size=3)

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(x, W, b, 0.1)
    _close(value, expected)
    for g, k in zip(grads, ("input", "linear_weight", "linear_bias")):
        _close(g, expected_grads[k])

    @jax.jit
    def user_step(x, W, b):
        return 2.0 * loss(x, W, b, 0.1) + 1.0

    _close(user_step(x, W, b), 2.0 * expected + 1.0)
    _close(jax.grad(user_step, argnums=1)(x, W, b), 2.0 * expected_grads["linear_weight"])


def test_frozen_weight_and_frozen_input_give_the_other_gradient():
    arrays, (x, W, t, b, w) = _simple()
    _, expected, _ = _torch(arrays, {}, upstream=np.asarray(1.0))
    f = lambda x, W: lce(x, W, t, linear_bias=b, weight=w, chunk_size=2)  # noqa: E731
    _close(jax.grad(f, argnums=0)(x, W), expected["input"])  # jax.grad outside any user jit
    _close(jax.jit(jax.grad(f, argnums=1))(x, W), expected["linear_weight"])


def test_vmap_of_the_forward_and_of_the_gradient_match_a_loop():
    rng = np.random.default_rng(18)
    xs = rng.normal(size=(3, 7, 5))
    ts = rng.integers(0, 11, size=(3, 7))
    ts[1, 2] = -100
    arrays, (_, W, _, b, w) = _simple()
    f = lambda x, W, t: lce(x, W, t, linear_bias=b, weight=w, label_smoothing=0.1, chunk_size=3)  # noqa: E731
    mapped = jax.vmap(f, in_axes=(0, None, 0))(jnp.asarray(xs), W, jnp.asarray(ts))
    per_example = jax.vmap(jax.grad(f, argnums=(0, 1)), in_axes=(0, None, 0))(jnp.asarray(xs), W, jnp.asarray(ts))
    assert mapped.shape == (3,)
    for i in range(3):
        one = dict(arrays, input=xs[i], target=ts[i])
        expected, expected_grads, _ = _torch(one, {"label_smoothing": 0.1}, upstream=np.asarray(1.0))
        _close(mapped[i], expected)
        _close(per_example[0][i], expected_grads["input"])
        _close(per_example[1][i], expected_grads["linear_weight"])


def test_new_hyperparameter_values_do_not_recompile():
    # (jax counts the compilations of lce.jitted and lce.jitted_default, the default-0 specialisation,
    # in one cache: both compile the same function.)
    arrays, (x, W, t, b, w) = _simple()
    lce.jitted.clear_cache()
    lce(x, W, t, chunk_size=3)
    default = lce.jitted._cache_size()
    values = []
    for smoothing, scale in ((0.1, 0.0), (0.2, 0.01), (0.3, 1)):  # 1: an int, no new weak-type signature
        values.append(float(lce(x, W, t, chunk_size=3, label_smoothing=smoothing, lse_square_scale=scale)))
    assert lce.jitted._cache_size() == default + 1  # the traced version, once
    assert len(set(values)) == 3  # the values really reach the compiled code
    lce(x, W, t, chunk_size=4, label_smoothing=0.1)  # a static option compiles anew
    assert lce.jitted._cache_size() == default + 2


def _count_matmuls(f, *args):
    """dot_general equations in the jaxpr of ``value_and_grad(f)`` (scan bodies included)."""
    return str(jax.make_jaxpr(jax.value_and_grad(f, argnums=(0, 1)))(*args)).count("dot_general[")


def test_scalar_reductions_take_value_and_gradients_in_one_pass():
    # One scan, three matmuls (logits, dX, dW); 'none' recomputes the logits in a second scan: four.
    arrays, (x, W, t, _, _) = _simple()
    mean = lambda x, W: lce(x, W, t, chunk_size=3)  # noqa: E731
    none = lambda x, W: jnp.sum(lce(x, W, t, chunk_size=3, reduction="none"))  # noqa: E731
    assert _count_matmuls(mean, x, W) == 3
    assert _count_matmuls(none, x, W) == 4
    hlo = jax.jit(jax.value_and_grad(mean, argnums=(0, 1))).lower(x, W).as_text()
    assert len(re.findall(r"stablehlo\.while", hlo)) == 1  # the chunk loop is a loop, not unrolled


def test_memory_is_bounded_by_the_gradients_not_the_logits():
    # N=1024, D=256, V=8192, float32, 128-row chunks: XLA's own scratch estimate for value_and_grad.
    n, d, v = 1024, 256, 8192
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(k1, (n, d), jnp.float32)
    W = 0.02 * jax.random.normal(k2, (v, d), jnp.float32)
    t = jax.random.randint(k3, (n,), 0, v)

    def temp(f):
        compiled = jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(x, W).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    ours = temp(lambda x, W: lce(x, W, t, chunk_size=128))
    full = temp(lambda x, W: optax.softmax_cross_entropy_with_integer_labels(x @ W.T, t).mean())
    weight_gradient, logits = v * d * 4, n * v * 4
    assert full >= logits  # optax keeps the N x V logits (and their softmax)
    assert ours <= 2 * weight_gradient
    assert ours <= logits / 2 and ours <= full / 4


# ------------------------------------------------------------- 4. dtypes, errors and NaN

def test_float32_and_bfloat16_results_in_torchs_dtypes_accumulated_in_float32():
    arrays = _case(19, n=16, d=8, c=50, bias=True, ignored=(3,))
    truth, truth_grads, _ = _torch(arrays, {}, upstream=np.asarray(1.0))  # float64 torch
    for dtype, tol in ((jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)):
        low = {k: v if v is None or not np.issubdtype(v.dtype, np.floating) else jnp.asarray(v, dtype)
               for k, v in arrays.items()}
        f, wrt, args = _call(low, {"chunk_size": 5, "return_lse": True})
        (value, lse), grads = _vjp(f, args, (jnp.ones((), dtype), jnp.zeros((16,), jnp.float32)))
        assert value.dtype == dtype and lse.dtype == jnp.float32  # torch: the input's dtype; lse: compute
        _close(value.astype(jnp.float64), truth, rtol=tol, atol=tol)
        for g, k in zip(grads, wrt):
            assert g.dtype == dtype
            scale = np.abs(truth_grads[k]).max()
            _close(g.astype(jnp.float64) / scale, truth_grads[k] / scale, rtol=0, atol=tol)


def test_out_of_range_class_index_gives_nan_never_a_wrong_number():
    arrays = _case(20, ignored=(4,), ignore_index=11)  # 11 == C: out of range (not ignore_index here)
    x, W, t = (jnp.asarray(arrays[k]) for k in ("input", "linear_weight", "target"))
    with pytest.raises(IndexError):  # torch raises on the CPU; under jit lossy_jax cannot
        F.linear_cross_entropy(*(torch.from_numpy(arrays[k]) for k in ("input", "linear_weight", "target")))
    assert np.isnan(lce(x, W, t))
    dx, dw = jax.jit(jax.grad(lambda x, W: lce(x, W, t, chunk_size=3), argnums=(0, 1)))(x, W)
    assert np.isnan(dx[4]).all() and np.isnan(dw).all()
    # 'none': only the bad position is NaN; the others are torch's values on the in-range rows.
    per_row = lce(x, W, t, reduction="none", chunk_size=3)
    keep = np.arange(7) != 4
    assert np.isnan(per_row[4])
    expected, _, _ = _torch({k: (v[keep] if k in ("input", "target") else v) for k, v in arrays.items()},
                            {"reduction": "none"})
    _close(per_row[keep], expected)


def test_hyperparameter_checks_raise_like_torch_and_give_nan_under_tracing():
    arrays, (x, W, t, _, _) = _simple()
    with pytest.raises(Exception) as torch_error:  # torch's own exception type for label_smoothing > 1
        F.linear_cross_entropy(torch.from_numpy(arrays["input"]), torch.from_numpy(arrays["linear_weight"]),
                               torch.from_numpy(arrays["target"]), label_smoothing=1.5)
    for value in (1.5, jnp.asarray(1.5)):  # a Python number and a readable array both raise now
        with pytest.raises(torch_error.type):
            lce(x, W, t, label_smoothing=value)
    with pytest.raises(ValueError, match="lse_square_scale"):
        lce(x, W, t, lse_square_scale=-1.0)
    traced = jax.jit(lambda eps, s: lce(x, W, t, label_smoothing=eps, lse_square_scale=s))
    assert np.isnan(traced(1.5, 0.0)) and np.isnan(traced(0.1, -1.0)) and np.isfinite(traced(0.1, 0.0))


def test_differentiating_the_class_weight_raises_like_torch():
    arrays, (x, W, t, _, w) = _simple()
    tensors = {k: torch.from_numpy(arrays[k]) for k in ("input", "linear_weight", "target", "weight")}
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        value = F.linear_cross_entropy(tensors["input"], tensors["linear_weight"], tensors["target"],
                                       weight=tensors["weight"].requires_grad_(True))
        torch.autograd.grad(value, [tensors["weight"]])
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        jax.grad(lambda w: lce(x, W, t, weight=w))(w)
    # A constant weight (or a stopped gradient) is fine.
    jax.grad(lambda x, w: lce(x, W, t, weight=jax.lax.stop_gradient(w)))(x, w)


def test_shape_and_dtype_errors_raise_before_compute():
    arrays, (x, W, t, _, _) = _simple()
    with pytest.raises(RuntimeError, match="same dtype"):
        lce(x, W.astype(jnp.float32), t)
    with pytest.raises(ValueError, match="batch_size"):
        lce(x, W, t[:3])
    with pytest.raises(ValueError, match="chunk_size"):
        lce(x, W, t, chunk_size=0)


def test_a_float_chunk_size_does_not_poison_the_cache_for_its_integer():
    # 2.0 == 2 (and hash alike): the compiled loss for chunk_size=2 must not be the one first built
    # for the refused chunk_size=2.0 (found in a full test run, where another test passed 2.0 first).
    arrays, (x, W, t, b, w) = _simple()
    with pytest.raises(ValueError, match="chunk_size"):
        lce(x, W, t, chunk_size=2.0)
    _, expected, _ = _torch(arrays, {}, upstream=np.asarray(1.0))
    _close(jax.grad(lambda x: lce(x, W, t, linear_bias=b, weight=w, chunk_size=2))(x), expected["input"])
