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

``class_balanced_weights`` gives Cui et al.'s per-class weights (CVPR 2019).
"""

from __future__ import annotations

import math

from ._autodiff import custom_gradient
from ._backend import dtype_name, is_number, namespace, quiet_floating_point, shape_of
from ._binary import bce_with_logits_derivatives, bce_with_logits_terms
from ._common import as_float, gradient_like, upcast
from ._primitives import log_sigmoid
from ._reductions import reduce, reduction_vjp
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import fmt_shape, is_floating, is_concrete, poison, require_broadcastable_to

_REDUCTIONS = ("none", "mean", "sum")


# -- checks -------------------------------------------------------------------------

def check_focal_reduction(reduction):
    """torchvision's ValueError ("Invalid Value for arg 'reduction'"), raised before any compute."""
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(
            f"Invalid Value for arg 'reduction': '{reduction}' \n Supported reduction modes: 'none', 'mean', "
            f"'sum' (sigmoid_focal_loss expects reduction in 'none', 'mean', 'sum', got {reduction!r})"
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
        raise ValueError(f"sigmoid_focal_loss: expected gamma >= 0, got gamma={float(gamma)}")
    return None


_ALPHA = Option("alpha", 0.25, traced=True, check=_check_alpha)
_GAMMA = Option("gamma", 2.0, traced=True, check=_check_gamma)
_NORMALIZER = Option("normalizer", None, traced=True)


# -- the modulating factor, in log space ----------------------------------------------

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


def _modulator_backward(xp, arrays, upstream, needs):
    logits, labels, gamma = arrays
    _, d_logits, d_labels, d_gamma = _modulator_partials(xp, logits, labels, gamma)
    return (
        upstream * d_logits if needs[0] else None,
        upstream * d_labels if needs[1] else None,
        xp.reshape(xp.sum(upstream * d_gamma), shape_of(gamma)) if needs[2] else None,
    )


@custom_gradient(_modulator_backward)
def _modulator(xp, logits, labels, gamma):
    """``(1 - p_t)^gamma = exp(gamma log(1 - p_t))``, elementwise (gradient: ``_modulator_partials``).

    Written with a custom gradient because the hard-label branches of ``log(1 - p_t)``
    do not depend on ``y`` while the factor does (torchvision differentiates ``p_t`` in ``y``).
    """
    return xp.exp(gamma * _log_one_minus_p_t(xp, logits, labels))


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
                       reduction="none", normalizer=None):
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
    ``reduction='sum', normalizer=number_of_positives`` as in RetinaNet).

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
    bad_alpha, bad_gamma = _check_alpha(alpha), _check_gamma(gamma)
    dtype, logits, labels, positive_scale, scale = _prepare(xp, inputs, targets, weight, pos_weight,
                                                            "sigmoid_focal_loss")
    terms = bce_with_logits_terms(xp, logits, labels, positive_scale)
    terms = terms * _modulator(xp, logits, labels, _as_scalar(xp, gamma, logits))
    alpha_t, _ = _alpha_factor(xp, alpha, labels)
    if alpha_t is not None:
        terms = alpha_t * terms
    if scale is not None:
        terms = terms * scale
    for bad in (bad_alpha, bad_gamma):
        if bad is not None:
            terms = poison(xp, terms, bad)
    value = reduce(xp, terms, reduction)
    if normalizer is not None:
        value = value / _as_scalar(xp, normalizer, value)
    return value if value.dtype == dtype else xp.astype(value, dtype)


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
    m, d_m_x, d_m_y, _ = _modulator_partials(xp, logits, labels, _as_scalar(xp, options["gamma"], logits))
    d_input = d_ce_x * m + ce * d_m_x
    d_target = d_ce_y * m + ce * d_m_y
    alpha_t, d_alpha_t = _alpha_factor(xp, options["alpha"], labels)
    if alpha_t is not None:
        d_input = alpha_t * d_input
        d_target = alpha_t * d_target + d_alpha_t * ce * m
    return {"inputs": gradient_like(xp, factor * d_input, inputs),
            "targets": gradient_like(xp, factor * d_target, targets)}


register(LossSpec(
    name="sigmoid_focal_loss", function=sigmoid_focal_loss, vjp=_sigmoid_focal_vjp, family="focal",
    arrays=("inputs", "targets"), optional_arrays=("weight", "pos_weight"),
    options=(_ALPHA, _GAMMA, Option("reduction", "none"), _NORMALIZER), differentiable=("inputs", "targets"),
    summary="torchvision's focal loss on logits, log-space modulator (`weight`, `pos_weight`, `normalizer`)",
    reference="torchvision.ops.sigmoid_focal_loss",
    torch=TorchBinding(
        function="sigmoid_focal_loss",
        signature=(("inputs", REQUIRED), ("targets", REQUIRED), ("alpha", 0.25), ("gamma", 2),
                   ("reduction", "none"), ("weight", None), ("pos_weight", None), ("normalizer", None)),
        keyword_only=("weight", "pos_weight", "normalizer"),
        module="SigmoidFocalLoss",
        module_signature=(("alpha", 0.25), ("gamma", 2.0), ("reduction", "none"), ("weight", None),
                          ("pos_weight", None), ("normalizer", None)),
        module_keyword_only=("weight", "pos_weight", "normalizer"),
        buffers=("weight", "pos_weight"),
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
