"""The focal family: sigmoid_focal_loss (torchvision's), YOLOv5's FocalLoss wrapper and
Cui et al.'s class-balanced weights, each against a plain-torch reference run live."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lossy_core

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lossy_torch  # noqa: E402
import lossy_torch.functional as LF  # noqa: E402
from conformance.plain_torch_focal import sigmoid_focal_loss as reference_focal  # noqa: E402

GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)


def _t(a, dtype=torch.float64, grad=False):
    return torch.tensor(np.asarray(a), dtype=dtype).requires_grad_(grad)


def _value_and_grads(fn, inputs, targets, **kw):
    x, y = inputs.detach().clone().requires_grad_(True), targets.detach().clone().requires_grad_(True)
    out = fn(x, y, **kw)
    upstream = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape) if out.ndim else None
    gx, gy = torch.autograd.grad(out, [x, y], grad_outputs=upstream)
    return out.detach(), gx, gy


def _close(a, b, rtol=1e-12, atol=1e-12):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=True)


# --------------------------------------------------------------------------- torchvision's API

def test_signature_is_torchvisions():
    # torchvision.ops.sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none")
    # (pytorch/vision torchvision/ops/focal_loss.py); lossy's extras are keyword-only after it.
    params = list(inspect.signature(LF.sigmoid_focal_loss).parameters.values())
    assert [(p.name, p.default) for p in params[:5]] == [
        ("inputs", inspect.Parameter.empty), ("targets", inspect.Parameter.empty), ("alpha", 0.25), ("gamma", 2),
        ("reduction", "none")]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params[:5])
    assert [(p.name, p.kind) for p in params[5:]] == [
        (n, inspect.Parameter.KEYWORD_ONLY) for n in ("weight", "pos_weight", "normalizer", "modulation")]
    core = inspect.signature(lossy_core.sigmoid_focal_loss).parameters
    assert all(core[n].kind is inspect.Parameter.KEYWORD_ONLY for n in ("alpha", "gamma", "reduction"))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, -1, None, 0.0, 1.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_matches_the_torchvision_reference(dtype, gamma, alpha, reduction):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 4, generator=g, dtype=torch.float64) * 3).to(dtype)
    y = (torch.rand(5, 4, generator=g) > 0.7).to(dtype)
    kw = dict(alpha=alpha, gamma=gamma, reduction=reduction)
    ours, theirs = _value_and_grads(LF.sigmoid_focal_loss, x, y, **kw), _value_and_grads(reference_focal, x, y, **kw)
    tol = {} if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape
        _close(a, b, **tol)


def test_soft_targets_weight_pos_weight_and_normalizer_match_the_reference():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64) * 4, torch.rand(6, 3, generator=g, dtype=torch.float64)
    weight, pos_weight = torch.rand(3, dtype=torch.float64, generator=g) + 0.5, torch.tensor([3.0, 1.0, 0.5])
    for gamma in GAMMAS:
        kw = dict(gamma=gamma, alpha=0.3, reduction="sum", weight=weight, pos_weight=pos_weight.double(),
                  normalizer=7.0)
        for a, b in zip(_value_and_grads(LF.sigmoid_focal_loss, x, y, **kw), _value_and_grads(reference_focal, x, y, **kw)):
            _close(a, b)


def test_module():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(4, 3, generator=g), (torch.rand(4, 3, generator=g) > 0.5).float()
    pos_weight = torch.tensor([2.0, 1.0, 0.5])
    module = lossy_torch.SigmoidFocalLoss(alpha=0.5, gamma=1.0, reduction="mean", pos_weight=pos_weight)
    assert isinstance(module, torch.nn.modules.loss._Loss)
    assert dict(module.named_buffers()).keys() == {"pos_weight"}
    assert module.reduction == "mean" and module.alpha == 0.5 and module.gamma == 1.0
    _close(module(x, y), reference_focal(x, y, alpha=0.5, gamma=1.0, reduction="mean", pos_weight=pos_weight))
    assert lossy_torch.SigmoidFocalLoss()(x, y).shape == (4, 3)  # torchvision's default reduction: 'none'


# --------------------------------------------------------------------------- gamma 0 is BCE

@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       reduction=st.sampled_from(["none", "mean", "sum"]), soft=st.booleans(), weighted=st.booleans(),
       positive=st.booleans())
def test_gamma_zero_alpha_none_is_bce_with_logits(seed, shape, reduction, soft, weighted, positive):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 5
    y = rng.uniform(0, 1, shape) if soft else (rng.uniform(0, 1, shape) > 0.5).astype(np.float64)
    extra = {}
    if weighted:
        extra["weight"] = rng.uniform(0.1, 2.0, shape[-1:])
    if positive:
        extra["pos_weight"] = rng.uniform(0.1, 3.0, shape[-1:])
    upstream = None if reduction != "none" else rng.uniform(-1, 1, shape)
    value, grads = lossy_core.value_and_grad(lossy_core.sigmoid_focal_loss)(
        x, y, alpha=None, gamma=0.0, reduction=reduction, upstream=upstream, **extra)
    bce_value, bce_grads = lossy_core.value_and_grad(lossy_core.binary_cross_entropy_with_logits)(
        x, y, reduction=reduction, upstream=upstream, **extra)
    np.testing.assert_allclose(value, bce_value, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(grads["inputs"], bce_grads["input"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["targets"], bce_grads["target"], rtol=1e-12, atol=1e-12)
    # and through torch autograd of the formula, against torch's own BCE
    tx, ty = _t(x, grad=True), _t(y, grad=True)
    textra = {k: _t(v) for k, v in extra.items()}
    ours = LF.sigmoid_focal_loss(tx, ty, alpha=None, gamma=0.0, reduction=reduction, **textra)
    theirs = F.binary_cross_entropy_with_logits(tx, ty, reduction=reduction, **textra)
    _close(ours, theirs)
    grad_outputs = None if upstream is None else _t(upstream)
    for a, b in zip(torch.autograd.grad(ours, [tx, ty], grad_outputs), torch.autograd.grad(theirs, [tx, ty], grad_outputs)):
        _close(a, b)


# --------------------------------------------------------------------------- saturated logits

SATURATED_X = [1e4, -1e4, 1e4, -1e4, 200.0, -200.0, 0.0]
SATURATED_Y = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_finite_values_and_input_gradients_at_saturated_logits(dtype, gamma):
    x, y = _t(SATURATED_X, dtype), _t(SATURATED_Y, dtype)
    for reduction in ("none", "sum", "mean"):
        value, gx, gy = _value_and_grads(LF.sigmoid_focal_loss, x, y, gamma=gamma, reduction=reduction)
        assert torch.isfinite(value).all() and torch.isfinite(gx).all() and torch.isfinite(gy).all()
        # where the reference's gradient is finite, it is ours
        ref = _value_and_grads(reference_focal, x, y, gamma=gamma, reduction=reduction)
        _close(value, ref[0])
        keep = torch.isfinite(ref[1])
        _close(gx[keep], ref[1][keep])
    # the analytic gradient (NumPy) is finite too
    _, grads = lossy_core.value_and_grad(lossy_core.sigmoid_focal_loss)(
        np.asarray(SATURATED_X), np.asarray(SATURATED_Y), gamma=gamma, reduction="sum")
    assert np.isfinite(grads["inputs"]).all() and np.isfinite(grads["targets"]).all()


def test_torchvisions_gradient_is_nan_where_ours_is_finite():
    """(1 - p) ** 0.5 at p = 1 has an infinite derivative times 0: torchvision's input gradient is NaN."""
    x, y = _t([1e4, -1e4]), _t([1.0, 0.0])
    _, theirs, _ = _value_and_grads(reference_focal, x, y, gamma=0.5, reduction="sum")
    _, ours, _ = _value_and_grads(LF.sigmoid_focal_loss, x, y, gamma=0.5, reduction="sum")
    assert torch.isnan(theirs).all()
    _close(ours, torch.zeros(2, dtype=torch.float64))  # the true limit: the loss is flat there


@pytest.mark.parametrize("gamma", GAMMAS)
def test_jax_finite_at_saturated_logits(gamma):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    import lossy_jax

    x, y = jnp.asarray(SATURATED_X), jnp.asarray(SATURATED_Y)
    gx, gy = jax.grad(lambda a, b: lossy_jax.sigmoid_focal_loss(a, b, gamma=gamma, reduction="sum"), (0, 1))(x, y)
    assert np.isfinite(np.asarray(gx)).all() and np.isfinite(np.asarray(gy)).all()
    _, expected, _ = _value_and_grads(LF.sigmoid_focal_loss, _t(SATURATED_X), _t(SATURATED_Y), gamma=gamma,
                                      reduction="sum")
    np.testing.assert_allclose(np.asarray(gx), expected.numpy(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- edges and errors

def test_empty_inputs():
    x, y = torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 3, dtype=torch.float64)
    assert torch.isnan(LF.sigmoid_focal_loss(x, y, reduction="mean"))  # torchvision: mean of empty is NaN
    assert LF.sigmoid_focal_loss(x, y, reduction="sum") == 0
    assert LF.sigmoid_focal_loss(x, y).shape == (0, 3)
    _, gx, _ = _value_and_grads(LF.sigmoid_focal_loss, x, y, reduction="mean")
    assert gx.shape == (0, 3)


def test_bad_arguments_raise_before_compute():
    x, y = torch.randn(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="Invalid alpha value"):
        LF.sigmoid_focal_loss(x, y, alpha=1.5)
    with pytest.raises(ValueError, match="Invalid alpha value"):
        LF.sigmoid_focal_loss(x, y, alpha=-0.5)
    with pytest.raises(ValueError, match="Invalid Value for arg 'reduction'"):
        LF.sigmoid_focal_loss(x, y, reduction="avg")
    with pytest.raises(ValueError, match="gamma >= 0"):
        LF.sigmoid_focal_loss(x, y, gamma=-1.0)
    with pytest.raises(ValueError, match="must be the same as input size"):
        LF.sigmoid_focal_loss(x, y[:1])
    with pytest.raises(RuntimeError, match="floating point 'targets'"):
        LF.sigmoid_focal_loss(x, y.long())
    with pytest.raises(NotImplementedError, match="floating point logits"):
        LF.sigmoid_focal_loss(x.long(), y)
    with pytest.raises(RuntimeError, match="'pos_weight'"):
        LF.sigmoid_focal_loss(x, y, pos_weight=torch.ones(4))


def test_traced_invalid_alpha_is_nan_in_jax():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    import lossy_jax

    x, y = jnp.ones((2, 3)), jnp.ones((2, 3))
    with pytest.raises(ValueError, match="Invalid alpha value"):
        lossy_jax.sigmoid_focal_loss(x, y, alpha=2.0)
    assert np.isnan(jax.jit(lambda a: lossy_jax.sigmoid_focal_loss(x, y, alpha=a, reduction="sum"))(2.0))
    assert np.isfinite(jax.jit(lambda a: lossy_jax.sigmoid_focal_loss(x, y, alpha=a, reduction="sum"))(-1.0))


# --------------------------------------------------------------------------- torch transformations

def test_compile_func_grad_and_vmap():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(3, 4, 2, generator=g, dtype=torch.float64) * 3, torch.rand(3, 4, 2, generator=g, dtype=torch.float64)
    kw = dict(gamma=0.5, alpha=0.25, reduction="sum")
    eager = _value_and_grads(LF.sigmoid_focal_loss, x, y, **kw)
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: LF.sigmoid_focal_loss(a, b, **kw), fullgraph=True, backend="aot_eager")
    for a, b in zip(_value_and_grads(compiled, x, y), eager):
        _close(a, b)
    torch._dynamo.reset()
    grad = torch.func.grad(lambda a: LF.sigmoid_focal_loss(a, y, **kw))(x)
    _close(grad, eager[1])
    per_sample = torch.vmap(lambda a, b: LF.sigmoid_focal_loss(a, b, **kw))(x, y)
    _close(per_sample, torch.stack([reference_focal(x[i], y[i], **kw) for i in range(3)]))


# --------------------------------------------------------------------------- YOLOv5's FocalLoss

def _yolov5_focal(loss_fcn, gamma, alpha, reduction, pred, true):
    """YOLOv5's FocalLoss.forward (ultralytics/yolov5 utils/loss.py), transcribed: the wrapped BCE with
    reduction 'none', times alpha_t (1 - p_t) ** gamma, then the BCE's original reduction."""
    loss = F.binary_cross_entropy_with_logits(pred, true, weight=loss_fcn.weight, pos_weight=loss_fcn.pos_weight,
                                              reduction="none")
    p = torch.sigmoid(pred)
    p_t = true * p + (1 - true) * (1 - p)
    loss = loss * (true * alpha + (1 - true) * (1 - alpha)) * (1.0 - p_t) ** gamma
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


@pytest.mark.parametrize("bce", [torch.nn.BCEWithLogitsLoss, lossy_torch.BCEWithLogitsLoss])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_yolov5_focal_loss(bce, reduction):
    g = torch.Generator().manual_seed(4)
    pred = torch.randn(8, 5, generator=g, dtype=torch.float64) * 2
    true = torch.where(torch.rand(8, 5, generator=g) > 0.8, 0.95, 0.05).double()  # YOLOv5's smoothed labels
    loss_fcn = bce(pos_weight=torch.tensor([1.5], dtype=torch.float64), weight=torch.rand(5, generator=g).double(),
                   reduction=reduction)
    criterion = lossy_torch.FocalLoss(loss_fcn, gamma=1.5)
    assert loss_fcn.reduction == "none" and criterion.reduction == reduction  # YOLOv5 takes over the reduction
    assert criterion.loss_fcn is loss_fcn and criterion.alpha == 0.25
    ours = _value_and_grads(criterion, pred, true)
    theirs = _value_and_grads(lambda a, b: _yolov5_focal(loss_fcn, 1.5, 0.25, reduction, a, b), pred, true)
    for a, b in zip(ours, theirs):
        _close(a, b)


def test_yolov5_focal_loss_needs_a_bce_with_logits():
    with pytest.raises(TypeError, match="BCEWithLogitsLoss"):
        lossy_torch.FocalLoss(torch.nn.MSELoss())
    with pytest.raises(TypeError, match="BCEWithLogitsLoss"):
        lossy_torch.QFocalLoss(torch.nn.BCELoss())


def _yolov5_qfocal(loss_fcn, gamma, alpha, reduction, pred, true):
    """YOLOv5's QFocalLoss.forward (ultralytics/yolov5 utils/loss.py), transcribed: the wrapped BCE with
    reduction 'none', times alpha_t |true - sigmoid(pred)| ** gamma, then the BCE's original reduction."""
    loss = F.binary_cross_entropy_with_logits(pred, true, weight=loss_fcn.weight, pos_weight=loss_fcn.pos_weight,
                                              reduction="none")
    loss = loss * (true * alpha + (1 - true) * (1 - alpha)) * torch.abs(true - torch.sigmoid(pred)) ** gamma
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


@pytest.mark.parametrize("bce", [torch.nn.BCEWithLogitsLoss, lossy_torch.BCEWithLogitsLoss])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_yolov5_qfocal_loss(bce, reduction):
    g = torch.Generator().manual_seed(11)
    pred = torch.randn(8, 5, generator=g, dtype=torch.float64) * 2
    true = torch.rand(8, 5, generator=g, dtype=torch.float64)  # soft (IoU-like) targets
    loss_fcn = bce(pos_weight=torch.tensor([1.5], dtype=torch.float64), reduction=reduction)
    criterion = lossy_torch.QFocalLoss(loss_fcn, gamma=1.5, alpha=0.3)
    assert loss_fcn.reduction == "none" and criterion.reduction == reduction
    ours = _value_and_grads(criterion, pred, true)
    theirs = _value_and_grads(lambda a, b: _yolov5_qfocal(loss_fcn, 1.5, 0.3, reduction, a, b), pred, true)
    for a, b in zip(ours, theirs):
        _close(a, b, rtol=1e-10, atol=1e-12)
    # for hard targets the quality factor is the focal one
    hard = (true > 0.5).double()
    _close(lossy_torch.QFocalLoss(bce(), 2.0)(pred, hard), lossy_torch.FocalLoss(bce(), 2.0)(pred, hard))


@pytest.mark.parametrize("gamma", GAMMAS)
def test_quality_modulation_finite_at_saturated_logits(gamma):
    x, y = _t(SATURATED_X), _t(SATURATED_Y)
    value, gx, gy = _value_and_grads(LF.sigmoid_focal_loss, x, y, gamma=gamma, reduction="sum", modulation="quality")
    assert torch.isfinite(value) and torch.isfinite(gx).all() and torch.isfinite(gy).all()
    with pytest.raises(ValueError, match="modulation"):
        LF.sigmoid_focal_loss(x, y, modulation="qfl")


# --------------------------------------------------------------------------- class-balanced (Cui et al.)

def test_class_balanced_weights():
    counts = np.array([5000.0, 500.0, 50.0, 5.0])
    beta = 0.999
    # the paper's definition, eq. (2)-(3): E_n = (1 - beta^n) / (1 - beta), w ~ 1 / E_n, sum w = C
    effective = (1 - beta ** counts) / (1 - beta)
    expected = (1 / effective) / np.sum(1 / effective) * 4
    got = lossy_core.class_balanced_weights(counts, beta)
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert got.sum() == pytest.approx(4.0)
    assert np.all(np.diff(got) > 0)  # rarer classes weigh more
    np.testing.assert_allclose(lossy_core.class_balanced_weights([3, 300], 0.0), [1.0, 1.0])
    t = lossy_core.class_balanced_weights(torch.tensor([10, 100]), 0.9)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    with pytest.raises(ValueError, match="beta"):
        lossy_core.class_balanced_weights(counts, 1.0)
    with pytest.raises(ValueError, match="> 0"):
        lossy_core.class_balanced_weights(np.array([3.0, 0.0]), 0.9)
    with pytest.raises(ValueError, match="1-D"):
        lossy_core.class_balanced_weights(np.ones((2, 2)), 0.9)


def _cui_focal_loss(labels, logits, alpha, gamma):
    """Cui et al.'s reference focal loss (richardaecn/class-balanced-loss, src/cifar_main.py; PyTorch port
    vandit15/Class-balanced-loss-pytorch), transcribed: BCE-with-logits times
    exp(-gamma y x - gamma log(1 + exp(-x))), weighted by alpha, summed, divided by the number of positives."""
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    modulator = 1.0 if gamma == 0.0 else torch.exp(-gamma * labels * logits - gamma * torch.log1p(torch.exp(-logits)))
    return torch.sum(alpha * modulator * bce) / torch.sum(labels)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_class_balanced_sigmoid_focal_is_the_papers(gamma):
    g = torch.Generator().manual_seed(5)
    counts, classes = np.array([900, 90, 9]), 3
    labels = torch.randint(classes, (16,), generator=g)
    logits = torch.randn(16, classes, generator=g, dtype=torch.float64) * 2
    one_hot = F.one_hot(labels, classes).double()
    weights = torch.from_numpy(lossy_core.class_balanced_weights(counts, 0.99))
    per_sample = weights[labels]  # the reference's alpha: each sample's class weight on all C logits
    expected = _value_and_grads(lambda x, y: _cui_focal_loss(y, x, per_sample[:, None].expand(16, classes), gamma),
                                logits, one_hot)
    ours = _value_and_grads(lambda x, y: LF.sigmoid_focal_loss(x, y, alpha=None, gamma=gamma, reduction="sum",
                                                               weight=per_sample[:, None], normalizer=y.sum()),
                            logits, one_hot)
    _close(ours[0], expected[0])
    _close(ours[1], expected[1])


def test_core_on_numpy_and_array_api_strict():
    xps = pytest.importorskip("array_api_strict")
    x, y = np.array([[2.0, -1.0], [0.5, 3.0]]), np.array([[1.0, 0.0], [0.3, 1.0]])
    expected = reference_focal(_t(x), _t(y), gamma=1.5, reduction="mean").item()
    assert float(lossy_core.sigmoid_focal_loss(x, y, gamma=1.5, reduction="mean")) == pytest.approx(expected, rel=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strict = lossy_core.sigmoid_focal_loss(xps.asarray(x), xps.asarray(y), gamma=1.5, reduction="mean")
    assert float(strict) == pytest.approx(expected, rel=1e-14)


# --------------------------------------------------------------------------- binary_focal_loss (probabilities)

from conformance.plain_torch_focal import binary_focal_loss as reference_binary_focal  # noqa: E402


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, None])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_binary_focal_matches_the_reference(gamma, alpha, reduction):
    g = torch.Generator().manual_seed(6)
    p, y = torch.rand(5, 4, generator=g, dtype=torch.float64) * 0.98 + 0.01, torch.rand(5, 4, generator=g, dtype=torch.float64)
    kw = dict(alpha=alpha, gamma=gamma, reduction=reduction)
    for a, b in zip(_value_and_grads(LF.binary_focal_loss, p, y, **kw), _value_and_grads(reference_binary_focal, p, y, **kw)):
        _close(a, b)
    module = lossy_torch.BinaryFocalLoss(**kw)
    _close(module(p, y), reference_binary_focal(p, y, **kw))


def test_binary_focal_gamma_zero_is_bce_and_agrees_with_sigmoid_focal():
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.rand(6, 3, generator=g, dtype=torch.float64)
    p = torch.sigmoid(x)
    _close(LF.binary_focal_loss(p, y, alpha=None, gamma=0.0), F.binary_cross_entropy(p, y))
    _close(LF.binary_focal_loss(p, y, gamma=2.0, reduction="none"),
           LF.sigmoid_focal_loss(x, y, gamma=2.0, reduction="none"), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_binary_focal_at_probabilities_zero_and_one(gamma):
    """BCE's -100 clamp keeps the value finite; the input gradient is finite (torch's BCE floor) for every gamma."""
    p, y = _t([0.0, 1.0, 0.0, 1.0, 0.5]), _t([0.0, 1.0, 1.0, 0.0, 1.0])
    x = p.clone().requires_grad_(True)
    out = LF.binary_focal_loss(x, y, gamma=gamma, reduction="sum")
    (gx,) = torch.autograd.grad(out, [x])
    assert torch.isfinite(out) and torch.isfinite(gx).all()
    _close(out, reference_binary_focal(p, y, gamma=gamma, reduction="sum"))
    _, grads = lossy_core.value_and_grad(lossy_core.binary_focal_loss)(p.numpy(), y.numpy(), gamma=gamma, reduction="sum")
    np.testing.assert_allclose(grads["input"], gx.numpy(), rtol=1e-12)


def test_binary_focal_bad_arguments():
    p, y = torch.full((2, 3), 0.5), torch.ones(2, 3)
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        LF.binary_focal_loss(p * 3, y)
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        LF.binary_focal_loss(p, y * 2)
    with pytest.raises(ValueError, match="Invalid alpha value"):
        LF.binary_focal_loss(p, y, alpha=3.0)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        LF.binary_focal_loss(p, y, reduction="avg")
    with pytest.raises(ValueError, match="same size"):
        LF.binary_focal_loss(p, y[:1])
    assert torch.isnan(LF.binary_focal_loss(torch.zeros(0, 3), torch.zeros(0, 3)))  # 'mean' of empty


# --------------------------------------------------------------------------- softmax_focal_loss (multi-class)

from conformance.plain_torch_focal import softmax_focal_loss as reference_softmax_focal  # noqa: E402


def _multiclass(seed=8, shape=(6, 4, 3)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    t = torch.randint(shape[1], (shape[0], *shape[2:]), generator=g)
    t[0, ...] = -100
    q = torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64), 1)
    w = torch.rand(shape[1], generator=g, dtype=torch.float64) + 0.5
    alpha = torch.rand(shape[1], generator=g, dtype=torch.float64)
    return x, t, q, w, alpha


def _grads(fn, x, target, **kw):
    x = x.detach().clone().requires_grad_(True)
    target = target.detach().clone().requires_grad_(target.is_floating_point())
    out = fn(x, target, **kw)
    wrt = [x, target] if target.is_floating_point() else [x]
    upstream = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape) if out.ndim else None
    return (out.detach(), *torch.autograd.grad(out, wrt, grad_outputs=upstream))


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("targets", ["index", "probabilities"])
def test_softmax_focal_matches_the_reference(gamma, reduction, targets):
    x, t, q, w, alpha = _multiclass()
    target = t if targets == "index" else q
    for kw in ({}, {"weight": w}, {"weight": w, "alpha": alpha}, {"alpha": 0.25}):
        kw = dict(kw, gamma=gamma, reduction=reduction)
        for a, b in zip(_grads(LF.softmax_focal_loss, x, target, **kw),
                        _grads(reference_softmax_focal, x, target, **kw)):
            _close(a, b)
        # the analytic gradient (NumPy) agrees
        upstream = None if reduction != "none" else np.linspace(-1, 1, _grads(LF.softmax_focal_loss, x, target,
                                                                                **kw)[0].numel()).reshape(
            _grads(LF.softmax_focal_loss, x, target, **kw)[0].shape)
        core_kw = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        _, grads = lossy_core.value_and_grad(lossy_core.softmax_focal_loss)(x.numpy(), target.numpy(),
                                                                             upstream=upstream, **core_kw)
        expected = _grads(reference_softmax_focal, x, target, **kw)
        np.testing.assert_allclose(grads["input"], expected[1].numpy(), rtol=1e-11, atol=1e-12)


def test_softmax_focal_gamma_zero_is_cross_entropy():
    x, t, q, w, _ = _multiclass(9)
    for target in (t, q):
        for reduction in ("none", "mean", "sum"):
            _close(LF.softmax_focal_loss(x, target, weight=w, gamma=0.0, reduction=reduction),
                   F.cross_entropy(x, target, weight=w, reduction=reduction))
    module = lossy_torch.SoftmaxFocalLoss(weight=w, gamma=0.0, ignore_index=1)
    t = t.clamp(min=0)  # ignore_index=1 here: -100 would be out of range
    _close(module(x, t), F.cross_entropy(x, t, weight=w, ignore_index=1))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_focal_finite_at_saturated_logits(dtype, gamma):
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0]], dtype=dtype)
    for target in (torch.tensor([0, 0, 2]), torch.eye(3, dtype=dtype)):
        out, *grads = _grads(LF.softmax_focal_loss, x, target, gamma=gamma, reduction="sum")
        assert torch.isfinite(out) and all(torch.isfinite(g).all() for g in grads)


def test_softmax_focal_bad_arguments():
    x, t, q, w, _ = _multiclass(10, shape=(4, 3))
    with pytest.raises(ValueError, match="alpha"):
        LF.softmax_focal_loss(x, t, alpha=torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="alpha >= 0"):
        LF.softmax_focal_loss(x, t, alpha=-1.0)
    with pytest.raises(ValueError, match="gamma >= 0"):
        LF.softmax_focal_loss(x, t, gamma=-0.5)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        LF.softmax_focal_loss(x, q, ignore_index=0)
    with pytest.raises(IndexError, match="out of bounds"):
        LF.softmax_focal_loss(x, torch.tensor([0, 1, 2, 7]))
    with pytest.raises(RuntimeError, match="weight tensor should be defined"):
        LF.softmax_focal_loss(x, t, weight=torch.ones(5, dtype=torch.float64))
    assert torch.isnan(LF.softmax_focal_loss(x[:0], t[:0]))  # 'mean' over no targets: 0/0, as cross_entropy


# --------------------------------------------------------------------------- the example

def test_imbalanced_circles_example_runs():
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "examples" / "imbalanced_circles.py"
    spec = importlib.util.spec_from_file_location("imbalanced_circles", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    x, y = example.circles(20, 600)
    assert x.shape == (620, 2) and y.sum() == 20
    results = example.main(steps=40, n_pos=40, n_neg=1200, verbose=False)
    assert set(results) == {(f, loss) for f in ("torch", "jax") for loss in ("bce", "focal")}
    for framework_results in results.values():
        assert all(0.0 <= v <= 1.0 for v in framework_results)
    # the same lossy loss, initialisation and optimizer in both frameworks: the same classifier
    for loss in ("bce", "focal"):
        np.testing.assert_allclose(results["torch", loss], results["jax", loss], atol=0.05)
