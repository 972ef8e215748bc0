"""The JAX adapter, ``lossy_jax``: values, compilation caching, transformations,
dtypes, errors under tracing, NaN for data-dependent violations, finite gradients.

Every expected value is computed live by ``torch.nn.functional`` (the reference)
on the same numbers; exhaustive parity is the conformance suite's job, so each
loss gets one representative input here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
jax.config.update("jax_enable_x64", True)  # conftest does this at pytest start; repeated for a lone run

import jax.numpy as jnp  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lossy_core  # noqa: E402
from conformance.plain_torch import REFERENCES  # noqa: E402
import lossy_jax  # noqa: E402
from conformance.reference import reference_function  # noqa: E402

RTOL = 1e-12  # DESIGN.md: float64 must agree with torch to ~1e-12 relative
ATOL = 1e-12

# Losses the adapter binds by hand (extra["adapters"] == "own": linear_cross_entropy, whose loop over
# row chunks is lax.scan under a custom_vjp) have their own test file (tests/test_linear_cross_entropy_jax.py:
# values and gradients against torch, vmap, a user's jit, recompilation, dtypes); the per-loss tests here
# are the generated bindings'. The signature and traced-option checks below cover every loss.
NAMES = [spec.name for spec in lossy_core.losses() if spec.extra.get("adapters") != "own"]


# --------------------------------------------------------------------------- cases

def _case(name, seed=0, batch=()):
    """(arrays, kwargs) for one representative call: ``arrays`` is an ordered dict of
    numpy float64 / int64 arrays (positional first, then keyword arrays), ``batch``
    prepends extra leading axes to the positional arrays (for vmap)."""
    rng = np.random.default_rng(seed)
    n, c = 4, 5

    def normal(*shape):
        return rng.normal(size=batch + shape)

    if name in ("l1_loss", "mse_loss"):
        return {"input": normal(n, c), "target": normal(n, c)}, {}
    if name == "smooth_l1_loss":
        return {"input": normal(n, c), "target": normal(n, c)}, {"beta": 0.7}
    if name == "huber_loss":
        return {"input": normal(n, c), "target": normal(n, c)}, {"delta": 0.8}
    if name == "binary_cross_entropy":
        return {"input": rng.uniform(0.05, 0.95, size=batch + (n, c)),
                "target": rng.uniform(0.0, 1.0, size=batch + (n, c)),
                "weight": rng.uniform(0.5, 2.0, size=(c,))}, {}
    if name == "binary_cross_entropy_with_logits":
        return {"input": 3 * normal(n, c), "target": rng.uniform(0.0, 1.0, size=batch + (n, c)),
                "weight": rng.uniform(0.5, 2.0, size=(c,)),
                "pos_weight": rng.uniform(0.5, 2.0, size=(c,))}, {}
    if name == "cross_entropy":
        target = rng.integers(0, c, size=batch + (n,))
        target[..., 1] = -100  # one ignored position (torch's default ignore_index)
        return {"input": 2 * normal(n, c), "target": target,
                "weight": rng.uniform(0.5, 2.0, size=(c,))}, {"label_smoothing": 0.1}
    if name == "nll_loss":
        logits = normal(n, c)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return {"input": log_probs, "target": rng.integers(0, c, size=batch + (n,)),
                "weight": rng.uniform(0.5, 2.0, size=(c,))}, {}
    if name == "kl_div":
        logits = normal(n, c)
        log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        p = rng.uniform(0.0, 1.0, size=batch + (n, c))
        p /= p.sum(-1, keepdims=True)
        p[..., 0, 0] = 0.0  # a zero target: 0 log 0 = 0
        return {"input": log_q, "target": p}, {"reduction": "batchmean"}
    if name == "poisson_nll_loss":
        # log_input=False so that eps (traced) reaches the value
        return {"input": rng.uniform(0.0, 2.0, size=batch + (n, c)),
                "target": np.floor(rng.uniform(0.0, 5.0, size=batch + (n, c)))}, {"log_input": False, "full": True}
    if name == "gaussian_nll_loss":
        # variances on both sides of eps = 0.45 (the traced-eps test's point) and of 1e-6
        return {"input": normal(n, c), "target": normal(n, c),
                "var": rng.uniform(0.05, 1.5, size=batch + (n, c))}, {"eps": 0.3, "full": True}
    if name in ("margin_ranking_loss", "cosine_embedding_loss"):
        y = rng.choice([-1.0, 1.0], size=batch + (n,))
        if name == "margin_ranking_loss":
            return {"input1": normal(n), "input2": normal(n), "target": y}, {"margin": 0.3}
        first = normal(n, c)  # correlated pairs: some y = -1 rows have cos above the margins used (0.1-0.9)
        return {"input1": first, "input2": first + 0.5 * normal(n, c), "target": y}, {"margin": 0.1}
    if name == "hinge_embedding_loss":
        return {"input": normal(n, c), "target": rng.choice([-1.0, 1.0], size=batch + (n, c))}, {"margin": 0.8}
    if name == "soft_margin_loss":
        return {"input": 2 * normal(n, c), "target": rng.choice([-1.0, 1.0], size=batch + (n, c))}, {}
    if name == "multilabel_soft_margin_loss":
        return {"input": 2 * normal(n, c), "target": rng.uniform(0.0, 1.0, size=batch + (n, c)),
                "weight": rng.uniform(0.5, 2.0, size=(c,))}, {}
    if name == "multilabel_margin_loss":
        target = rng.integers(0, c, size=batch + (n, c))
        target[..., 2] = -1  # the targets of each row are its first two entries
        return {"input": normal(n, c), "target": target}, {}
    if name == "multi_margin_loss":
        return {"input": normal(n, c), "target": rng.integers(0, c, size=batch + (n,)),
                "weight": rng.uniform(0.5, 2.0, size=(c,))}, {"p": 2, "margin": 0.7}
    if name == "triplet_margin_loss":
        return {"anchor": normal(n, c), "positive": normal(n, c), "negative": normal(n, c)}, \
            {"margin": 1.5, "swap": True, "p": 3.0}
    if name == "triplet_margin_with_distance_loss":
        return {"anchor": normal(n, c), "positive": normal(n, c), "negative": normal(n, c)}, \
            {"margin": 1.5, "swap": True}
    if name == "ctc_loss":  # (T, N, C) log-probabilities, padded targets, varying lengths
        logits = normal(6, 3, c)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        targets = rng.integers(1, c, size=batch + (3, 3))
        return {"log_probs": log_probs, "targets": targets,
                "input_lengths": np.broadcast_to(np.array([6, 5, 4]), batch + (3,)).copy(),
                "target_lengths": np.broadcast_to(np.array([3, 2, 0]), batch + (3,)).copy()}, {}
    if name == "sigmoid_focal_loss":
        return {"inputs": 3 * normal(n, c), "targets": rng.uniform(0.0, 1.0, size=batch + (n, c)),
                "weight": rng.uniform(0.5, 2.0, size=(c,)),
                "pos_weight": rng.uniform(0.5, 2.0, size=(c,))}, {"gamma": 1.5, "alpha": 0.3, "reduction": "mean"}
    if name == "binary_focal_loss":
        return {"input": rng.uniform(0.05, 0.95, size=batch + (n, c)),
                "target": rng.uniform(0.0, 1.0, size=batch + (n, c)),
                "weight": rng.uniform(0.5, 2.0, size=(c,))}, {"gamma": 1.5, "alpha": 0.3}
    if name == "softmax_focal_loss":
        target = rng.integers(0, c, size=batch + (n,))
        target[..., 1] = -100
        return {"input": 2 * normal(n, c), "target": target,
                "weight": rng.uniform(0.5, 2.0, size=(c,))}, {"gamma": 1.5, "alpha": 0.5}
    if name in ("quality_focal_loss", "varifocal_loss"):
        scores = rng.uniform(0.05, 1.0, size=batch + (n, c))
        target = np.where(rng.uniform(size=batch + (n, c)) < 0.4, scores, 0.0)
        options = {"beta": 1.5} if name == "quality_focal_loss" else {"alpha": 0.6, "gamma": 1.5}
        return {"input": 3 * normal(n, c), "target": target, "weight": rng.uniform(0.5, 2.0, size=(c,))}, options
    if name == "asymmetric_loss":
        target = (rng.uniform(size=batch + (n, c)) < 0.4).astype(np.float64)
        return {"input": 3 * normal(n, c), "target": target, "weight": rng.uniform(0.5, 2.0, size=(c,))}, {
            "gamma_neg": 3.0, "clip": 0.1}
    if name == "distribution_focal_loss":
        return {"input": 2 * normal(n, 6), "target": rng.uniform(0.0, 5.0, size=batch + (n,)),
                "weight": rng.uniform(0.5, 2.0, size=(n,))}, {}
    if name == "poly1_cross_entropy":
        target = rng.integers(0, c, size=batch + (n,))
        target[..., 1] = -100
        return {"input": 2 * normal(n, c), "target": target,
                "weight": rng.uniform(0.5, 2.0, size=(c,))}, {"label_smoothing": 0.1, "epsilon": 1.5}
    raise AssertionError(f"no representative case for {name}; add one")


def _spec(name):
    return lossy_core.get(name) if hasattr(lossy_core, "get") else {s.name: s for s in lossy_core.losses()}[name]


def _split(name, arrays):
    spec = _spec(name)
    positional = [arrays[a] for a in spec.arrays]
    keywords = {k: v for k, v in arrays.items() if k not in spec.arrays}
    return positional, keywords


def _float_arrays(name, arrays):
    """Names of the positional arrays we differentiate: the spec's differentiable ones that are float."""
    spec = _spec(name)
    return [a for a in spec.arrays if a in spec.differentiable and np.issubdtype(arrays[a].dtype, np.floating)]


def _to_jax(a, dtype=None):
    return jnp.asarray(a if dtype is None or not np.issubdtype(a.dtype, np.floating) else a.astype(dtype))


def _to_torch(a, dtype=None, grad=False):
    t = torch.from_numpy(np.array(a if dtype is None or not np.issubdtype(a.dtype, np.floating) else a.astype(dtype)))
    return t.requires_grad_(grad)


def _torch_function(name):
    """torch.nn.functional's loss, or the plain-torch reference of a loss torch lacks."""
    return REFERENCES.get(name) or getattr(F, name)


def _torch_value(name, arrays, kwargs, dtype=None):
    positional, keywords = _split(name, arrays)
    return reference_function(name)(*[_to_torch(a, dtype) for a in positional],
                            **{k: _to_torch(v, dtype) for k, v in keywords.items()}, **kwargs)


def _torch_grads(name, arrays, kwargs, wrt):
    spec = _spec(name)
    tensors = {k: _to_torch(v, grad=k in wrt) for k, v in arrays.items()}
    value = reference_function(name)(*[tensors[a] for a in spec.arrays],
                             **{k: v for k, v in tensors.items() if k not in spec.arrays}, **kwargs)
    grads = torch.autograd.grad(value, [tensors[k] for k in wrt])
    return [g.numpy() for g in grads]


def _lossy(name, arrays, kwargs, dtype=None):
    positional, keywords = _split(name, arrays)
    return getattr(lossy_jax, name)(*[_to_jax(a, dtype) for a in positional],
                                    **{k: _to_jax(v, dtype) for k, v in keywords.items()}, **kwargs)


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- 1. values

def test_every_registered_loss_is_exposed_with_the_core_signature():
    import inspect

    for spec in lossy_core.losses():
        function = getattr(lossy_jax, spec.name)
        assert inspect.signature(function) == spec.signature(), spec.name
        assert spec.name in lossy_jax.__all__
        assert hasattr(function, "jitted")


@pytest.mark.parametrize("name", NAMES)
def test_value_matches_torch(name):
    arrays, kwargs = _case(name)
    value = _lossy(name, arrays, kwargs)
    assert isinstance(value, jax.Array)
    assert value.dtype == jnp.float64
    _close(value, _torch_value(name, arrays, kwargs).numpy())


@pytest.mark.parametrize("name", ["cross_entropy", "mse_loss", "binary_cross_entropy_with_logits"])
def test_reduction_none_matches_torch(name):
    arrays, kwargs = _case(name)
    kwargs = dict(kwargs, reduction="none")
    value = _lossy(name, arrays, kwargs)
    expected = _torch_value(name, arrays, kwargs).numpy()
    assert value.shape == expected.shape
    _close(value, expected)


def test_cross_entropy_probability_targets_and_negative_smoothing_match_torch():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 2))
    probabilities = rng.uniform(size=(3, 4, 2))
    probabilities /= probabilities.sum(1, keepdims=True)
    for smoothing in (0.0, 0.25):
        _close(lossy_jax.cross_entropy(jnp.asarray(logits), jnp.asarray(probabilities), label_smoothing=smoothing),
               F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(probabilities),
                               label_smoothing=smoothing).numpy())
    # torch accepts a negative label_smoothing and applies no smoothing (checked live here).
    labels = rng.integers(0, 4, size=(3, 2))
    _close(lossy_jax.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), label_smoothing=-0.5),
           F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), label_smoothing=-0.5).numpy())


# --------------------------------------------------------------------------- 2. compilation counting

TRACED = {"cross_entropy": "label_smoothing", "smooth_l1_loss": "beta", "huber_loss": "delta",
          "poisson_nll_loss": "eps", "gaussian_nll_loss": "eps", "margin_ranking_loss": "margin",
          "hinge_embedding_loss": "margin", "cosine_embedding_loss": "margin",
          "multi_margin_loss": "margin", "triplet_margin_loss": "margin", "triplet_margin_with_distance_loss": "margin",
          "sigmoid_focal_loss": "gamma", "quality_focal_loss": "beta", "varifocal_loss": "gamma",
          "asymmetric_loss": "clip", "poly1_cross_entropy": "epsilon"}
# Losses with several traced hyperparameters: the rest of them (TRACED holds the one the tests sweep).
MORE_TRACED = {"triplet_margin_loss": ("eps",), "sigmoid_focal_loss": ("alpha", "normalizer"),
               "binary_focal_loss": ("alpha", "gamma"), "softmax_focal_loss": ("alpha", "gamma"),
               "varifocal_loss": ("alpha",), "asymmetric_loss": ("gamma_neg", "gamma_pos", "eps"),
               "poly1_cross_entropy": ("label_smoothing",),
               "linear_cross_entropy": ("label_smoothing", "lse_square_scale")}


def test_traced_options_are_the_documented_ones():
    traced = {spec.name: set(spec.traced_options) for spec in lossy_core.losses() if spec.traced_options}
    assert traced == {k: {*([TRACED[k]] if k in TRACED else []), *MORE_TRACED.get(k, ())}
                      for k in {*TRACED, *MORE_TRACED}}


@pytest.mark.parametrize("name", sorted(TRACED))
def test_new_hyperparameter_values_do_not_recompile(name):
    option = TRACED[name]
    arrays, kwargs = _case(name, seed=11)
    function = getattr(lossy_jax, name)
    kwargs = dict(kwargs)
    kwargs[option] = 0.1
    first = _lossy(name, arrays, kwargs)
    compiled = function.jitted._cache_size()
    values = []
    # 2 (an int) after floats: a Python int must not be a new (weak int) signature either.
    for value in (0.2, 0.3, 2 if name not in ("cross_entropy", "asymmetric_loss") else 1):
        kwargs[option] = value
        result = _lossy(name, arrays, kwargs)
        values.append(float(result))
        assert function.jitted._cache_size() == compiled, f"{option}={value!r} recompiled {name}"
        _close(result, _torch_value(name, arrays, kwargs).numpy())
    # The values did change: the hyperparameter really reaches the compiled code.
    assert len({float(first), *values}) == 4


@pytest.mark.parametrize("name", NAMES)
def test_same_shapes_reuse_the_cache_and_static_options_recompile(name):
    function = getattr(lossy_jax, name)
    function.jitted.clear_cache()  # other tests may have compiled these shapes already
    arrays, kwargs = _case(name, seed=21)
    _lossy(name, arrays, kwargs)
    compiled = function.jitted._cache_size()
    other, _ = _case(name, seed=22)  # same shapes and dtypes, new values
    result = _lossy(name, other, kwargs)
    assert function.jitted._cache_size() == compiled
    _close(result, _torch_value(name, other, kwargs).numpy())
    # A static option (reduction) is part of the compiled signature.
    _lossy(name, arrays, dict(kwargs, reduction="sum"))
    assert function.jitted._cache_size() == compiled + 1


# --------------------------------------------------------------------------- 3. transformations

def _arg_function(name, arrays, kwargs):
    """(f, args): f(*args) calls lossy_jax.<name> with every array as a positional argument of f."""
    keys = list(arrays)
    spec = _spec(name)

    def f(*values):
        bound = dict(zip(keys, values))
        return getattr(lossy_jax, name)(*[bound[a] for a in spec.arrays],
                                        **{k: v for k, v in bound.items() if k not in spec.arrays}, **kwargs)

    return f, keys, [jnp.asarray(arrays[k]) for k in keys]


@pytest.mark.parametrize("name", NAMES)
def test_grad_matches_torch_autograd(name):
    arrays, kwargs = _case(name, seed=3)
    wrt = _float_arrays(name, arrays)
    assert wrt, name
    f, keys, args = _arg_function(name, arrays, kwargs)
    argnums = tuple(keys.index(k) for k in wrt)
    grads = jax.grad(f, argnums=argnums)(*args)
    expected = _torch_grads(name, arrays, kwargs, wrt)
    for key, g, e in zip(wrt, grads, expected):
        assert g.dtype == jnp.float64
        _close(g, e, atol=1e-12)
    # jit(grad(...)) gives the same numbers.
    jitted = jax.jit(jax.grad(f, argnums=argnums))(*args)
    for g, e in zip(jitted, expected):
        _close(g, e, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_matches_a_python_loop(name):
    batch = 3
    arrays, kwargs = _case(name, seed=4, batch=(batch,))
    spec = _spec(name)
    f, keys, args = _arg_function(name, arrays, kwargs)
    in_axes = tuple(0 if k in spec.arrays else None for k in keys)
    mapped = jax.vmap(f, in_axes=in_axes)(*args)
    assert mapped.shape == (batch,)
    for b in range(batch):
        one = {k: (v[b] if k in spec.arrays else v) for k, v in arrays.items()}
        _close(mapped[b], _torch_value(name, one, kwargs).numpy())
        _close(mapped[b], _lossy(name, one, kwargs))


@pytest.mark.parametrize("name", NAMES)
def test_inside_a_users_jit(name):
    arrays, kwargs = _case(name, seed=5)
    f, keys, args = _arg_function(name, arrays, kwargs)

    @jax.jit
    def user_step(*values):
        return 2.0 * f(*values) + 1.0

    _close(user_step(*args), 2.0 * _torch_value(name, arrays, kwargs).numpy() + 1.0)


@pytest.mark.parametrize("name", sorted(TRACED))
def test_hyperparameter_as_a_traced_argument_of_a_users_jit(name):
    option = TRACED[name]
    arrays, kwargs = _case(name, seed=6)
    positional, keywords = _split(name, arrays)
    traces = []

    @jax.jit
    def user_loss(input, rest, hyper):
        traces.append(1)
        return getattr(lossy_jax, name)(input, *rest, **{k: jnp.asarray(v) for k, v in keywords.items()},
                                        **dict(kwargs, **{option: hyper}))

    @jax.jit
    def user_grad(input, rest, hyper):
        return jax.grad(lambda x: user_loss(x, rest, hyper))(input)

    x, rest = jnp.asarray(positional[0]), tuple(jnp.asarray(a) for a in positional[1:])
    first = _spec(name).arrays[0]
    for i, hyper in enumerate((0.2, 0.5, 0.9)):
        k = dict(kwargs, **{option: hyper})
        _close(user_loss(x, rest, jnp.asarray(hyper)), _torch_value(name, arrays, k).numpy())
        _close(user_grad(x, rest, jnp.asarray(hyper)), _torch_grads(name, arrays, k, [first])[0])
        if i == 0:
            traced_once = len(traces)
    assert len(traces) == traced_once  # new hyperparameter values never retrace the user's functions


@pytest.mark.parametrize("name", sorted(TRACED))
def test_vmap_over_a_traced_hyperparameter(name):
    option = TRACED[name]
    arrays, kwargs = _case(name, seed=15)
    positional, keywords = _split(name, arrays)
    values = (0.1, 0.4, 0.9)
    mapped = jax.vmap(lambda h: getattr(lossy_jax, name)(
        *[jnp.asarray(a) for a in positional], **{k: jnp.asarray(v) for k, v in keywords.items()},
        **dict(kwargs, **{option: h})))(jnp.asarray(values))
    for i, value in enumerate(values):
        _close(mapped[i], _torch_value(name, arrays, dict(kwargs, **{option: value})).numpy())


@pytest.mark.parametrize("name", sorted(TRACED))
def test_grad_with_respect_to_a_traced_hyperparameter_matches_torch_central_difference(name):
    # torch takes the hyperparameter as a Python float (no autograd), so the reference is a
    # central difference of torch's own values (step 1e-5: error O(h^2) ~ 1e-10 for these smooth points).
    option = TRACED[name]
    arrays, kwargs = _case(name, seed=16)
    positional, keywords = _split(name, arrays)
    at, step = 0.45, 1e-5
    g = jax.grad(lambda h: getattr(lossy_jax, name)(
        *[jnp.asarray(a) for a in positional], **{k: jnp.asarray(v) for k, v in keywords.items()},
        **dict(kwargs, **{option: h})))(at)
    plus = _torch_value(name, arrays, dict(kwargs, **{option: at + step})).item()
    minus = _torch_value(name, arrays, dict(kwargs, **{option: at - step})).item()
    assert np.isfinite(float(g)) and float(g) != 0.0
    _close(g, (plus - minus) / (2 * step), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- 4. dtypes

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_result_keeps_the_input_dtype(name, dtype):
    arrays, kwargs = _case(name, seed=8)
    value = _lossy(name, arrays, kwargs, dtype=dtype)
    expected = _torch_value(name, arrays, kwargs, dtype=dtype)
    assert value.dtype == jnp.dtype(dtype)
    assert str(expected.dtype) == f"torch.{np.dtype(dtype).name}"  # torch agrees on the dtype
    tol = 1e-5 if dtype == np.float32 else RTOL
    _close(value, expected.numpy(), rtol=tol, atol=tol)


_X64_OFF_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jax, jax.numpy as jnp
    import lossy_jax
    assert not jax.config.jax_enable_x64
    data = json.loads(sys.stdin.read())
    out = {}
    for name, (positional, keywords, kwargs) in data.items():
        pos = [jnp.asarray(np.asarray(a, dtype=np.int32 if name in ("cross_entropy", "nll_loss", "softmax_focal_loss",
                                                            "poly1_cross_entropy") and i == 1
                                       or np.asarray(a).dtype.kind in "iu" else np.float32))
               for i, a in enumerate(positional)]
        kw = {k: jnp.asarray(np.asarray(v, dtype=np.float32)) for k, v in keywords.items()}
        value = getattr(lossy_jax, name)(*pos, **kw, **kwargs)
        grad = jax.grad(lambda x: getattr(lossy_jax, name)(x, *pos[1:], **kw, **kwargs))(pos[0])
        out[name] = {"value": float(value), "dtype": str(value.dtype), "target_dtype": str(pos[1].dtype),
                     "grad": np.asarray(grad).tolist(), "grad_dtype": str(grad.dtype)}
    print(json.dumps(out))
""")


def test_x64_off_float32_results_and_int32_class_labels():
    cases = {}
    for name in NAMES:
        arrays, kwargs = _case(name, seed=9)
        positional, keywords = _split(name, arrays)
        cases[name] = ([a.tolist() for a in positional], {k: v.tolist() for k, v in keywords.items()}, kwargs)
    env = dict(os.environ, JAX_ENABLE_X64="0", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _X64_OFF_SCRIPT], input=json.dumps(cases), env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in NAMES:
        arrays, kwargs = _case(name, seed=9)
        got = results[name]
        assert got["dtype"] == "float32", name
        assert got["grad_dtype"] == "float32", name
        if name in ("cross_entropy", "nll_loss", "multi_margin_loss", "multilabel_margin_loss",
                    "softmax_focal_loss", "poly1_cross_entropy"):
            assert got["target_dtype"] == "int32"  # jax's default integer without x64, accepted
        expected = _torch_value(name, arrays, kwargs, dtype=np.float32)
        _close(got["value"], expected.numpy(), rtol=1e-5, atol=1e-6)
        _close(np.asarray(got["grad"], dtype=np.float32),
               _torch_grads(name, {k: (v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v)
                                   for k, v in arrays.items()}, kwargs, [_spec(name).arrays[0]])[0],
               rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- 5. static checks under tracing

def _bad_calls():
    """(label, torch call, lossy_jax call taking jax arrays); each must raise the same type."""
    rng = np.random.default_rng(10)
    x = rng.normal(size=(4, 3))
    labels = np.array([0, 2, 1, 0])
    probs = rng.uniform(0.1, 0.9, size=(4, 3))
    t, j = torch.from_numpy, jnp.asarray
    return [
        ("cross_entropy batch mismatch",
         lambda: F.cross_entropy(t(x), t(labels[:3])), lambda: lossy_jax.cross_entropy(j(x), j(labels[:3]))),
        ("nll_loss spatial size mismatch",
         lambda: F.nll_loss(t(rng.normal(size=(2, 3, 4, 5))), t(np.zeros((2, 4, 6), np.int64))),
         lambda: lossy_jax.nll_loss(j(rng.normal(size=(2, 3, 4, 5))), j(np.zeros((2, 4, 6), np.int64)))),
        ("binary_cross_entropy shape mismatch",
         lambda: F.binary_cross_entropy(t(probs), t(probs[:, :1])),
         lambda: lossy_jax.binary_cross_entropy(j(probs), j(probs[:, :1]))),
        ("binary_cross_entropy_with_logits shape mismatch",
         lambda: F.binary_cross_entropy_with_logits(t(x), t(probs[:, :1])),
         lambda: lossy_jax.binary_cross_entropy_with_logits(j(x), j(probs[:, :1]))),
        ("bad reduction",
         lambda: F.mse_loss(t(x), t(x), reduction="avg"), lambda: lossy_jax.mse_loss(j(x), j(x), reduction="avg")),
        ("bad reduction cross_entropy",
         lambda: F.cross_entropy(t(x), t(labels), reduction="avg"),
         lambda: lossy_jax.cross_entropy(j(x), j(labels), reduction="avg")),
        ("cross_entropy int32 target (x64 on)",
         lambda: F.cross_entropy(t(x), t(labels.astype(np.int32))),
         lambda: lossy_jax.cross_entropy(j(x), j(labels.astype(np.int32)))),
        ("nll_loss float target",
         lambda: F.nll_loss(t(x), t(labels.astype(np.float64))),
         lambda: lossy_jax.nll_loss(j(x), j(labels.astype(np.float64)))),
        ("binary_cross_entropy int64 target",
         lambda: F.binary_cross_entropy(t(probs), t(np.ones((4, 3), np.int64))),
         lambda: lossy_jax.binary_cross_entropy(j(probs), j(np.ones((4, 3), np.int64)))),
        ("cross_entropy weight of wrong size",
         lambda: F.cross_entropy(t(x), t(labels), weight=t(np.ones(4))),
         lambda: lossy_jax.cross_entropy(j(x), j(labels), weight=j(np.ones(4)))),
        ("nll_loss weight of wrong size",
         lambda: F.nll_loss(t(x), t(labels), weight=t(np.ones(2))),
         lambda: lossy_jax.nll_loss(j(x), j(labels), weight=j(np.ones(2)))),
        ("mse_loss weight of wrong shape",
         lambda: F.mse_loss(t(x), t(x), weight=t(np.ones(3))),
         lambda: lossy_jax.mse_loss(j(x), j(x), weight=j(np.ones(3)))),
        ("cross_entropy probability target + ignore_index",
         lambda: F.cross_entropy(t(x), t(probs), ignore_index=1),
         lambda: lossy_jax.cross_entropy(j(x), j(probs), ignore_index=1)),
    ]


def _torch_exception(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - we want the type torch raises
        return type(error)
    raise AssertionError("torch accepted a call that this test expects it to reject")


@pytest.mark.parametrize("index", range(len(_bad_calls())), ids=[c[0] for c in _bad_calls()])
def test_static_checks_raise_torchs_exception_type_eagerly_and_inside_a_users_jit(index):
    label, torch_call, lossy_call = _bad_calls()[index]
    expected = _torch_exception(torch_call)
    with pytest.raises(expected):
        lossy_call()
    # The same call traced inside a user's jit (the arrays become tracers: the checks are static).
    # lossy_call closes over concrete arrays, so route them through a jitted wrapper instead.
    with pytest.raises(expected):
        jax.jit(lambda: lossy_call())()


def test_static_checks_raise_with_traced_arrays_inside_a_users_jit():
    x = jnp.asarray(np.random.default_rng(12).normal(size=(4, 3)))
    labels = jnp.asarray(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="batch_size"):
        jax.jit(lambda a, b: lossy_jax.cross_entropy(a, b))(x, labels)
    with pytest.raises(RuntimeError, match="Long or Byte"):
        jax.jit(lambda a, b: lossy_jax.cross_entropy(a, b))(x, jnp.asarray(np.array([0, 2, 1, 0], np.int32)))
    with pytest.raises(RuntimeError, match="weight tensor should be defined"):
        jax.jit(lambda a, b, w: lossy_jax.cross_entropy(a, b, weight=w))(x, jnp.asarray([0, 2, 1, 0]), jnp.ones(4))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        jax.jit(lambda a: lossy_jax.l1_loss(a, a, reduction="avg"))(x)
    with pytest.raises(ValueError, match="Target size"):
        jax.jit(lambda a, b: lossy_jax.binary_cross_entropy_with_logits(a, b))(x, x[:, :1])


# --------------------------------------------------------------------------- 6. data-dependent violations

def _class_index_case(seed=13):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(4, 3)) * 2
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return logits, log_probs


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad", [3, -1], ids=["index_eq_C", "index_minus_1"])
def test_out_of_range_class_index_is_nan_never_a_wrapped_class(name, bad):
    logits, log_probs = _class_index_case()
    input = logits if name == "cross_entropy" else log_probs
    labels = np.array([0, bad, 1, 2])
    good = np.array([True, False, True, True])
    function = getattr(lossy_jax, name)
    none = np.asarray(function(jnp.asarray(input), jnp.asarray(labels), reduction="none"))
    assert np.isnan(none[1])
    # The other positions are exactly torch's (torch itself raises IndexError for the whole call).
    _close(none[good], getattr(F, name)(torch.from_numpy(input[good]), torch.from_numpy(labels[good]),
                                        reduction="none").numpy())
    # Not what a wrapped index (optax: -1 -> last class) or a clamped one (C -> C-1) would give.
    wrapped = -log_probs[1, 2]
    assert not np.isclose(none[1], wrapped)
    with pytest.raises(IndexError):  # torch's answer, live: an error, never a number
        getattr(F, name)(torch.from_numpy(input), torch.from_numpy(labels))
    for reduction in ("mean", "sum"):
        assert np.isnan(float(function(jnp.asarray(input), jnp.asarray(labels), reduction=reduction))), reduction
    # Inside a user's jit and under vmap as well.
    assert np.isnan(float(jax.jit(lambda a, b: function(a, b))(jnp.asarray(input), jnp.asarray(labels))))
    batched = jax.vmap(lambda a, b: function(a, b, reduction="sum"))(
        jnp.stack([jnp.asarray(input)] * 2), jnp.asarray(np.stack([labels, np.array([0, 1, 1, 2])])))
    assert np.isnan(float(batched[0]))
    _close(batched[1], getattr(F, name)(torch.from_numpy(input), torch.tensor([0, 1, 1, 2]),
                                        reduction="sum").numpy())
    # The gradient of a poisoned loss is not a silently finite wrong number either: NaN in the
    # affected row ('none' summed: the other rows keep torch's gradient).
    g = np.asarray(jax.grad(lambda a: function(a, jnp.asarray(labels)))(jnp.asarray(input)))
    assert np.any(np.isnan(g[1])) and np.all(np.isfinite(g[good]))
    g = np.asarray(jax.grad(lambda a: function(a, jnp.asarray(labels), reduction="none")[good].sum())(
        jnp.asarray(input)))
    tx = torch.from_numpy(input[good].copy()).requires_grad_(True)
    (tg,) = torch.autograd.grad(getattr(F, name)(tx, torch.from_numpy(labels[good]), reduction="sum"), [tx])
    _close(g[good], tg.numpy())


def test_minus_one_as_ignore_index_is_ignored_not_nan():
    logits, _ = _class_index_case()
    labels = np.array([0, -1, 1, 2])
    value = lossy_jax.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), ignore_index=-1)
    _close(value, F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), ignore_index=-1).numpy())


def test_uint8_labels_accepted_and_out_of_range_uint8_is_nan():
    logits, _ = _class_index_case()
    labels = np.array([0, 2, 1, 0], np.uint8)
    _close(lossy_jax.cross_entropy(jnp.asarray(logits), jnp.asarray(labels)),
           F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).numpy())
    labels[1] = 255
    assert np.isnan(float(lossy_jax.cross_entropy(jnp.asarray(logits), jnp.asarray(labels))))


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
@pytest.mark.parametrize("where", ["input", "target"])
def test_binary_cross_entropy_outside_unit_interval_is_nan(bad, where):
    p = np.array([0.2, 0.7, 0.5, 0.9])
    y = np.array([0.0, 1.0, 0.3, 1.0])
    if where == "input":
        p[2] = bad
    else:
        y[2] = bad
    with pytest.raises(RuntimeError, match="between 0 and 1"):  # torch, live
        F.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y))
    none = np.asarray(lossy_jax.binary_cross_entropy(jnp.asarray(p), jnp.asarray(y), reduction="none"))
    assert np.isnan(none[2])
    keep = np.array([True, True, False, True])
    _close(none[keep], F.binary_cross_entropy(torch.from_numpy(p[keep]), torch.from_numpy(y[keep]),
                                              reduction="none").numpy())
    for reduction in ("mean", "sum"):
        assert np.isnan(float(lossy_jax.binary_cross_entropy(jnp.asarray(p), jnp.asarray(y), reduction=reduction)))
    assert np.isnan(float(jax.jit(lambda a, b: 3.0 * lossy_jax.binary_cross_entropy(a, b))(jnp.asarray(p),
                                                                                         jnp.asarray(y))))
    # The gradient at the bad entry is NaN too (not a finite gradient of a loss that is not there).
    g = np.asarray(jax.grad(lambda a: lossy_jax.binary_cross_entropy(a, jnp.asarray(y)))(jnp.asarray(p)))
    assert np.isnan(g[2])
    pb, yb = np.stack([p, np.full(4, 0.5)]), np.stack([y, np.full(4, 0.5)])
    mapped = np.asarray(jax.vmap(lossy_jax.binary_cross_entropy)(jnp.asarray(pb), jnp.asarray(yb)))
    assert np.isnan(mapped[0])
    _close(mapped[1], F.binary_cross_entropy(torch.full((4,), 0.5, dtype=torch.float64),
                                             torch.full((4,), 0.5, dtype=torch.float64)).numpy())


def _hyper_case(name):
    arrays, kwargs = _case(name, seed=14)
    positional, keywords = _split(name, arrays)
    return [jnp.asarray(a) for a in positional], {k: jnp.asarray(v) for k, v in keywords.items()}


@pytest.mark.parametrize("name,bad", [("cross_entropy", 1.5), ("smooth_l1_loss", -1.0), ("huber_loss", 0.0),
                                      ("huber_loss", -2.0)])
def test_out_of_range_hyperparameters(name, bad):
    option = TRACED[name]
    positional, keywords = _hyper_case(name)
    function = getattr(lossy_jax, name)
    # torch, live: a Python number out of range raises RuntimeError.
    arrays, _ = _case(name, seed=14)
    torch_error = _torch_exception(lambda: _torch_value(name, arrays, {option: bad}))
    assert torch_error is RuntimeError
    with pytest.raises(torch_error):
        function(*positional, **keywords, **{option: bad})
    # A concrete 0-d jax array is readable too: it raises eagerly as well.
    with pytest.raises(torch_error):
        function(*positional, **keywords, **{option: jnp.asarray(bad)})
    # Traced inside a user's jit: cannot raise, so NaN (for every reduction).
    for reduction in ("mean", "sum", "none"):
        user = jax.jit(lambda h, r=reduction: function(*positional, **keywords, reduction=r, **{option: h}))
        assert np.all(np.isnan(np.asarray(user(jnp.asarray(bad))))), reduction
        # ... while an in-range traced value is finite with the same compiled function.
        assert np.all(np.isfinite(np.asarray(user(jnp.asarray(0.5))))), reduction


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_all_ignored_mean_is_nan_and_sum_is_zero_as_torch(name):
    logits, log_probs = _class_index_case()
    input = logits if name == "cross_entropy" else log_probs
    labels = np.full(4, -100)
    for reduction in ("mean", "sum"):
        expected = getattr(F, name)(torch.from_numpy(input), torch.from_numpy(labels), reduction=reduction).numpy()
        value = getattr(lossy_jax, name)(jnp.asarray(input), jnp.asarray(labels), reduction=reduction)
        assert np.isnan(expected) == (reduction == "mean")  # torch: NaN for 'mean', 0 for 'sum'
        np.testing.assert_array_equal(np.asarray(value), expected)
    # The gradient of the all-ignored 'sum' is zero, as torch's.
    g = jax.grad(lambda a: getattr(lossy_jax, name)(a, jnp.asarray(labels), reduction="sum"))(jnp.asarray(input))
    np.testing.assert_array_equal(np.asarray(g), np.zeros_like(input))


# --------------------------------------------------------------------------- 7. finite gradients

def _jax_and_torch_grad(name, input, target, **kwargs):
    jg = jax.grad(lambda a: getattr(lossy_jax, name)(a, jnp.asarray(target), **kwargs))(jnp.asarray(input))
    tx = torch.from_numpy(input.copy()).requires_grad_(True)
    tv = getattr(F, name)(tx, torch.from_numpy(target), **kwargs)
    (tg,) = torch.autograd.grad(tv, [tx])
    jv = getattr(lossy_jax, name)(jnp.asarray(input), jnp.asarray(target), **kwargs)
    return np.asarray(jv), tv.detach().numpy(), np.asarray(jg), tg.numpy()


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_saturated_logits_have_torchs_finite_gradient(label_smoothing):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [0.5, -1e4, 1e4]])
    labels = np.array([1, 1, 0])
    jv, tv, jg, tg = _jax_and_torch_grad("cross_entropy", logits, labels, label_smoothing=label_smoothing)
    assert np.isfinite(tv) and np.all(np.isfinite(tg))
    assert np.all(np.isfinite(jg))
    _close(jv, tv, rtol=1e-12)
    _close(jg, tg, atol=1e-12)


def test_cross_entropy_minus_inf_logits_of_other_classes():
    logits = np.array([[2.0, -np.inf, 0.5], [-np.inf, 1.0, -np.inf]])
    labels = np.array([0, 1])
    jv, tv, jg, tg = _jax_and_torch_grad("cross_entropy", logits, labels)
    assert np.isfinite(tv) and np.all(np.isfinite(tg))  # torch, live
    _close(jv, tv)
    _close(jg, tg)
    # reduction='none' with the same -inf entries.
    _close(lossy_jax.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), reduction="none"),
           F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), reduction="none").numpy())
    # label_smoothing traced to exactly 0.0 keeps the plain loss: no 0 * inf = NaN.
    user = jax.jit(lambda a, h: lossy_jax.cross_entropy(a, jnp.asarray(labels), label_smoothing=h))
    value = user(jnp.asarray(logits), jnp.asarray(0.0))
    grad = jax.jit(jax.grad(lambda a, h: lossy_jax.cross_entropy(a, jnp.asarray(labels), label_smoothing=h)))(
        jnp.asarray(logits), jnp.asarray(0.0))
    _close(value, tv.mean() if np.ndim(tv) else tv)
    _close(grad, _jax_and_torch_grad("cross_entropy", logits, labels)[3])
    # A Python 0.0 as well (the default), through lossy_jax's own jit.
    _close(lossy_jax.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), label_smoothing=0.0),
           F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), label_smoothing=0.0).numpy())


# 512 rows of 600 classes: large enough that lossy_jax.cross_entropy shifts by the target logit
# (lossy_core._primitives._target_shift_pays); the conformance cases are too small to.
LARGE_CE_OPTIONS = {
    "mean": {},
    "none": {"reduction": "none"},
    "sum weight ignore": {"reduction": "sum", "weight": True, "ignore": True},
    "ls weight ignore": {"label_smoothing": 0.1, "weight": True, "ignore": True},
    "ls traced": {"label_smoothing": "traced"},
    "extreme row": {"extreme": True},
    "(N,C,d) ls": {"label_smoothing": 0.2, "spatial": True},
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(LARGE_CE_OPTIONS))
def test_cross_entropy_large_class_axis_matches_torch(case, dtype):
    """Value and gradient equal torch's (live, float64) where the target-shift path is taken,
    with weights, ignored targets, label smoothing (static and traced), (N, C, d) inputs, and a
    batch with one extreme row (every row then takes the row-max branch)."""
    from lossy_core import _primitives

    options = dict(LARGE_CE_OPTIONS[case])
    rng = np.random.default_rng(7)
    shape = (128, 600, 4) if options.pop("spatial", False) else (512, 600)
    logits = rng.normal(size=shape) * 3
    labels = rng.integers(0, 600, size=(shape[0],) + shape[2:])
    if options.pop("extreme", False):
        logits[5, 3] = 1e4
    if options.pop("ignore", False):
        labels.reshape(-1)[::7] = -100
    torch_options = dict(options)
    if options.pop("weight", False):
        weight = rng.uniform(0.5, 2.0, size=600)
        options["weight"] = jnp.asarray(weight.astype(dtype))
        torch_options["weight"] = torch.from_numpy(weight.astype(dtype).astype(np.float64))
    traced = options.get("label_smoothing") == "traced"
    if traced:
        torch_options["label_smoothing"] = 0.15
    logits = logits.astype(dtype)
    assert _primitives._target_shift_pays(jnp.asarray(logits), 1)

    def loss(x, smoothing=None):
        extra = {"label_smoothing": smoothing} if traced else {}
        return lossy_jax.cross_entropy(x, jnp.asarray(labels), **{**options, **extra})

    def total(x, smoothing=None):
        return jnp.sum(loss(x, smoothing))

    arguments = (jnp.asarray(logits),) + ((jnp.asarray(0.15, dtype),) if traced else ())
    value = jax.jit(loss)(*arguments)
    grad = jax.jit(jax.grad(total))(*arguments)
    tx = torch.from_numpy(logits.astype(np.float64)).requires_grad_(True)
    tv = F.cross_entropy(tx, torch.from_numpy(labels), **torch_options)
    (tg,) = torch.autograd.grad(tv.sum(), [tx])
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-5, "atol": 1e-6}
    assert value.dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(np.asarray(value, np.float64), tv.detach().numpy(), **tolerance)
    np.testing.assert_allclose(np.asarray(grad, np.float64), tg.numpy(), **tolerance)


def test_binary_cross_entropy_at_exactly_zero_and_one_has_torchs_gradient():
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.3])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.6])
    for reduction in ("mean", "sum"):
        jv, tv, jg, tg = _jax_and_torch_grad("binary_cross_entropy", p, y, reduction=reduction)
        assert np.all(np.isfinite(tg)) and np.all(np.isfinite(jg))
        _close(jv, tv)  # 100 where the log is clamped (torch's -100 floor)
        _close(jg, tg)
    # The closed form torch's backward uses: (p - y) / max(p (1 - p), EPSILON), over numel for 'mean',
    # where torch's EPSILON is 1e-12 rounded to float32 (read off torch live: -1 / d/dp at p=0, y=1).
    tx = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (torch_slope,) = torch.autograd.grad(F.binary_cross_entropy(tx, torch.ones(1, dtype=torch.float64)), [tx])
    epsilon = -1.0 / float(torch_slope)
    assert epsilon == float(np.float32(1e-12))
    expected = (p - y) / np.maximum(p * (1 - p), epsilon) / p.size
    jg = jax.grad(lambda a: lossy_jax.binary_cross_entropy(a, jnp.asarray(y)))(jnp.asarray(p))
    _close(jg, expected)
    # jit(grad) and vmap(grad) too.
    jjg = jax.jit(jax.grad(lambda a: lossy_jax.binary_cross_entropy(a, jnp.asarray(y))))(jnp.asarray(p))
    _close(jjg, expected)
    vg = jax.vmap(jax.grad(lambda a, b: lossy_jax.binary_cross_entropy(a, b, reduction="sum")))(
        jnp.asarray(p)[:, None], jnp.asarray(y)[:, None])
    _close(vg[:, 0], expected * p.size)


def test_binary_cross_entropy_with_logits_saturated():
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.3])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    jv, tv, jg, tg = _jax_and_torch_grad("binary_cross_entropy_with_logits", x, y)
    assert np.isfinite(tv) and np.all(np.isfinite(tg)) and np.all(np.isfinite(jg))
    _close(jv, tv)
    _close(jg, tg)


@pytest.mark.parametrize("name", ["cross_entropy", "poly1_cross_entropy"])
def test_default_label_smoothing_runs_the_static_specialisation(name):
    """label_smoothing=0 (the default, a Python number) runs a second compiled function in
    which it is static (no smoothing term); a traced 0 and non-zero values run the traced one.
    All give torch's values."""
    function = getattr(lossy_jax, name)
    assert function.jitted_default is not None
    arrays, kwargs = _case(name, seed=12)
    kwargs = {k: v for k, v in kwargs.items() if k != "label_smoothing"}
    before = function.jitted_default._cache_size()
    default = _lossy(name, arrays, kwargs)
    assert function.jitted_default._cache_size() >= max(before, 1)
    _close(default, _torch_value(name, arrays, kwargs).numpy())
    traced_zero = _lossy(name, arrays, dict(kwargs, label_smoothing=jnp.asarray(0.0)))
    _close(traced_zero, np.asarray(default))
    smoothed = dict(kwargs, label_smoothing=0.2)
    _close(_lossy(name, arrays, smoothed), _torch_value(name, arrays, smoothed).numpy())
    assert lossy_jax.mse_loss.jitted_default is None  # only options that switch work off specialise


@pytest.mark.filterwarnings("ignore:Using a target size")  # the broadcast target: its warning is tested elsewhere
@pytest.mark.parametrize("name", ["huber_loss", "smooth_l1_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_summed_huber_gradients_from_the_pair(name, reduction):
    """lossy_jax differentiates the summed Huber from (input, target): torch's input and target
    gradients (the target broadcast), a traced delta's gradient sum(|d| - delta over |d| > delta)/n
    (calculus), and second derivatives through the custom VJP (jax.hessian)."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 5)) * 2, rng.standard_normal((1, 5)) * 2
    option = "delta" if name == "huber_loss" else "beta"
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    getattr(F, name)(xt, yt, reduction=reduction, **{option: 0.7}).backward()
    loss = getattr(lossy_jax, name)
    gx, gy = jax.grad(lambda a, b: loss(a, b, reduction=reduction, **{option: 0.7}), argnums=(0, 1))(
        jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(gy), yt.grad.numpy(), rtol=RTOL, atol=ATOL)
    if name == "huber_loss":
        distance = np.abs(x - y)
        expected = np.where(distance > 0.7, distance - 0.7, 0.0).sum() / (x.size if reduction == "mean" else 1)
        gd = jax.grad(lambda d: loss(jnp.asarray(x), jnp.asarray(y), reduction=reduction, delta=d))(0.7)
        np.testing.assert_allclose(float(gd), expected, rtol=RTOL)
    # The second derivative in the input: 1/n inside the quadratic zone (1/(n beta) for smooth_l1),
    # 0 outside; the target is the input shifted by 0.5 for two elements and by 2 for the rest.
    target = x[0] - np.array([0.5, 2.0, 0.5, 2.0, 2.0])
    hessian = jax.hessian(lambda a: loss(a, jnp.asarray(target), reduction=reduction, **{option: 0.7}))(
        jnp.asarray(x[0]))
    scale = (1 / x.shape[1] if reduction == "mean" else 1.0) / (1.0 if name == "huber_loss" else 0.7)
    inside = np.array([True, False, True, False, False])
    np.testing.assert_allclose(np.asarray(hessian), np.diag(np.where(inside, scale, 0.0)), rtol=RTOL, atol=ATOL)
