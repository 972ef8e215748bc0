"""Focal variants (quality focal, distribution focal, varifocal) and class-imbalance losses
(asymmetric, Poly-1): finiteness at saturated logits for every focusing exponent, empty
inputs, errors, and the relations to their neighbours (values and gradients).

Values against the plain-torch references live in the conformance suite
(conformance/plain_torch_focal_variants.py); here the properties the docstrings claim."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossy_core
import lossy_jax
import lossy_torch
import lossy_torch.functional as LF
from conformance.plain_torch import REFERENCES

jax.config.update("jax_enable_x64", True)

GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
# Saturated and moderate logits, with hard and soft targets (every combination below).
LOGITS = np.array([1e4, -1e4, 1e4, -1e4, 1e4, -1e4, 30.0, -30.0, 0.0, 2.0])
TARGETS = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.25, 0.75, 0.5, 0.0])
# name -> (the focusing hyperparameters to sweep, extra options)
SIGMOID_LOSSES = {
    "quality_focal_loss": (("beta",), {}),
    "varifocal_loss": (("gamma",), {}),
    "asymmetric_loss": (("gamma_neg", "gamma_pos"), {}),
}


def _finite_everywhere(name, x, y, options):
    """Value and input gradient are finite on numpy (analytic), torch (autograd) and jax (grad)."""
    loss = getattr(lossy_core, name)
    rtol = 1e-10 if x.dtype == np.float64 else 1e-5
    # Where terms of order 1 cancel to a zero gradient (x = 0, y = 1/2), a different but equally
    # exact order of operations leaves a rounding residue: jax's autodiff of the select-free
    # log_sigmoid gives -1.4e-17 for asymmetric_loss with gamma 1/2 (float64, measured), where the
    # analytic gradient and torch give 0. The absolute tolerance is that resolution, not looser.
    atol = 1e-14 if x.dtype == np.float64 else 1e-6
    value, grads = lossy_core.value_and_grad(loss)(x, y, **options)
    assert np.isfinite(value).all() and np.isfinite(grads["input"]).all(), (name, options)
    xt = torch.tensor(x, requires_grad=True)
    out = getattr(LF, name)(xt, torch.tensor(y), **options)
    out.backward()
    assert torch.isfinite(out).all() and torch.isfinite(xt.grad).all(), (name, options, xt.grad)
    np.testing.assert_allclose(xt.grad.numpy(), grads["input"], rtol=rtol, atol=atol)
    gj = jax.grad(lambda a: getattr(lossy_jax, name)(a, jax.numpy.asarray(y), **options))(jax.numpy.asarray(x))
    assert np.isfinite(np.asarray(gj)).all(), (name, options)
    np.testing.assert_allclose(np.asarray(gj), grads["input"], rtol=rtol, atol=atol)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("name", sorted(SIGMOID_LOSSES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_finite_for_saturated_logits_and_every_gamma(name, gamma, dtype):
    hypers, extra = SIGMOID_LOSSES[name]
    x, y = LOGITS.astype(dtype), TARGETS.astype(dtype)
    for hyper in hypers:
        _finite_everywhere(name, x, y, {hyper: gamma, "reduction": "sum", **extra})
    if name == "asymmetric_loss":  # the probability shift off, and eps = 0 (log space needs no clamp)
        _finite_everywhere(name, x, y, {"gamma_neg": gamma, "gamma_pos": gamma, "clip": 0.0, "eps": 0.0,
                                        "reduction": "sum"})


@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 1.0, 5.0])
def test_poly1_and_distribution_focal_finite_for_saturated_logits(epsilon):
    x = np.array([[1e4, -1e4, 0.0, 1.0], [-1e4, 1e4, -1e4, 1e4], [1e4, 1e4, -1e4, -1e4]])
    _finite_everywhere("poly1_cross_entropy", x, np.array([0, 0, 3]), {"epsilon": epsilon, "label_smoothing": 0.1})
    _finite_everywhere("poly1_cross_entropy", x, np.full((3, 4), 0.25), {"epsilon": epsilon})
    _finite_everywhere("distribution_focal_loss", x, np.array([0.5, 1.25, 2.75]), {"reduction": "sum"})


def test_asymmetric_soft_targets_at_moderate_logits_are_accurate():
    """Where the direct form 1 - sigmoid(x) cancels (x = 30), the log-space value matches the exact one.

    Exact: at y = 0.5, x = 30, gamma_pos = 1, gamma_neg = 4, clip = 0.05: 1 - pt = 0.5 sigmoid(-30) + 0.5 (sigmoid(30) - 0.05)."""
    x, y = np.array([30.0]), np.array([0.5])
    s_neg = np.exp(-30.0) / (1 + np.exp(-30.0))  # sigmoid(-30), no cancellation
    s_pos = 1 / (1 + np.exp(-30.0))
    log_pos = np.log(s_pos)
    log_neg = np.log(min(s_neg + 0.05, 1.0))
    one_minus_pt = 0.5 * s_neg + 0.5 * (s_pos - 0.05)
    exact = -(0.5 * log_pos + 0.5 * log_neg) * one_minus_pt ** (1.0 * 0.5 + 4.0 * 0.5)
    np.testing.assert_allclose(lossy_core.asymmetric_loss(x, y, reduction="sum"), exact, rtol=1e-13)


@pytest.mark.parametrize("name", ["quality_focal_loss", "varifocal_loss", "asymmetric_loss", "poly1_cross_entropy",
                                  "distribution_focal_loss"])
def test_empty_inputs(name):
    if name == "poly1_cross_entropy":
        x, y = np.zeros((0, 4)), np.zeros((0,), dtype=np.int64)
    elif name == "distribution_focal_loss":
        x, y = np.zeros((0, 8)), np.zeros((0,))
    else:
        x, y = np.zeros((0, 4)), np.zeros((0, 4))
    loss = getattr(lossy_core, name)
    assert np.isnan(loss(x, y))  # 'mean' of nothing is NaN, as torch's
    assert loss(x, y, reduction="sum") == 0
    assert loss(x, y, reduction="none").shape == y.shape
    _, grads = lossy_core.value_and_grad(loss)(x, y, reduction="sum")
    assert grads["input"].shape == x.shape
    xt = torch.zeros(x.shape, dtype=torch.float64, requires_grad=True)
    getattr(LF, name)(xt, torch.from_numpy(y), reduction="sum").backward()
    assert xt.grad.shape == x.shape


# -- relations to the neighbours --------------------------------------------------------

def _torch_value_and_grad(fn, x, *args, **kwargs):
    xt = torch.tensor(x, requires_grad=True)
    out = fn(xt, *args, **kwargs)
    out.backward(torch.ones_like(out))
    return out.detach().numpy(), xt.grad.numpy()


def _same(a, b, rtol=1e-12):
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-15)


RNG = np.random.default_rng(0)
X = RNG.standard_normal((6, 4)) * 3
SOFT = RNG.uniform(size=(6, 4))
SCORES = np.where(RNG.uniform(size=(6, 4)) < 0.3, RNG.uniform(0.05, 1.0, (6, 4)), 0.0)
HARD = (RNG.uniform(size=(6, 4)) < 0.3).astype(np.float64)


def test_poly1_with_epsilon_zero_is_cross_entropy_values_and_gradients():
    w = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    index = torch.tensor([0, 1, 3, 2, 1, 0])
    probs = torch.softmax(torch.tensor(SOFT), 1)
    for target, options in ((index, {}), (index, {"weight": w, "ignore_index": 1, "label_smoothing": 0.2}),
                            (probs, {"weight": w, "label_smoothing": 0.1}), (probs, {"reduction": "none"})):
        for reduction in ("mean", "sum", "none"):
            options = {**options, "reduction": reduction}
            poly = _torch_value_and_grad(LF.poly1_cross_entropy, X, target, epsilon=0.0, **options)
            ce = _torch_value_and_grad(F.cross_entropy, X, target, **options)
            _same(poly, ce)
            core = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in options.items()}
            up = {} if reduction != "none" else {"upstream": np.ones(X.shape[0])}
            value, grads = lossy_core.value_and_grad(lossy_core.poly1_cross_entropy)(
                X, target.numpy(), epsilon=0.0, **core, **up)
            _same((value, grads["input"]), ce)


def test_poly1_adds_epsilon_times_one_minus_pt():
    """Paper eq. 3: L = CE + epsilon (1 - P_t) per sample (index targets, no weights)."""
    t = np.array([0, 1, 3, 2, 1, 0])
    pt = np.exp(X[np.arange(6), t]) / np.exp(X).sum(1)
    ce = lossy_core.cross_entropy(X, t, reduction="none")
    np.testing.assert_allclose(lossy_core.poly1_cross_entropy(X, t, epsilon=2.0, reduction="none"),
                               ce + 2.0 * (1 - pt), rtol=1e-13)


def test_varifocal_with_gamma_zero_is_weighted_bce():
    xt, q = torch.tensor(X), torch.tensor(SCORES)
    bce = F.binary_cross_entropy_with_logits(xt, q, reduction="none")
    weights = torch.where(q > 0, q, torch.full_like(q, 0.75))
    torch.testing.assert_close(LF.varifocal_loss(xt, q, gamma=0.0, reduction="none"), bce * weights, rtol=1e-13,
                               atol=0)
    # alpha = 1, no IoU weighting: exactly BCE with logits (values and gradients)
    _same(_torch_value_and_grad(LF.varifocal_loss, X, q, gamma=0.0, alpha=1.0, iou_weighted=False),
          _torch_value_and_grad(F.binary_cross_entropy_with_logits, X, q))


def test_quality_focal_relations():
    q = torch.tensor(SOFT)
    _same(_torch_value_and_grad(LF.quality_focal_loss, X, q, beta=0.0),
          _torch_value_and_grad(F.binary_cross_entropy_with_logits, X, q))
    # hard targets: the sigmoid focal loss (no alpha) with gamma = beta (Lin et al. 2017, eq. 4)
    y = torch.tensor(HARD)
    p = torch.sigmoid(torch.tensor(X))
    p_t = p * y + (1 - p) * (1 - y)
    focal = (1 - p_t) ** 2.0 * F.binary_cross_entropy_with_logits(torch.tensor(X), y, reduction="none")
    torch.testing.assert_close(LF.quality_focal_loss(torch.tensor(X), y, reduction="none"), focal, rtol=1e-12, atol=0)


def test_quality_focal_matches_mmdet_label_score_form():
    """mmdet's QFL takes (label, score); the dense target puts score at the label (background: label == C).
    Its per-sample loss sums classes; the sum of lossy's 'none' over classes is that."""
    label = torch.tensor([0, 4, 2, 4, 1, 3])  # 4 == C: background
    score = torch.tensor([0.9, 0.0, 0.3, 0.0, 0.6, 0.8], dtype=torch.float64)
    pred = torch.tensor(X)
    dense = torch.zeros_like(pred)
    pos = label < 4
    dense[pos, label[pos]] = score[pos]
    # mmdet's formula, written out (negatives: BCE(x, 0) sigmoid(x)^beta; positives: BCE(x, s) |s - sigmoid(x)|^beta)
    s = pred.sigmoid()
    mm = F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred), reduction="none") * s.pow(2.0)
    idx = pos.nonzero().squeeze(1)
    mm[idx, label[idx]] = F.binary_cross_entropy_with_logits(
        pred[idx, label[idx]], score[idx], reduction="none") * (score[idx] - s[idx, label[idx]]).abs().pow(2.0)
    torch.testing.assert_close(LF.quality_focal_loss(pred, dense, reduction="none").sum(1), mm.sum(1),
                               rtol=1e-12, atol=1e-15)


def test_asymmetric_relations():
    y = torch.tensor(HARD)
    plain = {"gamma_neg": 0.0, "gamma_pos": 0.0, "clip": 0.0, "eps": 0.0}
    _same(_torch_value_and_grad(LF.asymmetric_loss, X, y, **plain),
          _torch_value_and_grad(F.binary_cross_entropy_with_logits, X, y))
    # reduction='sum' is timm's AsymmetricLossMultiLabel (-loss.sum()), through the plain-torch reference
    _same(_torch_value_and_grad(LF.asymmetric_loss, X, y, reduction="sum"),
          _torch_value_and_grad(REFERENCES["asymmetric_loss"], X, y, reduction="sum"))
    # and 'mean' is that sum over the number of elements
    np.testing.assert_allclose(lossy_core.asymmetric_loss(X, HARD) * X.size,
                               lossy_core.asymmetric_loss(X, HARD, reduction="sum"), rtol=1e-13)


def test_distribution_focal_at_integer_distances_is_cross_entropy():
    x = RNG.standard_normal((5, 8))
    y = np.array([0.0, 3.0, 6.0, 2.0, 5.0])
    _same(_torch_value_and_grad(LF.distribution_focal_loss, x, torch.tensor(y)),
          _torch_value_and_grad(F.cross_entropy, x, torch.tensor(y).long()))


def test_distribution_focal_interpolates_between_bins():
    """y = l + f: (1 - f) CE(x, l) + f CE(x, l + 1) (Li et al. 2020, eq. 6)."""
    x = RNG.standard_normal((1, 8))
    ce = lossy_core.cross_entropy(np.repeat(x, 8, 0), np.arange(8), reduction="none")
    np.testing.assert_allclose(lossy_core.distribution_focal_loss(x, np.array([2.25])), 0.75 * ce[2] + 0.25 * ce[3],
                               rtol=1e-13)


# -- errors ----------------------------------------------------------------------------

BAD_HYPERPARAMETERS = [
    ("quality_focal_loss", {"beta": -1.0}, "beta"),
    ("varifocal_loss", {"gamma": -0.5}, "gamma"),
    ("varifocal_loss", {"alpha": -0.1}, "alpha"),
    ("asymmetric_loss", {"gamma_neg": -1.0}, "gamma_neg"),
    ("asymmetric_loss", {"gamma_pos": -1.0}, "gamma_pos"),
    ("asymmetric_loss", {"clip": 1.5}, "clip"),
    ("asymmetric_loss", {"clip": -0.1}, "clip"),
    ("asymmetric_loss", {"eps": 1.0}, "eps"),
    ("asymmetric_loss", {"eps": -1e-8}, "eps"),
    ("poly1_cross_entropy", {"epsilon": -1.5}, "epsilon"),
]


def _arrays(name):
    if name == "poly1_cross_entropy":
        return X, np.array([0, 1, 3, 2, 1, 0])
    if name == "distribution_focal_loss":
        return RNG.standard_normal((3, 5)), np.array([0.5, 1.0, 3.5])
    return X, SCORES


@pytest.mark.parametrize("name,options,argument", BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_raise_value_error(name, options, argument):
    x, y = _arrays(name)
    with pytest.raises(ValueError, match=argument):
        getattr(lossy_core, name)(x, y, **options)
    with pytest.raises(ValueError, match=argument):
        getattr(LF, name)(torch.tensor(x), torch.tensor(y), **options)
    with pytest.raises(ValueError, match=argument):  # a Python number is checked before jit
        getattr(lossy_jax, name)(x, y, **options)
    # traced inside a user's jit, the value cannot be read: the loss is NaN instead
    (key, value), = options.items()
    traced = jax.jit(lambda v: getattr(lossy_jax, name)(x, y, **{key: v}))(value)
    assert np.isnan(traced)


@pytest.mark.parametrize("name", ["quality_focal_loss", "varifocal_loss", "asymmetric_loss", "poly1_cross_entropy",
                                  "distribution_focal_loss"])
def test_bad_reduction_and_keyword_only_hyperparameters(name):
    x, y = _arrays(name)
    with pytest.raises(ValueError, match="reduction"):
        getattr(lossy_core, name)(x, y, reduction="avg")
    with pytest.raises(TypeError):
        getattr(LF, name)(torch.tensor(x), torch.tensor(y), None)  # weight is keyword-only


@pytest.mark.parametrize("name", ["quality_focal_loss", "varifocal_loss", "asymmetric_loss"])
def test_pointwise_argument_errors(name):
    loss = getattr(lossy_core, name)
    with pytest.raises(ValueError, match="shape"):
        loss(X, SCORES[:, :3])
    with pytest.raises(TypeError, match="floating"):
        loss(X.astype(np.int64), SCORES)
    with pytest.raises(TypeError, match="dtype"):
        loss(X, SCORES.astype(np.float32))
    for bad in (1.5, -0.25, np.nan):
        target = SCORES.copy()
        target[1, 2] = bad
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            loss(X, target)
    with pytest.raises(RuntimeError, match="weight"):
        loss(X, SCORES, weight=np.ones(3))
    target = SCORES.copy()
    target[0, 0] = 2.0
    assert np.isnan(jax.jit(lambda t: getattr(lossy_jax, name)(X, t))(target))  # traced: NaN, not a raise


def test_varifocal_iou_weighted_must_be_bool():
    with pytest.raises(TypeError, match="iou_weighted"):
        lossy_core.varifocal_loss(X, SCORES, iou_weighted=1)


def test_distribution_focal_errors():
    x = RNG.standard_normal((3, 5))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        lossy_core.distribution_focal_loss(x, np.array([0.5, 4.0, 1.0]))  # the last bin has no right neighbour
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        lossy_core.distribution_focal_loss(x, np.array([0.5, -0.5, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        lossy_core.distribution_focal_loss(x, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="2 bins"):
        lossy_core.distribution_focal_loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(TypeError, match="floating"):
        lossy_core.distribution_focal_loss(x, np.array([0, 1, 2]))
    assert np.isnan(lossy_jax.distribution_focal_loss(x, np.array([0.5, 4.0, 1.0])))


def test_poly1_keeps_cross_entropy_errors():
    with pytest.raises(IndexError, match="out of bounds"):
        lossy_core.poly1_cross_entropy(X, np.array([0, 1, 4, 2, 1, 0]))
    with pytest.raises(RuntimeError, match="label_smoothing"):
        lossy_core.poly1_cross_entropy(X, np.array([0, 1, 3, 2, 1, 0]), label_smoothing=1.5)


# -- modules ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls,function,options", [
    ("QualityFocalLoss", "quality_focal_loss", {"beta": 1.5}),
    ("VarifocalLoss", "varifocal_loss", {"alpha": 0.5, "gamma": 1.0, "iou_weighted": False}),
    ("AsymmetricLoss", "asymmetric_loss", {"gamma_neg": 2.0, "gamma_pos": 0.0, "clip": 0.1, "eps": 1e-6}),
])
def test_modules_match_functionals(cls, function, options):
    w = torch.rand(4, dtype=torch.float64)
    module = getattr(lossy_torch, cls)(weight=w, reduction="sum", **options)
    assert isinstance(module, torch.nn.Module) and module.weight is w
    x, y = torch.tensor(X), torch.tensor(SCORES)
    torch.testing.assert_close(module(x, y), getattr(LF, function)(x, y, weight=w, reduction="sum", **options))
    with pytest.raises(TypeError):
        getattr(lossy_torch, cls)(w)  # hyperparameters are keyword-only


def test_poly1_and_distribution_modules():
    x, t = torch.tensor(X), torch.tensor([0, 1, 3, 2, 1, 0])
    torch.testing.assert_close(lossy_torch.Poly1CrossEntropyLoss(epsilon=2.0, label_smoothing=0.1)(x, t),
                               LF.poly1_cross_entropy(x, t, epsilon=2.0, label_smoothing=0.1))
    d = torch.tensor(RNG.standard_normal((3, 5)))
    y = torch.tensor([0.5, 1.0, 3.5], dtype=torch.float64)
    torch.testing.assert_close(lossy_torch.DistributionFocalLoss(reduction="none")(d, y),
                               LF.distribution_focal_loss(d, y, reduction="none"))


# -- torch.compile, torch.func, vmap ----------------------------------------------------

TORCH_CASES = {
    "quality_focal_loss": (lambda: (torch.tensor(X), torch.tensor(SCORES)), {"beta": 1.5}),
    "varifocal_loss": (lambda: (torch.tensor(X), torch.tensor(SCORES)), {"gamma": 0.5}),
    "asymmetric_loss": (lambda: (torch.tensor(X), torch.tensor(HARD)), {"gamma_neg": 2.0}),
    "distribution_focal_loss": (lambda: (torch.tensor(X), torch.tensor([0.5, 1.0, 2.25, 0.0, 2.5, 1.75])), {}),
    "poly1_cross_entropy": (lambda: (torch.tensor(X), torch.tensor([0, 1, 3, 2, 1, 0])), {"label_smoothing": 0.1}),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_torch_compile_fullgraph_func_grad_and_vmap(name):
    make, kw = TORCH_CASES[name]
    x, y = make()
    fn = getattr(LF, name)
    eager = _torch_value_and_grad(fn, x.numpy(), y, **kw)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(lambda a, b: fn(a, b, **kw), fullgraph=True, backend="aot_eager", dynamic=False)
        _same(_torch_value_and_grad(compiled, x.numpy(), y), eager)
    finally:
        torch._dynamo.reset()
    grad = torch.func.grad(lambda a: fn(a, y, **kw))(x)
    np.testing.assert_allclose(grad.numpy(), eager[1], rtol=1e-12)
    # vmap over a leading batch of two equals a Python loop
    xs, ys = torch.stack([x, x * 0.5]), torch.stack([y, y])
    mapped = torch.vmap(lambda a, b: fn(a, b, **kw))(xs, ys)
    torch.testing.assert_close(mapped, torch.stack([fn(xs[i], ys[i], **kw) for i in range(2)]), rtol=1e-12, atol=0)
