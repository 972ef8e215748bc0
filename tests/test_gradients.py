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
from conformance.reference import reference_function
from conformance.plain_torch import REFERENCES
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
    elif loss == "sigmoid_focal_loss":
        arrays["inputs"] = rng.standard_normal(shape) * 3
        arrays["targets"] = (rng.uniform(0, 1, shape) if draw(st.booleans())
                             else (rng.uniform(0, 1, shape) > 0.5).astype(np.float64))
        options["gamma"] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]))
        options["alpha"] = draw(st.sampled_from([0.25, -1, None, 0.8]))
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, shape[-1:])
        if draw(st.booleans()):
            arrays["pos_weight"] = rng.uniform(0.1, 3.0, shape[-1:])
        if draw(st.booleans()):
            options["normalizer"] = float(draw(st.sampled_from([1.0, 3.0])))
        options["modulation"] = draw(st.sampled_from(["focal", "quality"]))
    elif loss == "binary_focal_loss":
        arrays["input"] = rng.uniform(0.01, 0.99, shape)
        arrays["target"] = rng.uniform(0, 1, shape)
        options["gamma"] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]))
        options["alpha"] = draw(st.sampled_from([0.25, -1, None, 0.8]))
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, shape[-1:])
    elif loss == "kl_div":
        options["reduction"] = draw(st.sampled_from(REDUCTIONS + ("batchmean",)))
        options["log_target"] = draw(st.booleans())
        arrays["input"] = np.log(rng.dirichlet(np.ones(shape[-1]), shape[:-1]))
        target = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
        arrays["target"] = np.log(target) if options["log_target"] else target
    elif loss == "poisson_nll_loss":
        options["log_input"] = draw(st.booleans())
        options["full"] = draw(st.booleans())
        arrays["input"] = rng.standard_normal(shape) if options["log_input"] else rng.uniform(0.05, 3.0, shape)
        arrays["target"] = rng.uniform(0.1, 5.0, shape)  # both sides of torch's Stirling threshold y > 1
        if draw(st.booleans()):
            options["eps"] = 0.5
    elif loss == "gaussian_nll_loss":
        options["full"] = draw(st.booleans())
        arrays["input"] = rng.standard_normal(shape)
        arrays["target"] = rng.standard_normal(shape)
        var_shape = draw(st.sampled_from([shape, shape[:-1], shape[:-1] + (1,)]))
        arrays["var"] = rng.uniform(0.05, 2.0, var_shape)
        if draw(st.booleans()):
            options["eps"] = 0.1  # some variances below it: clamped
    elif loss in ("margin_ranking_loss", "cosine_embedding_loss"):
        options["margin"] = draw(st.sampled_from([0.0, 0.3, -0.4]))
        rows = shape[:1]
        if loss == "margin_ranking_loss":
            arrays["input1"], arrays["input2"] = rng.standard_normal(shape), rng.standard_normal(shape)
            arrays["target"] = rng.choice([-1.0, 1.0], shape)
        else:
            arrays["input1"] = rng.standard_normal(rows + (3,))
            arrays["input2"] = arrays["input1"] + rng.standard_normal(rows + (3,))
            arrays["target"] = rng.choice([-1.0, 1.0], rows)
    elif loss in ("hinge_embedding_loss", "soft_margin_loss"):
        arrays["input"] = rng.standard_normal(shape) * 2
        arrays["target"] = rng.choice([-1.0, 1.0], shape)
        if loss == "hinge_embedding_loss":
            options["margin"] = draw(st.sampled_from([1.0, 0.5, 2.0]))
    elif loss == "multilabel_soft_margin_loss":  # (..., C): the last axis holds the classes
        arrays["input"] = rng.standard_normal(shape) * 3
        arrays["target"] = rng.uniform(0, 1, shape)
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, shape[-1:])
    elif loss in ("multilabel_margin_loss", "multi_margin_loss"):  # (C) or (N, C)
        classes = draw(st.integers(1, 5))
        layout = draw(st.sampled_from([(classes,), (shape[0], classes)]))
        arrays["input"] = rng.standard_normal(layout) * 2
        frames = layout[0] if len(layout) == 2 else 1
        if loss == "multilabel_margin_loss":  # targets, then -1 at a random place, then anything in range
            target = rng.integers(-1, classes, layout)
            arrays["target"] = np.asarray(target, dtype=np.int64)
        else:
            target = rng.integers(0, classes, (frames,) if len(layout) == 2 else ())
            arrays["target"] = np.asarray(target, dtype=np.int64)
            options["p"] = draw(st.sampled_from([1, 2]))
            options["margin"] = draw(st.sampled_from([1.0, 0.5, 2.0]))
            if draw(st.booleans()):
                arrays["weight"] = rng.uniform(0.1, 2.0, (classes,))
    elif loss in ("triplet_margin_loss", "triplet_margin_with_distance_loss"):
        for name in ("anchor", "positive", "negative"):
            arrays[name] = rng.standard_normal(shape)
        options["margin"] = draw(st.sampled_from([1.0, 0.5, 3.0]))
        options["swap"] = draw(st.booleans())
        if loss == "triplet_margin_loss":
            options["p"] = draw(st.sampled_from([1.0, 2.0, 3.0, float("inf")]))
            options["eps"] = draw(st.sampled_from([1e-6, 0.0, 0.1]))
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
    elif loss in ("quality_focal_loss", "varifocal_loss", "asymmetric_loss"):
        arrays["input"] = rng.standard_normal(shape) * 3
        if loss == "asymmetric_loss":
            hard = (rng.uniform(size=shape) < 0.3).astype(np.float64)
            arrays["target"] = hard if draw(st.booleans()) else rng.uniform(0, 1, shape)
            # gamma >= 1: the pow reference's gradient is NaN at 1 - pt = 0 with gamma < 1 (p <= clip)
            options["gamma_neg"] = draw(st.sampled_from([0.0, 1.0, 2.0, 4.0]))
            options["gamma_pos"] = draw(st.sampled_from([0.0, 1.0, 2.0]))
            options["clip"] = draw(st.sampled_from([0.0, 0.05, 0.2]))
        else:
            scores = rng.uniform(0.05, 1.0, shape)
            arrays["target"] = np.where(rng.uniform(size=shape) < 0.4, scores, 0.0)
            key = "beta" if loss == "quality_focal_loss" else "gamma"
            options[key] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]))
            if loss == "varifocal_loss":
                options["alpha"] = draw(st.sampled_from([0.25, 0.75, 1.0]))
                options["iou_weighted"] = draw(st.booleans())
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, shape[-1:])
    elif loss == "distribution_focal_loss":
        bins = draw(st.integers(2, 8))
        arrays["input"] = rng.standard_normal(shape + (bins,)) * 2
        arrays["target"] = rng.uniform(0, bins - 1, shape) * (1 - 1e-9)
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, shape)
    elif loss == "linear_cross_entropy":  # input (D) or (N, D); linear_weight (C, D) or (C, d, D)
        features, classes = draw(st.integers(1, 4)), draw(st.integers(1, 5))
        out_features = draw(st.sampled_from([(), shape[-1:]]))
        rows = shape[:1] if out_features or draw(st.booleans()) else ()  # K-dim needs batched input
        arrays["input"] = rng.standard_normal(rows + (features,))
        arrays["linear_weight"] = rng.standard_normal((classes, *out_features, features))
        if draw(st.booleans()):
            arrays["linear_bias"] = rng.standard_normal((classes, *out_features))
        positions = rows + out_features
        if draw(st.booleans()):  # class probabilities, shaped like the logits (N, C, d)
            arrays["target"] = np.moveaxis(rng.dirichlet(np.ones(classes), positions), -1, len(rows))
        else:
            target = rng.integers(0, classes, positions)
            if draw(st.booleans()):
                options["ignore_index"] = int(draw(st.sampled_from([-100, 0])))
                if options["ignore_index"] == -100 and target.ndim:
                    target = np.where(rng.uniform(size=positions) < 0.3, -100, target)
            arrays["target"] = np.asarray(target, dtype=np.int64)
        if draw(st.booleans()):
            arrays["weight"] = rng.uniform(0.1, 2.0, (classes,))
        if draw(st.booleans()):
            options["label_smoothing"] = draw(st.sampled_from([0.1, 0.5]))
        options["chunk_size"] = draw(st.sampled_from([None, 1, 2, 3]))
        # lossy's extras: against the explicit formula of conformance/plain_torch_linear.py
        if draw(st.booleans()):
            options["lse_square_scale"] = draw(st.sampled_from([1e-3, 0.1]))
        if draw(st.booleans()):
            options["softcap"] = draw(st.sampled_from([0.5, 3.0]))
    else:  # cross_entropy, nll_loss, softmax_focal_loss, poly1_cross_entropy: (C), (N, C) or (N, C, d)
        classes = draw(st.integers(2, 5))
        layout = draw(st.sampled_from([(classes,), (shape[0], classes), (shape[0], classes, shape[-1])]))
        arrays["input"] = rng.standard_normal(layout) * 2
        if loss == "nll_loss":  # log-probabilities over the class axis
            class_axis = 0 if len(layout) == 1 else 1
            x = arrays["input"]
            arrays["input"] = x - np.log(np.sum(np.exp(x), axis=class_axis, keepdims=True))
        probabilities = loss in ("cross_entropy", "softmax_focal_loss", "poly1_cross_entropy") and draw(st.booleans())
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
        if loss in ("cross_entropy", "poly1_cross_entropy") and draw(st.booleans()):
            options["label_smoothing"] = draw(st.sampled_from([0.1, 0.5]))
        if loss == "softmax_focal_loss":
            options["gamma"] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]))
            options["alpha"] = draw(st.sampled_from([None, 0.25]))
        if loss == "poly1_cross_entropy":
            options["epsilon"] = draw(st.sampled_from([-1.0, 0.0, 1.0, 3.0]))
    return loss, arrays, options


def _call(loss, arrays, options, **extra):
    spec = lossy_core.get(loss)
    positional = [arrays[n] for n in spec.arrays]
    keywords = {n: arrays[n] for n in spec.optional_arrays if n in arrays}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # broadcasting and kl_div 'mean' warnings are expected
        return lossy_core.value_and_grad(spec.function)(*positional, **keywords, **options, **extra)


def _torch_value_and_grad(loss, arrays, options, upstream, dtype):
    """torch's value and autograd gradients of the differentiable floating arrays (conformance's reference)."""
    spec = lossy_core.get(loss)
    tensors = {n: torch.tensor(a, dtype=getattr(torch, dtype)) if a.dtype.kind == "f" else torch.tensor(a)
               for n, a in arrays.items()}
    diff = [n for n in spec.differentiable if n in tensors and tensors[n].is_floating_point()]
    for n in diff:
        tensors[n].requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reference_function(loss)(*[tensors[n] for n in spec.arrays],
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
    _check_against_torch(loss, arrays, options, dtype)


def _hinges(loss, arrays, options):
    """The arguments of the margin losses' hinges (and swap's minimum), whose kinks are at 0."""
    if loss in ("triplet_margin_loss", "triplet_margin_with_distance_loss"):
        p, eps = options.get("p", 2.0), options.get("eps", 1e-6)
        a, pos, neg = arrays["anchor"], arrays["positive"], arrays["negative"]

        def d(x, y):
            return np.linalg.norm(x - y + eps, ord=p, axis=-1)
        return [options["margin"] + d(a, pos) - np.minimum(d(a, neg), d(pos, neg) if options["swap"] else np.inf),
                d(a, neg) - d(pos, neg)]
    x = np.atleast_2d(arrays["input"])
    if loss == "multi_margin_loss":
        y = np.reshape(arrays["target"], (-1, 1))
        return [options["margin"] - np.take_along_axis(x, y, axis=1) + x]
    # multilabel_margin_loss: every (target j, class i) pair
    return [1 - x[:, :, None] + x[:, None, :]]


def _smooth_enough(loss, arrays, options):
    """Away from the kinks (|d| = 0, beta, delta; a hinge at 0) by more than the finite-difference step."""
    if loss == "margin_ranking_loss":  # the hinge max(0, z) at z = 0
        z = -arrays["target"] * (arrays["input1"] - arrays["input2"]) + options["margin"]
        return np.min(np.abs(z), initial=np.inf) > 1e-3
    if loss == "gaussian_nll_loss":  # the clamp at eps: torch's gradient passes straight through it
        return np.min(arrays["var"], initial=np.inf) > options.get("eps", 1e-6) + 1e-3
    if loss == "hinge_embedding_loss":
        return np.min(np.abs(options["margin"] - arrays["input"]), initial=np.inf) > 1e-3
    if loss == "cosine_embedding_loss":
        a, b = arrays["input1"], arrays["input2"]
        cos = (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
        return np.min(np.abs(cos - options["margin"]), initial=np.inf) > 1e-3
    if loss in ("multi_margin_loss", "multilabel_margin_loss", "triplet_margin_loss",
                "triplet_margin_with_distance_loss"):
        return all(np.min(np.abs(h), initial=np.inf) > 1e-3 for h in _hinges(loss, arrays, options))
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
        if loss == "sigmoid_focal_loss" and name == "targets" and np.isin(arrays[name], (0.0, 1.0)).any():
            continue  # a step off a hard label leaves [0, 1], where (1 - p_t)^gamma is not defined

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
        _assert_close(np.asarray(grads[name]), want, RTOL[dtype], f"{loss} grad {name} {options}")
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


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss", "poly1_cross_entropy"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_every_target_ignored(loss, reduction):
    """'mean' is NaN (0/0) but the gradient is zeros in torch: it is written only at kept targets."""
    grads = _check_against_torch(loss, {"input": np.array([[0.5, -1.0], [2.0, 0.0]]), "target": np.array([-100, -100]),
                                        "weight": np.array([1.0, 2.0])}, {"reduction": reduction})
    assert (grads["input"] == 0).all()


# torch's multi_margin_loss and multilabel_margin_loss return uninitialized memory for an empty batch's
# 'mean'/'sum' (tests/test_multilabel_embedding.py checks lossy's 0 and NaN there).
EMPTY_BATCH = [n for n in LOSSES if n not in ("multi_margin_loss", "multilabel_margin_loss")]


@pytest.mark.parametrize("loss", EMPTY_BATCH)
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
    if loss in ("cross_entropy", "nll_loss", "softmax_focal_loss", "poly1_cross_entropy"):
        arrays = {"input": np.zeros((0, 3)), "target": np.zeros((0,), dtype=np.int64)}
    elif loss == "linear_cross_entropy":  # no rows: the weight's gradient is zeros
        arrays = {"input": np.zeros((0, 3)), "linear_weight": np.full((4, 3), 0.5),
                  "target": np.zeros((0,), dtype=np.int64)}
    elif loss == "distribution_focal_loss":  # 3 bins over an empty batch of distances
        arrays = {"input": np.zeros((0, 3)), "target": np.zeros((0,))}
    elif loss == "cosine_embedding_loss":
        arrays = {"input1": np.full((0, 3), 0.5), "input2": np.full((0, 3), 0.5), "target": np.ones(0)}
    elif loss in ("triplet_margin_loss", "triplet_margin_with_distance_loss"):
        arrays = {n: np.full((0, 3), v) for n, v in (("anchor", 0.5), ("positive", 0.25), ("negative", 1.0))}
        grads = _check_against_torch(loss, arrays, {"reduction": reduction})
        assert grads["anchor"].shape == (0, 3)
        return
    else:
        names = lossy_core.get(loss).arrays  # input, target (and var), or input1, input2, target
        arrays = {n: np.full((0, 3), 0.5) for n in names}
    grads = _check_against_torch(loss, arrays, {"reduction": reduction})
    assert grads[lossy_core.get(loss).arrays[0]].shape == (0, 3)


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


def test_linear_cross_entropy_upstream_must_have_the_output_shape():
    # reduction='none' on 4 rows: the output is (4,); an upstream of (2, 2) has as many entries
    # but not the shape, and is refused as for every other loss (value_and_grad's rule).
    value_and_grad = lossy_core.value_and_grad(lossy_core.linear_cross_entropy)
    x, w, t = np.ones((4, 3)), np.ones((5, 3)), np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"'upstream' has shape \[2, 2\], the output \[4\]"):
        value_and_grad(x, w, t, reduction="none", upstream=np.ones((2, 2)))
    value, grads = value_and_grad(x, w, t, reduction="none", upstream=[1.0, 0.0, 0.0, 0.0])
    assert value.shape == (4,) and np.all(grads["input"][1:] == 0)  # only row 0's upstream is non-zero
