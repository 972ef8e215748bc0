"""Analytic gradients (``LossSpec.vjp`` through ``lossy_core.value_and_grad``).

Checked against torch autograd, run live on the same inputs (hypothesis over losses,
shapes, options and values, in float64 and float32), against central finite
differences in float64 on NumPy, and on the edges torch documents: -inf and +-1e4
logits, every target ignored, an empty batch, probabilities of exactly 0 and 1.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossy_core
from lossy_core._registry import LossSpec

torch = pytest.importorskip("torch")
F = torch.nn.functional

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
# float64 must agree with torch to ~1e-12 relative (DESIGN.md); float32 as conformance/compare.py.
RTOL = {"float64": 1e-11, "float32": 1e-5}


def test_every_registered_loss_has_an_analytic_gradient():
    assert lossy_core.missing_gradients() == []


def test_a_loss_without_a_gradient_is_flagged(monkeypatch):
    spec = LossSpec(name="no_gradient_loss", function=lossy_core.mse_loss, family="test", arrays=("input", "target"))
    monkeypatch.setitem(lossy_core.REGISTRY, spec.name, spec)
    assert lossy_core.missing_gradients() == ["no_gradient_loss"]
    with pytest.raises(NotImplementedError, match="no_gradient_loss has no analytic gradient"):
        lossy_core.value_and_grad(spec)


# -- problems: (loss, arrays, options) with numpy arrays ------------------------------

REDUCTIONS = ("none", "mean", "sum")


LOSSES = sorted(lossy_core.REGISTRY)


@st.composite
def problems(draw, loss):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    reduction = draw(st.sampled_from(REDUCTIONS))
    options, arrays = {"reduction": reduction}, {}
    if loss in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"):
        arrays["input"] = rng.standard_normal(shape) * 2
        # a target of a broadcastable shape: trailing axes, or a 1 in place of an axis
        target_shape = draw(st.sampled_from([shape, shape[1:], tuple(1 if i == 0 else n for i, n in enumerate(shape))]))
        arrays["target"] = rng.standard_normal(target_shape) * 2
        if loss != "smooth_l1_loss" and draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, shape)
        if loss == "smooth_l1_loss":
            options["beta"] = draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))
        if loss == "huber_loss":
            options["delta"] = draw(st.sampled_from([0.5, 1.0, 3.0]))
    elif loss == "binary_cross_entropy":
        arrays["input"] = rng.uniform(0.01, 0.99, shape)
        arrays["target"] = rng.uniform(0, 1, shape)
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, shape[-1:])
    elif loss == "binary_cross_entropy_with_logits":
        arrays["input"] = rng.standard_normal(shape) * 3
        arrays["target"] = rng.uniform(0, 1, shape)
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, shape[-1:])
        if draw(st.booleans()):
            arrays["pos_weight"] = rng.uniform(0.1, 3.0, shape[-1:])
    elif loss == "kl_div":
        options["reduction"] = draw(st.sampled_from(REDUCTIONS + ("batchmean",)))
        options["log_target"] = draw(st.booleans())
        arrays["input"] = np.log(rng.dirichlet(np.ones(shape[-1]), shape[:-1]))
        target = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
        arrays["target"] = np.log(target) if options["log_target"] else target
    elif loss == "ctc_loss":  # (T, N, C); lengths with tl <= il // 2, so every alignment is possible
        T, N, C = draw(st.integers(1, 6)), shape[0], draw(st.integers(2, 5))
        x = rng.standard_normal((T, N, C)) * 2
        arrays["log_probs"] = x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))
        options["blank"] = int(draw(st.integers(0, C - 1)))
        options["zero_infinity"] = draw(st.booleans())
        input_lengths = rng.integers(0, T + 1, N)
        target_lengths = rng.integers(0, input_lengths // 2 + 1)
        labels = [l for l in range(C) if l != options["blank"]]
        targets = rng.choice(labels, (N, int(target_lengths.max(initial=0)) + 1))
        if draw(st.booleans()):  # the concatenated layout
            targets = np.concatenate([targets[n, : target_lengths[n]] for n in range(N)])
        arrays["targets"] = np.asarray(targets, dtype=np.int64)
        arrays["input_lengths"], arrays["target_lengths"] = input_lengths, target_lengths
    else:  # cross_entropy, nll_loss: (C), (N, C) or (N, C, d)
        classes = draw(st.integers(2, 5))
        layout = draw(st.sampled_from([(classes,), (shape[0], classes), (shape[0], classes, shape[-1])]))
        arrays["input"] = rng.standard_normal(layout) * 2
        if loss == "nll_loss":  # log-probabilities over the class axis
            class_axis = 0 if len(layout) == 1 else 1
            x = arrays["input"]
            arrays["input"] = x - np.log(np.sum(np.exp(x), axis=class_axis, keepdims=True))
        probabilities = loss == "cross_entropy" and draw(st.booleans())
        if probabilities:
            class_axis = 0 if len(layout) == 1 else 1
            arrays["target"] = np.moveaxis(rng.dirichlet(np.ones(classes), [n for i, n in enumerate(layout)
                                                                             if i != class_axis]), -1, class_axis)
        else:
            positions = () if len(layout) == 1 else layout[:1] + layout[2:]
            target = rng.integers(0, classes, positions)
            if draw(st.booleans()):
                options["ignore_index"] = int(draw(st.sampled_from([-100, 0, 1])))
                if options["ignore_index"] == -100 and target.ndim:
                    target = np.where(rng.uniform(size=positions) < 0.3, -100, target)
            arrays["target"] = np.asarray(target, dtype=np.int64)
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, (classes,))
        if loss == "cross_entropy" and draw(st.booleans()):
            options["label_smoothing"] = draw(st.sampled_from([0.1, 0.5]))
    return loss, arrays, options


def _call(loss, arrays, options, **extra):
    spec = lossy_core.get(loss)
    positional = [arrays[n] for n in spec.arrays]
    keywords = {n: arrays[n] for n in spec.optional_arrays if n in arrays}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # broadcasting and kl_div 'mean' warnings are expected
        return lossy_core.value_and_grad(spec.function)(*positional, **keywords, **options, **extra)


def _torch_value_and_grad(loss, arrays, options, upstream, dtype):
    """torch.nn.functional's value and autograd gradients of the differentiable floating arrays."""
    spec = lossy_core.get(loss)
    tensors = {n: torch.tensor(a, dtype=getattr(torch, dtype)) if a.dtype.kind == "f" else torch.tensor(a)
               for n, a in arrays.items()}
    diff = [n for n in spec.differentiable if n in tensors and tensors[n].is_floating_point()]
    for n in diff:
        tensors[n].requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = getattr(F, spec.torch.function)(*[tensors[n] for n in spec.arrays],
                                              **{n: tensors[n] for n in spec.optional_arrays if n in tensors},
                                              **options)
    grads = torch.autograd.grad(out, [tensors[n] for n in diff],
                                grad_outputs=torch.tensor(upstream, dtype=out.dtype), allow_unused=True)
    return out.detach().numpy(), {n: g.numpy() for n, g in zip(diff, grads)}


def _cast(arrays, dtype):
    return {n: a.astype(dtype) if a.dtype.kind == "f" else a for n, a in arrays.items()}


def _upstream(loss, arrays, options, dtype):
    """(upstream to pass, upstream for torch): None and 1 for a scalar output, else seeded uniform values."""
    spec = lossy_core.get(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = spec.function(*[arrays[n] for n in spec.arrays],
                              **{n: arrays[n] for n in spec.optional_arrays if n in arrays}, **options)
    if np.ndim(value) == 0:
        return None, np.array(1.0, dtype=dtype)
    upstream = np.random.default_rng(0).uniform(-1, 1, np.shape(value)).astype(dtype)
    return upstream, upstream


def _assert_close(got, want, rtol, what):
    assert got.shape == want.shape, what
    assert got.dtype == want.dtype, what
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=what)
    scale = max(float(np.max(np.abs(want[finite]), initial=0.0)), 1.0)
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", LOSSES)
@SETTINGS
@given(data=st.data())
def test_analytic_gradients_match_torch_autograd(loss, dtype, data):
    _, arrays, options = data.draw(problems(loss))
    arrays = _cast(arrays, dtype)
    passed, upstream = _upstream(loss, arrays, options, dtype)
    value, grads = _call(loss, arrays, options, upstream=passed)
    want_value, want_grads = _torch_value_and_grad(loss, arrays, options, upstream, dtype)
    _assert_close(np.asarray(value), want_value, RTOL[dtype], f"{loss} value")
    assert set(grads) == set(want_grads)
    for name, want in want_grads.items():
        _assert_close(np.asarray(grads[name]), want, RTOL[dtype], f"{loss} grad {name} {options}")


def _smooth_enough(loss, arrays, options):
    """Away from the kinks (|d| = 0, beta, delta) by more than the finite-difference step."""
    if loss not in ("l1_loss", "smooth_l1_loss", "huber_loss"):
        return True
    d = np.abs(arrays["input"] - arrays["target"])
    kinks = [0.0] + [options[k] for k in ("beta", "delta") if k in options]
    return all(np.min(np.abs(d - k), initial=np.inf) > 1e-3 for k in kinks)


@pytest.mark.parametrize("loss", LOSSES)
@SETTINGS
@given(data=st.data())
def test_analytic_gradients_match_central_differences_float64(loss, data):
    """``<grad, v>`` equals ``(f(x + h v) - f(x - h v)) / 2h`` along a random direction ``v``, on NumPy."""
    _, arrays, options = data.draw(problems(loss))
    if not _smooth_enough(loss, arrays, options):
        return
    passed, upstream = _upstream(loss, arrays, options, "float64")
    value, grads = _call(loss, arrays, options, upstream=passed)
    if not np.all(np.isfinite(np.asarray(value))):
        # No difference quotient of a NaN/inf value (e.g. nll_loss 'mean' with every target ignored,
        # NaN by torch's definition; its gradient is checked against torch in test_every_target_ignored).
        return
    spec = lossy_core.get(loss)
    rng = np.random.default_rng(1)
    h = 1e-6
    for name, grad in grads.items():
        direction = rng.uniform(-1, 1, np.shape(arrays[name]))
        if loss == "ctc_loss":
            # torch's CTC gradient assumes normalised log_probs (it is exact through log_softmax, not for
            # free log_probs): move along directions that keep each frame normalised to first order.
            p = np.exp(arrays[name])
            direction = direction - np.sum(p * direction, axis=-1, keepdims=True)

        def objective(step):
            moved = dict(arrays, **{name: arrays[name] + step * direction})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = spec.function(*[moved[n] for n in spec.arrays],
                                    **{n: moved[n] for n in spec.optional_arrays if n in moved}, **options)
            return float(np.sum(np.asarray(out) * upstream))

        numeric = (objective(h) - objective(-h)) / (2 * h)
        analytic = float(np.sum(grad * direction))
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-6), (loss, name, options)


# -- edges: each compared with torch autograd, live ----------------------------------

def _check_against_torch(loss, arrays, options, dtype="float64"):
    arrays = _cast(arrays, dtype)
    passed, upstream = _upstream(loss, arrays, options, dtype)
    value, grads = _call(loss, arrays, options, upstream=passed)
    want_value, want_grads = _torch_value_and_grad(loss, arrays, options, upstream, dtype)
    _assert_close(np.asarray(value), want_value, RTOL[dtype], f"{loss} value")
    assert set(grads) == set(want_grads)
    for name, want in want_grads.items():
        _assert_close(np.asarray(grads[name]), want, RTOL[dtype], f"{loss} grad {name}")
    return grads


LOGITS_EDGE = np.array([[-np.inf, 0.0, 1.0], [1e4, -1e4, 0.0], [-1e4, -np.inf, 1e4]])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_at_infinite_and_huge_logits(dtype, smoothing, reduction):
    grads = _check_against_torch("cross_entropy", {"input": LOGITS_EDGE, "target": np.array([1, 0, 2])},
                                 {"reduction": reduction, "label_smoothing": smoothing}, dtype)
    assert np.isfinite(grads["input"]).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_at_huge_logits(reduction):
    logits = np.array([1e4, -1e4, 0.0, 50.0, -50.0])
    grads = _check_against_torch("binary_cross_entropy_with_logits",
                                 {"input": logits, "target": np.array([0.0, 1.0, 0.5, 0.2, 0.7]),
                                  "pos_weight": np.array([2.0])}, {"reduction": reduction})
    assert all(np.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_at_saturated_probabilities(reduction):
    """p in {0, 1}: torch's input gradient is finite (its 1e-12 floor); _bce_backward gives the same."""
    grads = _check_against_torch("binary_cross_entropy",
                                 {"input": np.array([0.0, 1.0, 0.0, 1.0, 0.5]),
                                  "target": np.array([1.0, 0.0, 0.0, 1.0, 0.3]),
                                  "weight": np.array([0.5, 1.0, 2.0, 1.0, 1.0])}, {"reduction": reduction})
    assert np.isfinite(grads["input"]).all()


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_every_target_ignored(loss, reduction):
    """'mean' is NaN (0/0) but the gradient is zeros in torch: it is written only at kept targets."""
    grads = _check_against_torch(loss, {"input": np.array([[0.5, -1.0], [2.0, 0.0]]), "target": np.array([-100, -100]),
                                        "weight": np.array([1.0, 2.0])}, {"reduction": reduction})
    assert (grads["input"] == 0).all()


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch(loss, reduction):
    if loss == "ctc_loss":  # torch refuses an empty batch: "log_probs tensor must not be empty"
        args = (np.zeros((4, 0, 3)), np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.int64))
        with pytest.raises(RuntimeError, match="log_probs tensor must not be empty"):
            F.ctc_loss(*(torch.from_numpy(a) for a in args), reduction=reduction)
        with pytest.raises(RuntimeError, match="log_probs tensor must not be empty"):
            lossy_core.ctc_loss(*args, reduction=reduction)
        return
    if loss in ("cross_entropy", "nll_loss"):
        arrays = {"input": np.zeros((0, 3)), "target": np.zeros((0,), dtype=np.int64)}
    else:
        arrays = {"input": np.full((0, 3), 0.5), "target": np.full((0, 3), 0.5)}
    grads = _check_against_torch(loss, arrays, {"reduction": reduction})
    assert grads["input"].shape == (0, 3)


def test_upstream_is_required_for_unreduced_output_and_checked():
    x, y = np.ones((2, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match="pass 'upstream'"):
        lossy_core.value_and_grad(lossy_core.mse_loss)(x, y, reduction="none")
    with pytest.raises(ValueError, match="'upstream' has shape"):
        lossy_core.value_and_grad(lossy_core.mse_loss)(x, y, reduction="none", upstream=np.ones(3))


def test_validation_is_the_loss_own():
    """The loss's own errors, before any gradient is computed (torch: ValueError for a bad reduction)."""
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        lossy_core.value_and_grad("mse_loss")(np.ones(2), np.ones(2), reduction="avg")
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        lossy_core.value_and_grad(lossy_core.binary_cross_entropy)(np.array([1.5]), np.array([1.0]))


def test_array_api_strict_gives_the_numpy_gradients():
    xps = pytest.importorskip("array_api_strict")
    x = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    y = np.array([0, 2])
    w = np.array([1.0, 0.5, 2.0])
    _, want = lossy_core.value_and_grad(lossy_core.cross_entropy)(x, y, weight=w, label_smoothing=0.1)
    _, got = lossy_core.value_and_grad(lossy_core.cross_entropy)(xps.asarray(x), xps.asarray(y), weight=xps.asarray(w),
                                                                 label_smoothing=0.1)
    assert type(got["input"]).__module__.startswith("array_api_strict")
    np.testing.assert_array_equal(np.asarray(got["input"]), want["input"])


def test_kl_div_target_gradient_at_zero_probability_is_torch_nan():
    """torch differentiates xlogy(p, p): the target gradient at p = 0 is NaN (0/0), the rest finite."""
    grads = _check_against_torch("kl_div", {"input": np.array([-1.0, -0.5, -2.0]), "target": np.array([0.0, 0.3, 0.7])},
                                 {"reduction": "sum"})
    assert np.isnan(grads["target"][0]) and np.isfinite(grads["target"][1:]).all()
