"""Focal variants for dense detection: quality focal, distribution focal, varifocal.

- ``quality_focal_loss`` and ``distribution_focal_loss``: Generalized Focal Loss,
  Li et al. 2020 (https://arxiv.org/abs/2006.04388), with mmdet's semantics
  (``mmdet/models/losses/gfocal_loss.py``).
- ``varifocal_loss``: VarifocalNet, Zhang et al. 2021 (https://arxiv.org/abs/2008.13367),
  with mmdet's semantics (``mmdet/models/losses/varifocal_loss.py``).

Every modulating factor ``|y - sigmoid(x)|^gamma`` is computed in log space,
``exp(gamma log|y - sigmoid(x)|)``, so that values and gradients stay finite
for logits of any magnitude and for any ``gamma >= 0`` (a power of a zero base
with ``gamma < 1`` is never differentiated). Targets (quality scores, IoUs,
distances) are constants: only ``input`` is differentiated.
"""

from __future__ import annotations

from ._backend import device_of, namespace, quiet_floating_point, shape_of
from ._binary import binary_cross_entropy_with_logits
from ._common import as_float, gradient_like, spread_upstream, upcast
from ._primitives import log_sigmoid, log_softmax
from ._reductions import check_reduction, finish, reduce
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import (
    data_check, first_value, fmt_shape, is_floating, poison, require_broadcastable_to, require_in_range,
)


# -- shared pieces ------------------------------------------------------------------

def check_exponent(name, loss):
    """A focusing exponent (``gamma``, ``beta``) must be a number >= 0 (ValueError)."""
    def check(value):
        return require_in_range(value, argument=name, loss=loss, low=0.0, exception=ValueError)
    return check


def check_flag(value, *, argument, loss):
    if not isinstance(value, bool):
        raise TypeError(f"{loss}: expected '{argument}' to be a bool, got {value!r} ({type(value).__name__})")


def require_floating_arrays(xp, loss, **arrays):
    for name, array in arrays.items():
        if array is not None and not is_floating(xp, array):
            raise TypeError(f"{loss}: expected a floating point '{name}', got {array.dtype}")


def require_same_shape(input, target, *, loss):
    if shape_of(target) != shape_of(input):
        raise ValueError(
            f"{loss}: expected 'target' of the shape of 'input', {fmt_shape(shape_of(input))}, "
            f"got {fmt_shape(shape_of(target))}"
        )


def check_unit_interval(xp, target, *, loss):
    """Score targets must lie in [0, 1] (NaN counts as outside); NaN under tracing."""
    def raise_error(bad):
        raise ValueError(f"{loss}: expected every 'target' in [0, 1], got {first_value(xp, target, bad)}")

    return data_check(xp, ~((target >= 0) & (target <= 1)), raise_error=raise_error)


def log_abs_gap(xp, logits, target):
    """``(log|y - sigmoid(x)|, tie)`` for ``y`` in [0, 1], in log space.

    ``y - sigmoid(x) = y sigmoid(-x) - (1 - y) sigmoid(x)``: the log of a difference
    of two positive terms, ``hi + log1p(-exp(lo - hi))``, exact for saturated logits
    (``y = 1, x = 1e4`` gives ``-1e4``, not ``log 0``). ``tie`` marks ``y == sigmoid(x)``
    exactly, where the log is -inf; it is returned as a finite stand-in there so that
    no gradient through it is NaN (callers select the tie's value with ``tie``).
    """
    with quiet_floating_point(xp):
        above = xp.log(target) + log_sigmoid(xp, -logits)  # log(y sigmoid(-x))
        below = xp.log1p(-target) + log_sigmoid(xp, logits)  # log((1 - y) sigmoid(x))
    tie = above == below
    hi = xp.maximum(above, below)
    lo = xp.where(tie, hi - 1, xp.minimum(above, below))
    return hi + xp.log1p(-xp.exp(lo - hi)), tie, above > below


def gap_power(xp, log_gap, tie, gamma):
    """``|y - sigmoid(x)|^gamma`` from ``log_gap``: ``0^gamma`` at a tie (1 for gamma = 0, as torch's pow)."""
    zero = xp.zeros_like(log_gap)
    return xp.where(tie, zero ** gamma, xp.exp(gamma * log_gap))


def d_log_gap(xp, logits, log_gap, tie, sign):
    """``d/dx log|y - sigmoid(x)| = -sign(y - sigmoid(x)) sigmoid(x) sigmoid(-x) / |y - sigmoid(x)|`` (0 at a tie)."""
    magnitude = xp.exp(log_sigmoid(xp, logits) + log_sigmoid(xp, -logits) - log_gap)
    derivative = xp.where(sign, -magnitude, magnitude)
    return xp.where(tie, xp.zeros_like(derivative), derivative)


def _finish(xp, terms, weight, reduction, dtype, *bad):
    if weight is not None:
        terms = terms * upcast(xp, as_float(xp, weight, dtype))
    for mask in bad:
        terms = poison(xp, terms, mask)
    value = reduce(xp, terms, reduction)
    return finish(xp, value, dtype)


def _check_pointwise(xp, input, target, weight, reduction, *, loss):
    check_reduction(reduction)
    require_same_shape(input, target, loss=loss)
    require_floating_arrays(xp, loss, input=input, target=target, weight=weight)
    if target.dtype != input.dtype:
        raise TypeError(f"{loss}: expected 'target' of the dtype of 'input', {input.dtype}, got {target.dtype}")
    if weight is not None:
        require_broadcastable_to(weight, shape_of(input), argument="weight", target_argument="input", loss=loss)


# -- quality focal loss -------------------------------------------------------------

def _quality_terms(xp, logits, target, beta):
    log_gap, tie, sign = log_abs_gap(xp, logits, target)
    bce = binary_cross_entropy_with_logits(logits, target, reduction="none")
    return bce, log_gap, tie, sign, gap_power(xp, log_gap, tie, beta)


def quality_focal_loss(input, target, /, *, weight=None, beta=2.0, reduction="mean"):
    """Quality Focal Loss (QFL), elementwise on logits and soft quality targets::

        loss_i = w_i |y_i - sigmoid(x_i)|^beta * BCEWithLogits(x_i, y_i)

    ``input`` (logits) and ``target`` (quality scores in [0, 1]: the IoU at the
    ground-truth class of a positive, 0 elsewhere) have the same shape, e.g.
    ``(N, C)``; ``weight`` broadcasts to the input. ``'mean'`` averages over every
    element. Paper: Li et al. 2020, "Generalized Focal Loss" (arXiv:2006.04388), eq. 5.

    Relation to mmdet's ``quality_focal_loss(pred, (label, score), beta)``: build the
    dense target ``y[n, label[n]] = score[n]`` (zeros elsewhere, all zeros for a
    background ``label == C``); mmdet's per-sample loss is ``reduction='none'`` summed
    over classes, so mmdet's ``'mean'`` is ``reduction='sum'`` divided by ``N``.
    With ``beta = 0`` it is ``binary_cross_entropy_with_logits``; with hard targets in
    {0, 1} it is the sigmoid focal loss with ``gamma = beta`` and no ``alpha``.
    ``|y - sigmoid(x)|^beta`` is computed in log space: finite values and gradients
    for logits up to +-1e4 and any ``beta >= 0``. Targets outside [0, 1] raise
    ValueError (NaN under tracing); ``beta < 0`` raises ValueError.
    torch has no such loss: ``lossy_torch.functional.quality_focal_loss``, ``lossy_torch.QualityFocalLoss``.
    """
    loss = "quality_focal_loss"
    xp = namespace(input, target, weight)
    _check_pointwise(xp, input, target, weight, reduction, loss=loss)
    bad_beta = _QFL_BETA.validate(beta)
    bad_target = check_unit_interval(xp, target, loss=loss)
    logits, labels = upcast(xp, input), upcast(xp, target)
    bce, _, _, _, factor = _quality_terms(xp, logits, labels, beta)
    return _finish(xp, bce * factor, weight, reduction, input.dtype, bad_beta, bad_target)


def _quality_focal_vjp(xp, arrays, options, upstream):
    """``d/dx = w [(sigmoid(x) - y) F + beta F BCE d/dx log|y - sigmoid(x)|]``, ``F = |y - sigmoid(x)|^beta``."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    beta = options["beta"]
    logits, labels = upcast(xp, input), upcast(xp, target)
    bce, log_gap, tie, sign, factor = _quality_terms(xp, logits, labels, beta)
    scale = spread_upstream(xp, upstream, input.dtype, logits.shape, options["reduction"], weight)
    d_bce = xp.exp(log_sigmoid(xp, logits)) - labels
    grad = factor * (d_bce + beta * bce * d_log_gap(xp, logits, log_gap, tie, sign))
    return {"input": gradient_like(xp, scale * grad, input)}


_QFL_BETA = Option("beta", 2.0, traced=True, check=check_exponent("beta", "quality_focal_loss"))


# -- varifocal loss -----------------------------------------------------------------

def _varifocal_terms(xp, logits, target, alpha, gamma, iou_weighted):
    log_gap, tie, sign = log_abs_gap(xp, logits, target)
    positive = target > 0
    positive_weight = target if iou_weighted else xp.ones_like(target)
    negative_weight = alpha * gap_power(xp, log_gap, tie, gamma)
    focal_weight = xp.where(positive, positive_weight, negative_weight)
    bce = binary_cross_entropy_with_logits(logits, target, reduction="none")
    return bce, focal_weight, positive, log_gap, tie, sign, negative_weight


def varifocal_loss(input, target, /, *, weight=None, alpha=0.75, gamma=2.0, iou_weighted=True, reduction="mean"):
    """Varifocal Loss (VFL), elementwise on logits and IoU-aware targets::

        loss_i = w_i f_i BCEWithLogits(x_i, q_i),
        f_i = q_i (or 1 if not iou_weighted)        where q_i > 0  (positives)
        f_i = alpha |q_i - sigmoid(x_i)|^gamma       where q_i <= 0 (negatives: sigmoid(x)^gamma)

    ``input`` (logits) and ``target`` (the IoU with the ground truth at its class for
    a positive, 0 elsewhere, in [0, 1]) have the same shape; ``weight`` broadcasts to
    the input; ``'mean'`` averages over every element. Only negatives are focused
    (asymmetric, unlike the focal loss). Paper: Zhang et al. 2021, "VarifocalNet: An
    IoU-aware Dense Object Detector" (arXiv:2008.13367), eq. 2; semantics and defaults
    of mmdet's ``varifocal_loss`` (``use_sigmoid=True``; ``avg_factor`` is not offered:
    divide a ``'sum'`` by it).

    With ``gamma = 0`` the loss is ``binary_cross_entropy_with_logits`` weighted by
    ``q`` on positives and ``alpha`` on negatives; with ``gamma = 0, alpha = 1,
    iou_weighted=False`` it is exactly ``binary_cross_entropy_with_logits``. Finite
    values and gradients for logits up to +-1e4 and any ``gamma >= 0``. Targets
    outside [0, 1] raise ValueError (NaN under tracing); ``alpha < 0``, ``gamma < 0``
    raise ValueError; a non-bool ``iou_weighted`` raises TypeError.
    torch has no such loss: ``lossy_torch.functional.varifocal_loss``, ``lossy_torch.VarifocalLoss``.
    """
    loss = "varifocal_loss"
    xp = namespace(input, target, weight)
    _check_pointwise(xp, input, target, weight, reduction, loss=loss)
    check_flag(iou_weighted, argument="iou_weighted", loss=loss)
    bad_alpha = _VFL_ALPHA.validate(alpha)
    bad_gamma = _VFL_GAMMA.validate(gamma)
    bad_target = check_unit_interval(xp, target, loss=loss)
    logits, labels = upcast(xp, input), upcast(xp, target)
    bce, focal_weight, *_ = _varifocal_terms(xp, logits, labels, alpha, gamma, iou_weighted)
    return _finish(xp, bce * focal_weight, weight, reduction, input.dtype, bad_alpha, bad_gamma, bad_target)


def _varifocal_vjp(xp, arrays, options, upstream):
    """``d/dx = w [f (sigmoid(x) - q) + BCE df/dx]``; ``df/dx = gamma f d/dx log|q - sigmoid(x)|`` on negatives, 0 on positives."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    gamma = options["gamma"]
    logits, labels = upcast(xp, input), upcast(xp, target)
    bce, focal_weight, positive, log_gap, tie, sign, negative_weight = _varifocal_terms(
        xp, logits, labels, options["alpha"], gamma, options["iou_weighted"])
    scale = spread_upstream(xp, upstream, input.dtype, logits.shape, options["reduction"], weight)
    d_weight = gamma * negative_weight * d_log_gap(xp, logits, log_gap, tie, sign)
    d_weight = xp.where(positive, xp.zeros_like(d_weight), d_weight)
    grad = focal_weight * (xp.exp(log_sigmoid(xp, logits)) - labels) + bce * d_weight
    return {"input": gradient_like(xp, scale * grad, input)}


_VFL_ALPHA = Option("alpha", 0.75, traced=True,
                    check=lambda v: require_in_range(v, argument="alpha", loss="varifocal_loss", low=0.0,
                                                     exception=ValueError))
_VFL_GAMMA = Option("gamma", 2.0, traced=True, check=check_exponent("gamma", "varifocal_loss"))


# -- distribution focal loss --------------------------------------------------------

def _two_hot(xp, target, bins, dtype):
    """``q_c = max(0, 1 - |c - y|)``: weight ``l + 1 - y`` on bin ``l = floor(y)``, ``y - l`` on ``l + 1``."""
    centers = xp.arange(bins, dtype=dtype, device=device_of(target))
    return xp.clip(1 - xp.abs(xp.expand_dims(target, axis=-1) - centers), min=0)


def distribution_focal_loss(input, target, /, *, weight=None, reduction="mean"):
    """Distribution Focal Loss (DFL) over discretized distances::

        loss_i = -((l + 1 - y_i) log softmax(x_i)_l + (y_i - l) log softmax(x_i)_{l+1}),  l = floor(y_i)

    ``input`` ``(..., n + 1)``: logits over the bins ``0..n`` (last axis);
    ``target`` ``(...)``: the distance, ``0 <= y < n``, floating; ``weight``
    broadcasts to the target's shape. The loss is the cross entropy against the
    two-hot distribution that linearly interpolates ``y`` between its neighbouring
    bins (``-sum_c max(0, 1 - |c - y|) log softmax(x)_c``). ``'mean'`` averages over
    the target's elements. For an integer ``y`` it is ``cross_entropy(input, y)``.
    Paper: Li et al. 2020, "Generalized Focal Loss" (arXiv:2006.04388), eq. 6;
    semantics of mmdet's ``distribution_focal_loss`` (whose ``(N, n + 1)``/``(N,)``
    is the 2-D case). A target outside [0, n) raises ValueError (mmdet fails on an
    out-of-range class index; NaN under tracing). torch has no such loss:
    ``lossy_torch.functional.distribution_focal_loss``, ``lossy_torch.DistributionFocalLoss``.
    """
    loss = "distribution_focal_loss"
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    require_floating_arrays(xp, loss, input=input, target=target, weight=weight)
    if input.ndim < 1 or shape_of(target) != shape_of(input)[:-1]:
        raise ValueError(
            f"{loss}: expected 'target' of the shape of 'input' without its last (bin) axis, "
            f"{fmt_shape(shape_of(input)[:-1]) if input.ndim else 'for a 1-d or larger input'}, "
            f"got input {fmt_shape(shape_of(input))} and target {fmt_shape(shape_of(target))}"
        )
    bins = shape_of(input)[-1]
    if bins < 2:
        raise ValueError(f"{loss}: expected at least 2 bins on the last axis of 'input', got {bins}")
    if weight is not None:
        require_broadcastable_to(weight, shape_of(target), argument="weight", target_argument="target", loss=loss)

    def raise_error(bad):
        raise ValueError(f"{loss}: expected every 'target' in [0, {bins - 1}) (the bins of 'input' "
                         f"less the last), got {first_value(xp, target, bad)}")

    bad_target = data_check(xp, ~((target >= 0) & (target < bins - 1)), raise_error=raise_error)
    logits = upcast(xp, input)
    two_hot = _two_hot(xp, upcast(xp, as_float(xp, target, input.dtype)), bins, logits.dtype)
    terms = -xp.sum(two_hot * log_softmax(xp, logits, axis=-1), axis=-1)
    return _finish(xp, terms, weight, reduction, input.dtype, bad_target)


def _distribution_focal_vjp(xp, arrays, options, upstream):
    """``d/dx_c = w (softmax(x)_c - q_c)`` (the two-hot ``q`` sums to 1)."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    logits = upcast(xp, input)
    bins = shape_of(input)[-1]
    two_hot = _two_hot(xp, upcast(xp, as_float(xp, target, input.dtype)), bins, logits.dtype)
    scale = spread_upstream(xp, upstream, input.dtype, shape_of(target), options["reduction"], weight)
    grad = xp.expand_dims(scale, axis=-1) * (xp.exp(log_softmax(xp, logits, axis=-1)) - two_hot)
    return {"input": gradient_like(xp, grad, input)}


# -- registration -------------------------------------------------------------------

def _binding(function, module, options):
    """A loss torch lacks: functional and module take every hyperparameter by keyword."""
    keywords = ("weight", *(name for name, _ in options), "reduction")
    return TorchBinding(
        function=function,
        signature=(("input", REQUIRED), ("target", REQUIRED), ("weight", None), *options, ("reduction", "mean")),
        keyword_only=keywords,
        module=module,
        module_signature=(("weight", None), *options, ("reduction", "mean")),
        module_keyword_only=keywords,
        buffers=("weight",),
    )


register(LossSpec(
    name="quality_focal_loss", function=quality_focal_loss, vjp=_quality_focal_vjp, family="focal variants",
    arrays=("input", "target"), optional_arrays=("weight",),
    options=(_QFL_BETA, Option("reduction", "mean")),
    summary="Generalized Focal Loss QFL: BCE on soft quality targets times `abs(y - sigmoid(x))^beta` (mmdet)",
    reference="mmdet quality_focal_loss",
    torch=_binding("quality_focal_loss", "QualityFocalLoss", (("beta", 2.0),)),
))
register(LossSpec(
    name="distribution_focal_loss", function=distribution_focal_loss, vjp=_distribution_focal_vjp,
    family="focal variants", arrays=("input", "target"), optional_arrays=("weight",),
    options=(Option("reduction", "mean"),),
    summary="Generalized Focal Loss DFL: cross entropy to the two bins around a distance (mmdet)",
    reference="mmdet distribution_focal_loss",
    torch=_binding("distribution_focal_loss", "DistributionFocalLoss", ()),
))
register(LossSpec(
    name="varifocal_loss", function=varifocal_loss, vjp=_varifocal_vjp, family="focal variants",
    arrays=("input", "target"), optional_arrays=("weight",),
    options=(_VFL_ALPHA, _VFL_GAMMA, Option("iou_weighted", True), Option("reduction", "mean")),
    summary="VarifocalNet: BCE weighted by the IoU on positives, `alpha sigmoid(x)^gamma` on negatives (mmdet)",
    reference="mmdet varifocal_loss",
    torch=_binding("varifocal_loss", "VarifocalLoss", (("alpha", 0.75), ("gamma", 2.0), ("iou_weighted", True))),
))
