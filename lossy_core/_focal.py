"""The focal family: binary cross entropy with the easy examples down-weighted.

Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
arXiv:1708.02002) multiplies the cross entropy of each prediction by the
modulating factor ``(1 - p_t)^gamma``, ``p_t`` being the probability given to
the true label, and by a class-balancing weight ``alpha_t``::

    FL = -alpha_t (1 - p_t)^gamma log p_t

``gamma = 0`` and no ``alpha`` is binary cross entropy. ``sigmoid_focal_loss``
is torchvision's (``torchvision.ops.sigmoid_focal_loss``) on logits, with
``weight``, ``pos_weight`` (as ``binary_cross_entropy_with_logits``), soft
targets and a ``normalizer`` added. The modulating factor is computed in log
space, ``exp(gamma log(1 - p_t))`` with ``log(1 - p_t)`` a log-sigmoid, so the
value and the input gradient are finite for logits of any magnitude and every
``gamma >= 0`` (torchvision's ``(1 - p) ** gamma`` has a NaN gradient at
``gamma < 1`` once ``sigmoid`` saturates).

Its neighbours here: ``binary_focal_loss`` (the same on probabilities, with
``binary_cross_entropy``'s -100 log clamp), ``softmax_focal_loss`` (multi-class:
``cross_entropy`` with each class's log-probability times ``alpha_c (1 - p_c)^gamma``),
``modulation='quality'`` of ``sigmoid_focal_loss`` (YOLOv5's QFocalLoss factor
``|y - p|^gamma``; ``lossy_torch.FocalLoss``/``QFocalLoss`` wrap a
``BCEWithLogitsLoss`` around it) and ``class_balanced_weights``, Cui et al.'s
per-class weights (CVPR 2019) for any of their ``weight`` arguments.
"""

from __future__ import annotations

import math

from ._autodiff import custom_gradient
from ._backend import dtype_name, is_number, namespace, quiet_floating_point, shape_of
from ._binary import (
    _bce_backward, _clamped_bce_terms, bce_with_logits_derivatives, bce_with_logits_terms, check_probability_arguments,
)
from ._common import as_float, gradient_like, spread_upstream, upcast
from ._classification import (
    _as_batch, _check_index_target, _check_indices, _check_input, _check_weight, _class_axis, _class_terms,
    _index_coefficients, _reduce_class_terms, _upstream_per_position,
)
from ._primitives import class_axis_view, log_sigmoid, log_softmax
from ._reductions import check_reduction, finalize, finish, on_numerator, reduce, reduction_vjp
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import fmt_shape, is_floating, is_concrete, poison, require_broadcastable_to

_REDUCTIONS = ("none", "mean", "sum", "parts")


# -- checks -------------------------------------------------------------------------

def check_focal_reduction(reduction):
    """torchvision's ValueError ("Invalid Value for arg 'reduction'"), raised before any compute."""
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(
            f"Invalid Value for arg 'reduction': '{reduction}' \n Supported reduction modes: 'none', 'mean', "
            f"'sum' (sigmoid_focal_loss expects reduction in 'none', 'mean', 'sum', 'parts', got {reduction!r})"
        )


def _check_alpha(alpha):
    """``alpha`` in [0, 1], or -1 / None for no weighting (torchvision's ValueError otherwise).

    Returns None when checked, or the traced "invalid" condition (the loss is then NaN).
    """
    if alpha is None:
        return None
    if not is_concrete(alpha):
        return ~(((alpha >= 0) & (alpha <= 1)) | (alpha == -1))
    value = float(alpha)
    if not (0 <= value <= 1) and value != -1:
        raise ValueError(
            f"Invalid alpha value: {value}. alpha must be in the range [0,1] or -1 for ignore "
            f"(or None for no weighting); got alpha={value}"
        )
    return None


def _check_gamma(gamma):
    """``gamma >= 0`` (a negative exponent makes the well-classified examples dominate)."""
    if not is_concrete(gamma):
        return gamma < 0
    if float(gamma) < 0 or float(gamma) != float(gamma):
        raise ValueError(f"focal loss: expected gamma >= 0, got gamma={float(gamma)}")
    return None


_ALPHA = Option("alpha", 0.25, traced=True, check=_check_alpha)
_GAMMA = Option("gamma", 2.0, traced=True, check=_check_gamma)
_NORMALIZER = Option("normalizer", None, traced=True)


# -- the modulating factor, in log space ----------------------------------------------

def _elementwise_backward(partials):
    """The ``custom_gradient`` backward of a factor ``m(a, b, gamma)`` whose ``partials`` give
    ``(m, dm/da, dm/db, dm/dgamma)`` elementwise (``gamma`` a 0-d array)."""
    def backward(xp, arrays, upstream, needs):
        first, second, gamma = arrays
        _, d_first, d_second, d_gamma = partials(xp, first, second, gamma)
        return (
            upstream * d_first if needs[0] else None,
            upstream * d_second if needs[1] else None,
            xp.reshape(xp.sum(upstream * d_gamma), shape_of(gamma)) if needs[2] else None,
        )
    return backward


def _log_one_minus_p_t(xp, logits, labels):
    """``log(1 - p_t)`` with ``1 - p_t = y sigmoid(-x) + (1 - y) sigmoid(x)``.

    Hard labels take the log-sigmoid directly (``y = 1``: ``log sigmoid(-x)``;
    ``y = 0``: ``log sigmoid(x)``); a soft label the log-sum-exp of the two
    terms. Finite for any finite logit.
    """
    log_p, log_not_p = log_sigmoid(xp, logits), log_sigmoid(xp, -logits)
    one, zero = labels == 1, labels == 0
    soft = xp.where(one | zero, xp.full_like(labels, 0.5), labels)  # keeps the unused branch finite
    mixed = xp.logaddexp(xp.log(soft) + log_not_p, xp.log1p(-soft) + log_p)
    return xp.where(one, log_not_p, xp.where(zero, log_p, mixed))


def _modulator_partials(xp, logits, labels, gamma):
    """``m = (1 - p_t)^gamma`` and its partial derivatives in ``x``, ``y`` and ``gamma``.

    With ``l = log(1 - p_t)``::

        dm/dx = gamma (1 - 2y) exp(gamma l + log sigmoid(x) + log sigmoid(-x) - l)
        dm/dy = gamma (sigmoid(-x) - sigmoid(x)) exp((gamma - 1) l)
        dm/dgamma = l m

    all in log space. ``dm/dy`` is infinite where ``1 - p_t`` underflows and
    ``gamma < 1`` (the true derivative diverges there); it is clipped below the
    dtype's largest finite value so that ``ce dm/dy`` (``ce`` = 0 there) is 0.
    """
    log_q = _log_one_minus_p_t(xp, logits, labels)
    log_p, log_not_p = log_sigmoid(xp, logits), log_sigmoid(xp, -logits)
    modulator = xp.exp(gamma * log_q)
    d_logits = gamma * (1 - 2 * labels) * xp.exp(gamma * log_q + log_p + log_not_p - log_q)
    largest = xp.finfo(modulator.dtype).max
    with quiet_floating_point(xp):
        growth = xp.exp(xp.clip((gamma - 1) * log_q, max=math.log(float(largest)) - 1))
        d_labels = xp.clip(gamma * (xp.exp(log_not_p) - xp.exp(log_p)) * growth, min=-largest, max=largest)
    return modulator, d_logits, d_labels, log_q * modulator


_modulator_backward = _elementwise_backward(_modulator_partials)


@custom_gradient(_modulator_backward)
def _modulator(xp, logits, labels, gamma):
    """``(1 - p_t)^gamma = exp(gamma log(1 - p_t))``, elementwise (gradient: ``_modulator_partials``).

    Written with a custom gradient because the hard-label branches of ``log(1 - p_t)``
    do not depend on ``y`` while the factor does (torchvision differentiates ``p_t`` in ``y``).
    """
    return xp.exp(gamma * _log_one_minus_p_t(xp, logits, labels))


def _log_abs_gap(xp, logits, labels):
    """``(log|y - sigmoid(x)|, sign(y - sigmoid(x)))`` in log space.

    ``y - sigmoid(x) = y sigmoid(-x) - (1 - y) sigmoid(x)``; with ``a``, ``b`` the logs of
    the two terms, ``log|a - b| = max(a, b) + log1mexp(-|a - b|)``. Hard labels give
    ``log(1 - p_t)`` exactly (the focal modulating factor's base).
    """
    log_p, log_not_p = log_sigmoid(xp, logits), log_sigmoid(xp, -logits)
    one, zero = labels == 1, labels == 0
    soft = xp.where(one | zero, xp.full_like(labels, 0.5), labels)
    a, b = xp.log(soft) + log_not_p, xp.log1p(-soft) + log_p
    mixed = xp.maximum(a, b) + _log1mexp(xp, -xp.abs(a - b))
    sign = xp.where(a > b, xp.ones_like(a), xp.where(a < b, -xp.ones_like(a), xp.zeros_like(a)))
    log_gap = xp.where(one, log_not_p, xp.where(zero, log_p, mixed))
    sign = xp.where(one, xp.ones_like(a), xp.where(zero, -xp.ones_like(a), sign))
    return log_gap, sign


def _power_of_exp(xp, log_base, gamma):
    """``exp(gamma l)`` with ``0^0 = 1`` where ``l = -inf``."""
    with quiet_floating_point(xp):
        return xp.where(log_base == -math.inf,
                        xp.where(gamma == 0, xp.ones_like(log_base), xp.zeros_like(log_base)),
                        xp.exp(gamma * log_base))


def _finite_growth(xp, log_base, gamma, shift):
    """``exp((gamma - 1) l + shift)``, clipped below the dtype's largest value; at ``l = -inf``
    (base 0) it is 0, 1 or the clip for gamma >, =, < 1 (``l`` stood in by -1000 log(largest))."""
    largest = float(xp.finfo(log_base.dtype).max)
    finite = xp.where(log_base == -math.inf, xp.full_like(log_base, -1000 * math.log(largest)), log_base)
    with quiet_floating_point(xp):
        return xp.exp(xp.clip((gamma - 1) * finite + shift, max=math.log(largest) - 1))


def _quality_modulator_partials(xp, logits, labels, gamma):
    """``m = |y - sigmoid(x)|^gamma`` (YOLOv5's QFocalLoss) and its partials in ``x``, ``y``, ``gamma``::

        dm/dx = -gamma sign(u) exp((gamma - 1) l + log sigmoid(x) + log sigmoid(-x)),  u = y - sigmoid(x)
        dm/dy = gamma sign(u) exp((gamma - 1) l),  dm/dgamma = l m,  l = log|u|

    0 at ``u = 0`` (torch's ``abs`` gradient there is 0).
    """
    log_gap, sign = _log_abs_gap(xp, logits, labels)
    modulator = _power_of_exp(xp, log_gap, gamma)
    curvature = log_sigmoid(xp, logits) + log_sigmoid(xp, -logits)
    d_logits = -gamma * sign * _finite_growth(xp, log_gap, gamma, curvature)
    d_labels = gamma * sign * _finite_growth(xp, log_gap, gamma, 0.0)
    d_gamma = xp.where(log_gap == -math.inf, xp.zeros_like(log_gap), log_gap * modulator)
    return modulator, d_logits, d_labels, d_gamma


_quality_modulator_backward = _elementwise_backward(_quality_modulator_partials)


@custom_gradient(_quality_modulator_backward)
def _quality_modulator(xp, logits, labels, gamma):
    """``|y - sigmoid(x)|^gamma`` in log space (gradient: ``_quality_modulator_partials``)."""
    return _power_of_exp(xp, _log_abs_gap(xp, logits, labels)[0], gamma)


_MODULATORS = {"focal": (_modulator, _modulator_partials), "quality": (_quality_modulator, _quality_modulator_partials)}


def _check_modulation(modulation):
    if modulation not in _MODULATORS:
        raise ValueError(
            f"sigmoid_focal_loss: expected modulation 'focal' ((1 - p_t)^gamma) or 'quality' "
            f"(|y - sigmoid(x)|^gamma), got {modulation!r}"
        )


def _as_scalar(xp, value, like):
    """A Python number or 0-d array as a 0-d array of ``like``'s dtype and device."""
    if is_number(value):
        return xp.asarray(float(value), dtype=like.dtype, device=getattr(like, "device", None))
    return xp.astype(value, like.dtype) if value.dtype != like.dtype else value


def _alpha_factor(xp, alpha, labels):
    """``alpha_t = alpha y + (1 - alpha)(1 - y)``; None (no weighting) for alpha None or -1.

    Returns ``(alpha_t, d alpha_t / dy)``.
    """
    if alpha is None or (is_number(alpha) and float(alpha) == -1):
        return None, None
    if is_number(alpha):
        alpha = float(alpha)
        return alpha * labels + (1 - alpha) * (1 - labels), 2 * alpha - 1
    alpha = _as_scalar(xp, alpha, labels)
    ignore = alpha < 0  # a traced -1
    factor = xp.where(ignore, xp.ones_like(labels), alpha * labels + (1 - alpha) * (1 - labels))
    return factor, xp.where(ignore, xp.zeros_like(alpha), 2 * alpha - 1)


def _prepare(xp, inputs, targets, weight, pos_weight, loss):
    if not is_floating(xp, inputs):
        raise NotImplementedError(
            f"{loss}: expected floating point logits in 'inputs', got {dtype_name(inputs.dtype)} ({inputs.dtype})"
        )
    if not is_floating(xp, targets):
        raise RuntimeError(
            f"result type Float can't be cast to the desired output type {dtype_name(targets.dtype)}: "
            f"{loss} expects a floating point 'targets', got {targets.dtype}"
        )
    if shape_of(targets) != shape_of(inputs):
        raise ValueError(
            f"Target size ({fmt_shape(shape_of(targets))}) must be the same as input size "
            f"({fmt_shape(shape_of(inputs))}): {loss} expects 'targets' of the shape of 'inputs'"
        )
    for name, extra in (("weight", weight), ("pos_weight", pos_weight)):
        if extra is not None:
            require_broadcastable_to(extra, shape_of(inputs), argument=name, target_argument="inputs", loss=loss)
    dtype = xp.result_type(inputs, targets)
    logits = upcast(xp, as_float(xp, inputs, dtype))
    labels = upcast(xp, as_float(xp, targets, dtype))
    positive_scale = None if pos_weight is None else upcast(xp, as_float(xp, pos_weight, dtype))
    scale = None if weight is None else upcast(xp, as_float(xp, weight, dtype))
    return dtype, logits, labels, positive_scale, scale


def sigmoid_focal_loss(inputs, targets, /, *, weight=None, pos_weight=None, alpha=0.25, gamma=2.0,
                       reduction="none", normalizer=None, modulation="focal"):
    """Sigmoid focal loss on logits (RetinaNet; torchvision's ``sigmoid_focal_loss``)::

        loss_i = w_i alpha_t (1 - p_t)^gamma BCE(x_i, y_i)
        p = sigmoid(x),  p_t = p y + (1 - p)(1 - y),  alpha_t = alpha y + (1 - alpha)(1 - y)

    where ``BCE`` is ``binary_cross_entropy_with_logits``'s term, with
    ``pos_weight`` scaling its positive part (``-pw y log p - (1 - y) log(1 - p)``).
    ``inputs`` (logits) and ``targets`` (floating, in [0, 1]; soft targets
    allowed) have the same shape; ``weight`` and ``pos_weight`` broadcast to it
    (a ``(C,)`` per-class weight applies along the last axis). ``alpha`` in
    [0, 1], or ``-1``/``None`` for no balancing; ``gamma >= 0``. ``reduction``
    is ``'none'`` (torchvision's default), ``'mean'`` (over every element; NaN
    when empty) or ``'sum'``; ``normalizer`` divides the result (e.g.
    ``reduction='sum', normalizer=number_of_positives`` as in RetinaNet; ``'parts'`` then divides
    the numerator, so that ``finalize`` is ``'mean'`` over the normalizer; for a normalizer summed
    across micro-batches or ranks, build ``LossParts(loss(reduction='sum'), number_of_positives)``).
    ``modulation='quality'`` replaces ``(1 - p_t)^gamma`` by ``|y - p|^gamma``
    (YOLOv5's QFocalLoss; the same for hard targets).

    ``gamma = 0, alpha = None`` is ``binary_cross_entropy_with_logits``.
    ``(1 - p_t)^gamma`` is ``exp(gamma log(1 - p_t))`` in log space: the value
    and the input gradient are finite for logits of any magnitude and any
    ``gamma >= 0``, where torchvision's gradient is NaN for ``gamma < 1`` and
    saturated logits (its value agrees everywhere). Result dtype: the promoted
    dtype of ``inputs`` and ``targets``.

    Reference: Lin et al., "Focal Loss for Dense Object Detection" (ICCV 2017);
    ``torchvision.ops.sigmoid_focal_loss``. Neighbours: ``binary_focal_loss``
    (on probabilities), ``softmax_focal_loss`` (multi-class), and
    ``class_balanced_weights`` for a per-class ``weight``.
    """
    xp = namespace(inputs, targets, weight, pos_weight)
    check_focal_reduction(reduction)
    _check_modulation(modulation)
    bad_alpha, bad_gamma = _check_alpha(alpha), _check_gamma(gamma)
    dtype, logits, labels, positive_scale, scale = _prepare(xp, inputs, targets, weight, pos_weight,
                                                            "sigmoid_focal_loss")
    terms = bce_with_logits_terms(xp, logits, labels, positive_scale)
    terms = terms * _MODULATORS[modulation][0](xp, logits, labels, _as_scalar(xp, gamma, logits))
    alpha_t, _ = _alpha_factor(xp, alpha, labels)
    if alpha_t is not None:
        terms = alpha_t * terms
    if scale is not None:
        terms = terms * scale
    for bad in (bad_alpha, bad_gamma):
        if bad is not None:
            terms = poison(xp, terms, bad)
    if normalizer is None:
        return finish(xp, reduce(xp, terms, reduction), dtype)
    # 'mean' as (sum / normalizer) / count, the finalized parts, so that the two agree exactly.
    value = reduce(xp, terms, "parts" if reduction == "mean" else reduction)
    value = on_numerator(value, lambda v: v / _as_scalar(xp, normalizer, v))
    return finish(xp, finalize(value) if reduction == "mean" else value, dtype)


def _product_rule(ce, d_ce, m, d_m, alpha_t, d_alpha_t):
    """The partials of ``alpha_t ce m`` in (prediction, label), from those of each factor."""
    d_input = d_ce[0] * m + ce * d_m[0]
    d_target = d_ce[1] * m + ce * d_m[1]
    if alpha_t is None:
        return d_input, d_target
    return alpha_t * d_input, alpha_t * d_target + d_alpha_t * ce * m


def _sigmoid_focal_vjp(xp, arrays, options, upstream):
    """``d/dx = s alpha_t (dce/dx m + ce dm/dx)``,
    ``d/dy = s ((2 alpha - 1) ce m + alpha_t (dce/dy m + ce dm/dy))``, ``s = w upstream' / normalizer``
    (``ce``: ``bce_with_logits_terms``, ``m``: ``_modulator_partials``)."""
    inputs, targets = arrays["inputs"], arrays["targets"]
    dtype, logits, labels, positive_scale, scale = _prepare(
        xp, inputs, targets, arrays.get("weight"), arrays.get("pos_weight"), "sigmoid_focal_loss")
    upstream = upcast(xp, as_float(xp, upstream, dtype))
    normalizer = options["normalizer"]
    if normalizer is not None:
        upstream = upstream / _as_scalar(xp, normalizer, upstream)
    factor = reduction_vjp(xp, upstream, logits.shape, options["reduction"])
    if scale is not None:
        factor = factor * scale
    ce = bce_with_logits_terms(xp, logits, labels, positive_scale)
    d_ce_x, d_ce_y = bce_with_logits_derivatives(xp, logits, labels, positive_scale)
    partials = _MODULATORS[options["modulation"]][1]
    m, d_m_x, d_m_y, _ = partials(xp, logits, labels, _as_scalar(xp, options["gamma"], logits))
    d_input, d_target = _product_rule(ce, (d_ce_x, d_ce_y), m, (d_m_x, d_m_y),
                                      *_alpha_factor(xp, options["alpha"], labels))
    return {"inputs": gradient_like(xp, factor * d_input, inputs),
            "targets": gradient_like(xp, factor * d_target, targets)}


register(LossSpec(
    name="sigmoid_focal_loss", function=sigmoid_focal_loss, vjp=_sigmoid_focal_vjp, family="focal",
    arrays=("inputs", "targets"), optional_arrays=("weight", "pos_weight"),
    options=(_ALPHA, _GAMMA, Option("reduction", "none"), _NORMALIZER, Option("modulation", "focal")),
    differentiable=("inputs", "targets"),
    summary="torchvision's focal loss on logits, log-space modulator (`weight`, `pos_weight`, `normalizer`)",
    reference="torchvision.ops.sigmoid_focal_loss",
    torch=TorchBinding(
        function="sigmoid_focal_loss",
        signature=(("inputs", REQUIRED), ("targets", REQUIRED), ("alpha", 0.25), ("gamma", 2),
                   ("reduction", "none"), ("weight", None), ("pos_weight", None), ("normalizer", None),
                   ("modulation", "focal")),
        keyword_only=("weight", "pos_weight", "normalizer", "modulation"),
        module="SigmoidFocalLoss",
        module_signature=(("alpha", 0.25), ("gamma", 2.0), ("reduction", "none"), ("weight", None),
                          ("pos_weight", None), ("normalizer", None), ("modulation", "focal")),
        module_keyword_only=("weight", "pos_weight", "normalizer", "modulation"),
        buffers=("weight", "pos_weight"),
    ),
))


# -- on probabilities ------------------------------------------------------------------

def _probability_modulator_partials(xp, probability, labels, gamma):
    """``m = q^gamma``, ``q = 1 - p_t = y (1 - p) + (1 - y) p``, and its partials in ``p``, ``y``, ``gamma``.

    ``dm/dp = gamma (1 - 2y) q^(gamma - 1)``, ``dm/dy = gamma (1 - 2p) q^(gamma - 1)``,
    ``dm/dgamma = log(q) m``; ``q^(gamma - 1)`` (infinite at ``q = 0``, ``gamma < 1``) is clipped
    to the dtype's largest finite value, so that the BCE factor, 0 there, gives a 0 gradient.
    """
    q = labels * (1 - probability) + (1 - labels) * probability
    largest = xp.finfo(q.dtype).max
    with quiet_floating_point(xp):
        modulator = q ** gamma
        growth = gamma * xp.clip(q ** (gamma - 1), max=largest)
        d_gamma = xp.where(q > 0, xp.log(xp.where(q > 0, q, xp.ones_like(q))) * modulator, xp.zeros_like(q))
    return modulator, xp.clip((1 - 2 * labels) * growth, min=-largest, max=largest), \
        xp.clip((1 - 2 * probability) * growth, min=-largest, max=largest), d_gamma


_probability_modulator_backward = _elementwise_backward(_probability_modulator_partials)


@custom_gradient(_probability_modulator_backward)
def _probability_modulator(xp, probability, labels, gamma):
    """``(1 - p_t)^gamma`` on probabilities (``0^0 = 1``); gradient: ``_probability_modulator_partials``."""
    q = labels * (1 - probability) + (1 - labels) * probability
    return q ** gamma


def binary_focal_loss(input, target, /, *, weight=None, alpha=0.25, gamma=2.0, reduction="mean"):
    """Focal loss on probabilities (Lin et al., ICCV 2017), ``binary_cross_entropy``'s counterpart::

        loss_i = w_i alpha_t (1 - p_t)^gamma BCE(p_i, y_i)
        p_t = p y + (1 - p)(1 - y),  alpha_t = alpha y + (1 - alpha)(1 - y)

    with ``BCE`` exactly ``binary_cross_entropy``'s term (each log clamped at -100).
    ``input`` (probabilities) and ``target`` have the same shape and dtype and lie
    in [0, 1] (RuntimeError otherwise, NaN under tracing), as for
    ``binary_cross_entropy``; ``weight`` broadcasts to the input. ``alpha`` in [0, 1],
    or -1/None for no balancing; ``gamma >= 0``. ``reduction``: ``'mean'``
    (default, over every element), ``'sum'`` or ``'none'``. ``gamma = 0, alpha = None``
    is ``binary_cross_entropy``. Prefer ``sigmoid_focal_loss`` on logits: it is
    exact in log space for any logit. At ``1 - p_t = 0`` with ``gamma < 1`` the
    modulating factor's derivative is infinite; the gradient there is the BCE
    factor's limit, 0. Reference: torch's ``binary_cross_entropy`` times the
    paper's factors (no torch or torchvision counterpart).
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    bad_alpha, bad_gamma = _check_alpha(alpha), _check_gamma(gamma)
    bad_input, bad_target = check_probability_arguments(xp, input, target, weight, loss="binary_focal_loss")
    probability, labels = upcast(xp, input), upcast(xp, target)
    terms = _clamped_bce_terms(xp, probability, labels)
    terms = terms * _probability_modulator(xp, probability, labels, _as_scalar(xp, gamma, probability))
    alpha_t, _ = _alpha_factor(xp, alpha, labels)
    if alpha_t is not None:
        terms = alpha_t * terms
    if weight is not None:
        terms = terms * upcast(xp, as_float(xp, weight, input.dtype))
    for bad in (bad_input, bad_target, bad_alpha, bad_gamma):
        terms = poison(xp, terms, bad)
    value = reduce(xp, terms, reduction)
    return finish(xp, value, input.dtype)


def _binary_focal_vjp(xp, arrays, options, upstream):
    """``d/dp = s alpha_t (dBCE/dp m + BCE dm/dp)``, ``d/dy = s ((2 alpha - 1) BCE m + alpha_t (dBCE/dy m + BCE dm/dy))``
    with torch's BCE gradients (``_bce_backward``) and ``_probability_modulator_partials``."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    probability, labels = upcast(xp, input), upcast(xp, target)
    factor = spread_upstream(xp, upstream, input.dtype, probability.shape, options["reduction"], weight)
    bce = _clamped_bce_terms(xp, probability, labels)
    m, d_m_p, d_m_y, _ = _probability_modulator_partials(xp, probability, labels,
                                                         _as_scalar(xp, options["gamma"], probability))
    with quiet_floating_point(xp):  # the target gradient of BCE is infinite at p in {0, 1}, as torch's
        d_bce = _bce_backward(xp, (probability, labels), xp.ones_like(probability), (True, True))
        d_input, d_target = _product_rule(bce, d_bce, m, (d_m_p, d_m_y), *_alpha_factor(xp, options["alpha"], labels))
    return {"input": gradient_like(xp, factor * d_input, input),
            "target": gradient_like(xp, factor * d_target, target)}


register(LossSpec(
    name="binary_focal_loss", function=binary_focal_loss, vjp=_binary_focal_vjp, family="focal",
    arrays=("input", "target"), optional_arrays=("weight",),
    options=(_ALPHA, _GAMMA, Option("reduction", "mean")), differentiable=("input", "target"),
    summary="focal loss on probabilities: `binary_cross_entropy` (logs clamped at -100) times the focal factors",
    torch=TorchBinding(
        function="binary_focal_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("alpha", 0.25), ("gamma", 2.0),
                   ("reduction", "mean"), ("weight", None)),
        keyword_only=("weight",),
        module="BinaryFocalLoss",
        module_signature=(("alpha", 0.25), ("gamma", 2.0), ("reduction", "mean"), ("weight", None)),
        module_keyword_only=("weight",), buffers=("weight",), autocast="unsafe_on_cuda",
    ),
))

# -- multi-class (softmax) ---------------------------------------------------------------

def _log1mexp(xp, log_p):
    """``log(1 - exp(l))`` for ``l <= 0``, accurate at both ends (Maechler's log1mexp)."""
    with quiet_floating_point(xp):
        small = xp.log1p(-xp.exp(xp.clip(log_p, max=-math.log(2))))
        large = xp.log(-xp.expm1(xp.clip(log_p, min=-math.log(2))))
    return xp.where(log_p < -math.log(2), small, large)


def _softmax_modulator_partials(xp, log_p, gamma):
    """``m = (1 - p)^gamma`` from ``l = log p``, and ``dm/dl = -gamma exp(l + (gamma - 1) log(1 - p))``,
    ``dm/dgamma = log(1 - p) m``. ``p = 1`` gives ``m = 0^gamma`` (1 at gamma 0); ``dm/dl`` is clipped
    below the dtype's largest value (infinite at ``p = 1``, ``gamma < 1``; ``log p`` is 0 there)."""
    log_q = _log1mexp(xp, log_p)
    modulator = _power_of_exp(xp, log_q, gamma)
    d_log_p = -gamma * _finite_growth(xp, log_q, gamma, log_p)
    with quiet_floating_point(xp):
        d_gamma = xp.where(log_q == -math.inf, xp.zeros_like(log_q), log_q * modulator)
    return modulator, d_log_p, d_gamma


def _softmax_modulator_backward(xp, arrays, upstream, needs):
    log_p, gamma = arrays
    _, d_log_p, d_gamma = _softmax_modulator_partials(xp, log_p, gamma)
    return (upstream * d_log_p if needs[0] else None,
            xp.reshape(xp.sum(upstream * d_gamma), shape_of(gamma)) if needs[1] else None)


@custom_gradient(_softmax_modulator_backward)
def _softmax_modulator(xp, log_p, gamma):
    """``(1 - p)^gamma`` from log-probabilities, in log space (gradient: ``_softmax_modulator_partials``)."""
    return _power_of_exp(xp, _log1mexp(xp, log_p), gamma)


def _check_class_alpha(xp, alpha, num_classes):
    """Softmax ``alpha``: None, a number >= 0, or a (C,) array (its values checked >= 0 when readable)."""
    if alpha is None:
        return None
    if is_number(alpha):
        if float(alpha) < 0 or float(alpha) != float(alpha):
            raise ValueError(f"softmax_focal_loss: expected alpha >= 0 (or a (C,) array, or None), got {alpha}")
        return None
    if alpha.ndim == 0:
        if is_concrete(alpha):
            return _check_class_alpha(xp, float(alpha), num_classes)
        return alpha < 0
    if shape_of(alpha) != (num_classes,):
        raise ValueError(
            f"softmax_focal_loss: expected 'alpha' of shape [{num_classes}] (one per class), got "
            f"{fmt_shape(shape_of(alpha))}"
        )
    if is_concrete(alpha) and bool(xp.any(~(alpha >= 0))):
        raise ValueError("softmax_focal_loss: expected every per-class alpha >= 0")
    return None if is_concrete(alpha) else xp.any(alpha < 0)


def _class_alpha(xp, alpha, like, class_axis):
    """``alpha`` broadcastable along the class axis of ``like`` (None for no weighting)."""
    if alpha is None or is_number(alpha):
        return None if alpha is None else float(alpha)
    alpha = _as_scalar(xp, alpha, like) if alpha.ndim == 0 else xp.astype(alpha, like.dtype)
    return alpha if alpha.ndim == 0 else class_axis_view(xp, alpha, like.ndim, class_axis)


def _focal_log_likelihood(xp, log_p, alpha, gamma):
    """``f = alpha_c (1 - p)^gamma log p`` per class: cross entropy's ``log p`` with the focal factors."""
    f = _softmax_modulator(xp, log_p, _as_scalar(xp, gamma, log_p)) * log_p
    return f if alpha is None else alpha * f


def softmax_focal_loss(input, target, /, *, weight=None, alpha=None, gamma=2.0, ignore_index=-100,
                       reduction="mean"):
    """Multi-class focal loss on logits (Lin et al., ICCV 2017, eq. (5) over a softmax)::

        loss_n = -w[y_n] alpha[y_n] (1 - p_n[y_n])^gamma log p_n[y_n]          (class indices)
        loss_n = -sum_c w_c alpha_c y_nc (1 - p_nc)^gamma log p_nc              (class probabilities)

    with ``log p = log_softmax(input, class axis)``: ``cross_entropy`` with each
    class's log-probability multiplied by the focal factors. Shapes, ``weight``,
    ``ignore_index`` and the denominators are ``cross_entropy``'s: ``input``
    ``(C)``, ``(N, C)`` or ``(N, C, d1..dk)``; class indices ``()``, ``(N)`` or
    ``(N, d1..dk)`` ('mean' divides by the summed ``w[y_n]`` of the kept targets),
    or probabilities of the input's shape ('mean' divides by ``N d1..dk``;
    ``ignore_index >= 0`` raises). ``alpha``: None, a number >= 0 or a ``(C,)``
    array of per-class factors (not in the denominator); ``gamma >= 0``.
    ``gamma = 0, alpha = None`` is ``cross_entropy``. ``(1 - p)^gamma`` is
    ``exp(gamma log1mexp(log p))``: finite values and input gradients for logits
    of any magnitude. Neighbours: ``sigmoid_focal_loss`` (one-vs-all, RetinaNet's
    choice), ``class_balanced_weights`` for ``weight``. Reference: the paper; no
    torch counterpart.
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    bad_gamma = _check_gamma(gamma)
    if input.ndim == 0:
        raise ValueError("softmax_focal_loss needs 'input' of shape (C), (N, C) or (N, C, d1, ..., dk), got 0-d")
    _check_input(xp, input, loss="softmax_focal_loss", kernel="log_softmax_lastdim_kernel_impl")
    class_axis = _class_axis(input)
    num_classes = shape_of(input)[class_axis]
    bad_alpha = _check_class_alpha(xp, alpha, num_classes)
    probabilities = shape_of(target) == shape_of(input)
    if probabilities:
        if not is_floating(xp, target):
            raise RuntimeError(
                f"Expected floating point type for target with class probabilities, got {dtype_name(target.dtype)}: "
                "softmax_focal_loss reads a 'target' of the input's shape as class probabilities"
            )
        if ignore_index >= 0:
            raise RuntimeError(
                "ignore_index is not supported for floating point target: softmax_focal_loss with class "
                f"probabilities expects ignore_index < 0, got ignore_index={ignore_index}"
            )
    else:
        _check_index_target(xp, input, target, loss="softmax_focal_loss")
    _check_weight(xp, weight, input, num_classes, loss="softmax_focal_loss")
    if probabilities:
        out_dtype = xp.result_type(input, target)
        log_p = log_softmax(xp, upcast(xp, as_float(xp, input, out_dtype)), class_axis)
        f = _focal_log_likelihood(xp, log_p, _class_alpha(xp, alpha, log_p, class_axis), gamma)
        products = f * upcast(xp, as_float(xp, target, out_dtype))
        if weight is not None:
            products = products * class_axis_view(xp, upcast(xp, as_float(xp, weight, out_dtype)), input.ndim,
                                                   class_axis)
        terms = -xp.sum(products, axis=class_axis)
        for bad in (bad_alpha, bad_gamma):
            terms = poison(xp, terms, bad)
        value = reduce(xp, terms, reduction)
        return finish(xp, value, out_dtype)
    batched_input, batched_target, single = _as_batch(xp, input, target)
    checked = _check_indices(xp, batched_target, num_classes, ignore_index, loss="softmax_focal_loss")
    log_p = log_softmax(xp, upcast(xp, batched_input), 1)
    f = _focal_log_likelihood(xp, log_p, _class_alpha(xp, alpha, log_p, 1), gamma)
    terms, target_weights, _, bad = _class_terms(xp, f, batched_target, weight, ignore_index,
                                                 loss="softmax_focal_loss", checked=checked)
    for flag in (bad, bad_alpha, bad_gamma):
        terms = poison(xp, terms, flag)
    return _reduce_class_terms(xp, terms, target_weights, reduction, single, input.dtype)


def _softmax_focal_vjp(xp, arrays, options, upstream):
    """With ``a`` cross entropy's coefficients (``w[y]`` one-hot, or ``w y``) and ``g`` the per-position
    upstream: ``dL/dl = -g a alpha (m + l dm/dl)`` on ``l = log p``, then through log_softmax
    ``dx = G - softmax sum_c G``; for probability targets ``d/dy = -g w f``."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    alpha, gamma, reduction = options["alpha"], options["gamma"], options["reduction"]
    if shape_of(target) == shape_of(input):
        class_axis = _class_axis(input)
        dtype = xp.result_type(input, target)
        log_p = log_softmax(xp, upcast(xp, as_float(xp, input, dtype)), class_axis)
        w = None if weight is None else class_axis_view(xp, upcast(xp, as_float(xp, weight, dtype)), input.ndim,
                                                        class_axis)
        q = upcast(xp, as_float(xp, target, dtype))
        a = q if w is None else q * w
        position_shape = tuple(n for i, n in enumerate(shape_of(input)) if i != class_axis)
        g = spread_upstream(xp, upstream, log_p.dtype, position_shape, reduction)
        g = xp.expand_dims(g, axis=class_axis)
    else:
        class_axis = 1
        batched_input, batched_target, _ = _as_batch(xp, input, target)
        log_p = log_softmax(xp, upcast(xp, batched_input), 1)
        a, denominator, kept = _index_coefficients(xp, log_p, batched_target, weight, options["ignore_index"], 0,
                                                   loss="softmax_focal_loss")
        g = xp.expand_dims(_upstream_per_position(xp, upstream, kept, reduction, denominator, log_p.dtype), axis=1)
    class_alpha = _class_alpha(xp, alpha, log_p, class_axis)
    m, d_m, _ = _softmax_modulator_partials(xp, log_p, _as_scalar(xp, gamma, log_p))
    d_f = m + log_p * d_m
    if class_alpha is not None:
        d_f = class_alpha * d_f
    grad_log_p = -g * a * d_f
    grad = grad_log_p - xp.exp(log_p) * xp.sum(grad_log_p, axis=class_axis, keepdims=True)
    grads = {"input": gradient_like(xp, xp.reshape(grad, shape_of(input)), input)}
    if shape_of(target) == shape_of(input):
        f = m * log_p if class_alpha is None else class_alpha * m * log_p
        grads["target"] = gradient_like(xp, -g * (f if w is None else f * w), target)
    return grads


register(LossSpec(
    name="softmax_focal_loss", function=softmax_focal_loss, vjp=_softmax_focal_vjp, family="focal",
    arrays=("input", "target"), optional_arrays=("weight",),
    options=(Option("alpha", None, traced=True), _GAMMA, Option("ignore_index", -100), Option("reduction", "mean")),
    differentiable=("input", "target"),
    summary="multi-class focal loss: `cross_entropy` (indices or probabilities) with alpha_c (1 - p_c)^gamma",
    torch=TorchBinding(
        function="softmax_focal_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("weight", None), ("alpha", None), ("gamma", 2.0),
                   ("ignore_index", -100), ("reduction", "mean")),
        module="SoftmaxFocalLoss",
        module_signature=(("weight", None), ("alpha", None), ("gamma", 2.0), ("ignore_index", -100),
                          ("reduction", "mean")),
        buffers=("weight",),
    ),
))

# -- class-balanced weights (Cui et al., CVPR 2019) -------------------------------------

def class_balanced_weights(samples_per_class, beta):
    """Class-balanced weights from the effective number of samples (Cui et al., CVPR 2019)::

        w_c = (1 - beta) / (1 - beta^n_c),  normalised so that sum_c w_c = C

    ``samples_per_class``: a 1-D array of the ``C`` class counts (each > 0; a
    list or tuple is read as a NumPy array); ``beta`` in [0, 1): 0 gives equal
    weights, ``beta -> 1`` inverse class frequency. The result (floating, the
    counts' namespace) is the per-class ``weight`` of ``sigmoid_focal_loss``,
    ``softmax_focal_loss`` or ``cross_entropy``. The paper's class-balanced
    sigmoid focal loss is::

        w = class_balanced_weights(counts, beta)[labels]           # (N,) per sample
        sigmoid_focal_loss(logits, one_hot, weight=w[:, None], alpha=None, gamma=gamma,
                           reduction="sum", normalizer=one_hot.sum())

    Reference: Cui, Jia, Lin, Song, Belongie, "Class-Balanced Loss Based on
    Effective Number of Samples", CVPR 2019 (arXiv:1901.05555).
    """
    if isinstance(samples_per_class, (list, tuple)):
        import numpy as np

        samples_per_class = np.asarray(samples_per_class, dtype=np.float64)
    xp = namespace(samples_per_class)
    if len(shape_of(samples_per_class)) != 1:
        raise ValueError(
            f"class_balanced_weights: expected a 1-D 'samples_per_class' (one count per class), got shape "
            f"{fmt_shape(shape_of(samples_per_class))}"
        )
    if not is_number(beta) or not (0 <= float(beta) < 1):
        raise ValueError(f"class_balanced_weights: expected 0 <= beta < 1, got beta={beta!r}")
    counts = samples_per_class
    if not is_floating(xp, counts):
        counts = xp.astype(counts, xp.float64 if hasattr(xp, "float64") else xp.float32)
    if is_concrete(counts) and bool(xp.any(~(counts > 0))):
        raise ValueError("class_balanced_weights: every entry of 'samples_per_class' must be > 0")
    beta = float(beta)
    weights = (1 - beta) / (1 - beta ** counts) if beta > 0 else xp.ones_like(counts)
    return weights / xp.sum(weights) * shape_of(counts)[0]
