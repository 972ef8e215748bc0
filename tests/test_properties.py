"""Hypothesis property tests against torch, run live, in float64.

For each of the nine losses, random shapes (batch 0 and 1, extra spatial dims),
options and values (large magnitudes included): ``lossy_torch.functional`` must
match ``torch.nn.functional`` in value and autograd gradients, and
``lossy_core`` on NumPy in value, to ~1e-10 relative, with NaN/inf in the same
places. Plus identities between losses (loss-landscape.md 2b).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lossy_core  # noqa: E402
import lossy_torch.functional as LF  # noqa: E402

RTOL, ATOL = 1e-10, 1e-12
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True)
REDUCTIONS = st.sampled_from(["none", "mean", "sum"])
SCALES = st.sampled_from([1.0, 10.0, 1e4])


def _close(got, expected, what):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    scale = np.max(np.abs(expected[np.isfinite(expected)]), initial=1.0)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL * scale, equal_nan=True, err_msg=what)


def check(name, arrays, options, differentiable=("input",)):
    """Compare lossy_torch (value and gradients) and lossy_core on numpy (value) with torch.

    ``arrays`` and array-valued ``options`` are float64/int64 numpy arrays.
    """
    arrays = {k: np.asarray(v) for k, v in arrays.items()}  # 0-d: rng returns numpy scalars
    options = {k: np.asarray(v) if isinstance(v, (np.ndarray, np.generic)) else v for k, v in options.items()}
    def to_torch(grad):
        tensors = {k: torch.tensor(v, requires_grad=grad and k in differentiable) for k, v in arrays.items()}
        extra = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        return tensors, extra

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div 'mean'
        ref_t, ref_o = to_torch(True)
        expected = getattr(F, name)(*ref_t.values(), **ref_o)
        got_t, got_o = to_torch(True)
        got = getattr(LF, name)(*got_t.values(), **got_o)
        core = getattr(lossy_core, name)(*arrays.values(), **options)
    assert got.dtype == expected.dtype, f"dtype {got.dtype} != {expected.dtype}"
    _close(got.detach().numpy(), expected.detach().numpy(), f"{name} lossy_torch value")
    _close(np.asarray(core), expected.detach().numpy(), f"{name} lossy_core(numpy) value")
    inputs = [k for k in differentiable if k in arrays]
    if expected.requires_grad and expected.numel():
        cotangent = torch.linspace(0.5, 1.5, expected.numel(), dtype=expected.dtype).reshape(expected.shape)
        ref_grads = torch.autograd.grad(expected, [ref_t[k] for k in inputs], cotangent, allow_unused=True)
        got_grads = torch.autograd.grad(got, [got_t[k] for k in inputs], cotangent, allow_unused=True)
        for k, e, g in zip(inputs, ref_grads, got_grads):
            e = torch.zeros_like(ref_t[k]) if e is None else e
            g = torch.zeros_like(got_t[k]) if g is None else g
            _close(g.numpy(), e.numpy(), f"{name} gradient of {k}")
    return expected


# -- strategies --------------------------------------------------------------------

@st.composite
def class_problem(draw, probabilities=False):
    """(logits, target, batch shape): input (C), (N, C) or (N, C, d1, ..d_k)."""
    c = draw(st.integers(1, 4))
    single = not probabilities and draw(st.integers(0, 5)) == 0  # a (C) input, 1 in 6
    if single:
        shape, batch = (c,), ()
    else:
        n = draw(st.sampled_from([0, 1, 2, 3]))
        spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
        shape, batch = (n, c, *spatial), (n, *spatial)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.standard_normal(shape) * draw(SCALES)
    return logits, c, batch, rng


def _index_target(draw, rng, c, batch, ignore_index):
    target = rng.integers(0, c, size=batch).astype(np.int64)
    if draw(st.booleans()) and target.size:
        target[rng.random(batch) < 0.3] = ignore_index
    return target


def _weight(draw, rng, c):
    return rng.uniform(0.1, 3.0, c) if draw(st.booleans()) else None


IGNORE = st.sampled_from([-100, 0, 1])


# -- classification ------------------------------------------------------------------

@SETTINGS
@given(problem=class_problem(), data=st.data())
def test_cross_entropy_index_targets(problem, data):
    logits, c, batch, rng = problem
    ignore_index = data.draw(IGNORE)
    options = dict(ignore_index=ignore_index, reduction=data.draw(REDUCTIONS),
                   label_smoothing=data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])))
    weight = _weight(data.draw, rng, c)
    if weight is not None:
        options["weight"] = weight
    target = _index_target(data.draw, rng, c, batch, ignore_index)
    check("cross_entropy", {"input": logits, "target": target}, options)


@SETTINGS
@given(problem=class_problem(probabilities=True), data=st.data())
def test_cross_entropy_probability_targets(problem, data):
    logits, c, batch, rng = problem
    if logits.ndim == 1:
        return
    target = rng.dirichlet(np.ones(c), size=batch)  # (N, d.., C)
    target = np.moveaxis(target, -1, 1) if target.ndim > 1 else target
    options = dict(reduction=data.draw(REDUCTIONS), label_smoothing=data.draw(st.sampled_from([0.0, 0.2, 1.0])))
    weight = _weight(data.draw, rng, c)
    if weight is not None:
        options["weight"] = weight
    check("cross_entropy", {"input": logits, "target": target}, options, differentiable=("input", "target"))


@SETTINGS
@given(problem=class_problem(), data=st.data())
def test_nll_loss(problem, data):
    logits, c, batch, rng = problem
    axis = 0 if logits.ndim == 1 else 1
    log_probs = logits - np.log(np.sum(np.exp(logits - logits.max(axis, keepdims=True)), axis, keepdims=True)) \
        - logits.max(axis, keepdims=True) if logits.size else logits
    ignore_index = data.draw(IGNORE)
    options = dict(ignore_index=ignore_index, reduction=data.draw(REDUCTIONS))
    weight = _weight(data.draw, rng, c)
    if weight is not None:
        options["weight"] = weight
    target = _index_target(data.draw, rng, c, batch, ignore_index)
    check("nll_loss", {"input": log_probs, "target": target}, options)


# -- pointwise -------------------------------------------------------------------------

SHAPES = st.lists(st.integers(0, 3), max_size=3).map(tuple)


@st.composite
def pointwise(draw):
    shape = draw(SHAPES)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(SCALES)
    a, b = np.asarray(rng.standard_normal(shape) * scale), np.asarray(rng.standard_normal(shape) * scale)
    if draw(st.booleans()) and a.size:  # exact ties, where |d| has a kink
        b.reshape(-1)[0] = a.reshape(-1)[0]
    return a, b, rng


@SETTINGS
@given(values=pointwise(), reduction=REDUCTIONS, weighted=st.booleans(),
       name=st.sampled_from(["l1_loss", "mse_loss"]))
def test_l1_mse(values, reduction, weighted, name):
    a, b, rng = values
    options = dict(reduction=reduction)
    if weighted:
        options["weight"] = rng.uniform(0.0, 2.0, a.shape)
    check(name, {"input": a, "target": b}, options, differentiable=("input", "target"))


@SETTINGS
@given(values=pointwise(), reduction=REDUCTIONS, beta=st.sampled_from([0.0, 1e-3, 0.5, 1.0, 3.0, 1e5]))
def test_smooth_l1(values, reduction, beta):
    a, b, _ = values
    check("smooth_l1_loss", {"input": a, "target": b}, dict(reduction=reduction, beta=beta),
          differentiable=("input", "target"))


@SETTINGS
@given(values=pointwise(), reduction=REDUCTIONS, delta=st.sampled_from([1e-3, 0.5, 1.0, 3.0, 1e5]),
       weighted=st.booleans())
def test_huber(values, reduction, delta, weighted):
    a, b, rng = values
    options = dict(reduction=reduction, delta=delta)
    if weighted:
        options["weight"] = rng.uniform(0.0, 2.0, a.shape)
    check("huber_loss", {"input": a, "target": b}, options, differentiable=("input", "target"))


@SETTINGS
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1), reduction=REDUCTIONS, weight=st.sampled_from([None, "full", "last"]))
def test_binary_cross_entropy(shape, seed, reduction, weight):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, shape)
    y = rng.uniform(0, 1, shape)
    if p.size:  # the clamp at -100: exact 0 and 1 probabilities
        p.reshape(-1)[0] = rng.choice([0.0, 1.0, 1e-50])
        y.reshape(-1)[-1] = rng.choice([0.0, 1.0])
    options = dict(reduction=reduction)
    if weight == "full":
        options["weight"] = rng.uniform(0, 2, shape)
    elif weight == "last" and shape:
        options["weight"] = rng.uniform(0, 2, shape[-1:])
    check("binary_cross_entropy", {"input": p, "target": y}, options, differentiable=("input", "target"))


@SETTINGS
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1), reduction=REDUCTIONS, scale=st.sampled_from([1.0, 30.0, 1e4]),
       weight=st.booleans(), pos_weight=st.booleans())
def test_binary_cross_entropy_with_logits(shape, seed, reduction, scale, weight, pos_weight):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    y = rng.uniform(0, 1, shape)
    options = dict(reduction=reduction)
    if weight:
        options["weight"] = rng.uniform(0, 2, shape)
    if pos_weight and shape:
        options["pos_weight"] = rng.uniform(0.1, 5, shape[-1:])
    check("binary_cross_entropy_with_logits", {"input": x, "target": y}, options,
          differentiable=("input", "target"))


@SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple), seed=st.integers(0, 2**32 - 1),
       reduction=st.sampled_from(["none", "mean", "sum", "batchmean"]), log_target=st.booleans(),
       scale=st.sampled_from([1.0, 50.0]))
def test_kl_div(shape, seed, reduction, log_target, scale):
    rng = np.random.default_rng(seed)
    log_q = -np.abs(rng.standard_normal(shape)) * scale
    p = rng.uniform(0, 1, shape)
    if p.size:
        p.reshape(-1)[0] = 0.0  # 0 log 0 = 0
    with np.errstate(divide="ignore"):
        target = np.log(p) if log_target else p  # log 0 = -inf as a log-target
    check("kl_div", {"input": log_q, "target": target}, dict(reduction=reduction, log_target=log_target),
          differentiable=("input",) if log_target else ("input", "target"))


# -- identities (loss-landscape.md 2b) --------------------------------------------------

@SETTINGS
@given(values=pointwise(), delta=st.sampled_from([1e-3, 0.5, 1.0, 7.0]), reduction=REDUCTIONS)
def test_huber_is_delta_times_smooth_l1(values, delta, reduction):
    a, b, _ = values
    huber = lossy_core.huber_loss(a, b, delta=delta, reduction=reduction)
    smooth = lossy_core.smooth_l1_loss(a, b, beta=delta, reduction=reduction)
    _close(huber, delta * np.asarray(smooth), "huber == delta * smooth_l1")


@SETTINGS
@given(values=pointwise(), reduction=REDUCTIONS)
def test_smooth_l1_beta0_is_l1(values, reduction):
    a, b, _ = values
    _close(lossy_core.smooth_l1_loss(a, b, beta=0.0, reduction=reduction),
           lossy_core.l1_loss(a, b, reduction=reduction), "smooth_l1(beta=0) == l1")
    ta, tb = torch.tensor(a), torch.tensor(b)
    _close(LF.smooth_l1_loss(ta, tb, beta=0.0, reduction=reduction).numpy(),
           F.l1_loss(ta, tb, reduction=reduction).numpy(), "lossy_torch smooth_l1(beta=0) == torch l1")


@SETTINGS
@given(problem=class_problem(), reduction=REDUCTIONS, smoothing=st.sampled_from([0.0, 0.3]))
def test_cross_entropy_one_hot_equals_index(problem, reduction, smoothing):
    logits, c, batch, rng = problem
    if logits.ndim == 1 or reduction == "mean" and 0 in batch:
        return
    target = rng.integers(0, c, size=batch)
    one_hot = np.moveaxis(np.eye(c)[target], -1, 1)
    by_index = lossy_core.cross_entropy(logits, target, reduction=reduction, label_smoothing=smoothing)
    by_probability = lossy_core.cross_entropy(logits, one_hot, reduction=reduction, label_smoothing=smoothing)
    _close(by_probability, by_index, "one-hot probabilities == class indices")
