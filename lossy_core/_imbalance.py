"""Class-imbalance losses: asymmetric loss (multi-label) and Poly-1 cross entropy.

- ``asymmetric_loss``: ASL, Ridnik et al. 2021 (https://arxiv.org/abs/2009.14119), with
  the semantics of timm's ``AsymmetricLossMultiLabel`` (``timm/loss/asymmetric_loss.py``).
- ``poly1_cross_entropy``: PolyLoss, Leng et al. 2022 (https://arxiv.org/abs/2204.12511),
  as optax's ``poly_loss_cross_entropy`` on top of torch's ``cross_entropy`` and its options.
"""

from __future__ import annotations

from ._backend import device_of, namespace, quiet_floating_point, shape_of
from ._classification import (
    _CE_OPTIONS, _LABEL_SMOOTHING, _as_batch, _class_axis, _cross_entropy_vjp, _index_coefficients,
    _smoothing_amount, _upstream_per_position, cross_entropy,
)
from ._common import as_float, gradient_like, spread_upstream, upcast
from ._focal_variants import (
    _binding, _check_pointwise, _finish, check_exponent, check_unit_interval,
)
from ._primitives import class_axis_view, log_sigmoid, log_softmax
from ._reductions import as_parts, finalize, finish
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import poison, require_in_range

# -- asymmetric loss ----------------------------------------------------------------


def _asymmetric_terms(xp, logits, target, gamma_neg, gamma_pos, clip, eps):
    """Everything the loss and its gradient share, in log space (see ``asymmetric_loss``)."""
    dtype = logits.dtype
    log_p, log_not_p = log_sigmoid(xp, logits), log_sigmoid(xp, -logits)
    with quiet_floating_point(xp):
        device = device_of(logits)
        log_eps = xp.log(xp.asarray(eps, dtype=dtype, device=device))
        clipping = xp.asarray(clip, dtype=dtype, device=device) > 0
        clip_or_one = xp.where(clipping, xp.asarray(clip, dtype=dtype, device=device),
                               xp.asarray(1.0, dtype=dtype, device=device))
        shifted = xp.exp(log_not_p) + clip_or_one  # 1 - p + clip (> 0: safe to log)
        log_neg = xp.maximum(xp.where(clipping, xp.log(xp.clip(shifted, max=1)), log_not_p), log_eps)
        log_pos = xp.maximum(log_p, log_eps)
        # 1 - pt = y (1 - p) + (1 - y) max(p - clip, 0)
        margin = xp.exp(log_p) - xp.where(clipping, clip_or_one, xp.zeros_like(clip_or_one))
        margin_positive = margin > 0
        log_margin = xp.where(
            margin_positive, xp.log(xp.where(margin_positive, margin, xp.ones_like(margin))),
            xp.full_like(margin, -xp.inf),
        )
        log_margin = xp.where(clipping, log_margin, log_p)
        above = xp.log(target) + log_not_p
        below = xp.log1p(-target) + log_margin
    zero = (above == -xp.inf) & (below == -xp.inf)
    log_gap = xp.logaddexp(above, xp.where(zero, xp.zeros_like(below), below))  # log(1 - pt), finite stand-in at 0
    gamma = gamma_pos * target + gamma_neg * (1 - target)
    factor = xp.where(zero, xp.zeros_like(gamma) ** gamma, xp.exp(gamma * log_gap))
    log_likelihood = target * log_pos + (1 - target) * log_neg
    return dict(log_p=log_p, log_not_p=log_not_p, log_eps=log_eps, clipping=clipping, shifted=shifted,
                log_neg=log_neg, margin_positive=xp.where(clipping, margin_positive, xp.ones_like(margin_positive)),
                zero=zero, log_gap=log_gap, gamma=gamma, factor=factor, log_likelihood=log_likelihood)


def asymmetric_loss(input, target, /, *, weight=None, gamma_neg=4.0, gamma_pos=1.0, clip=0.05, eps=1e-8,
                    reduction="mean"):
    """Asymmetric Loss (ASL) for multi-label classification, elementwise on logits::

        p = sigmoid(x),  p_m = min(1 - p + clip, 1)       (probability shift of negatives)
        loss = -w [y log max(p, eps) + (1 - y) log max(p_m, eps)] (1 - pt)^gamma_y
        pt = y p + (1 - y) p_m,  gamma_y = gamma_pos y + gamma_neg (1 - y)

    ``input`` (logits) and ``target`` (multi-hot or soft labels in [0, 1]) have the
    same shape, e.g. ``(N, C)``; ``weight`` broadcasts to the input (timm's per-class
    ``weight``). Paper: Ridnik et al. 2021, "Asymmetric Loss For Multi-Label
    Classification" (arXiv:2009.14119), eqs. 4-7; semantics and defaults of timm's
    ``AsymmetricLossMultiLabel`` (``clip=0`` disables the shift, as timm's None).

    Reduction: ``'mean'`` (lossy's default) averages over every element;
    ``reduction='sum'`` reproduces timm exactly (the original ASL returns
    ``-loss.sum()``; newer timm's ``reduction='sum'``). timm's ``'batchmean'`` is
    ``'sum'`` divided by ``N``. Relations: with ``gamma_neg = gamma_pos = 0``,
    ``clip = 0`` and ``eps = 0`` it is ``binary_cross_entropy_with_logits``; with
    ``gamma_neg = gamma_pos = gamma``, ``clip = 0, eps = 0`` and hard targets it is the
    sigmoid focal loss without ``alpha``.

    Computed in log space (``(1 - pt)^gamma = exp(gamma log(1 - pt))``), so values
    and gradients are finite for logits up to +-1e4 and any ``gamma >= 0``; where
    ``1 - pt = 0`` exactly (a negative with ``p <= clip``) the focusing weight is
    ``0^gamma`` and its gradient 0. Half precision computes in float32 (as timm).
    ValueError for ``gamma_neg < 0``, ``gamma_pos < 0``, ``clip`` outside [0, 1],
    ``eps`` outside [0, 1), and targets outside [0, 1] (NaN under tracing).
    torch has no such loss: ``lossy_torch.functional.asymmetric_loss``, ``lossy_torch.AsymmetricLoss``.
    """
    loss = "asymmetric_loss"
    xp = namespace(input, target, weight)
    _check_pointwise(xp, input, target, weight, reduction, loss=loss)
    bad = [option.validate(value) for option, value in zip(
        _ASL_OPTIONS, (gamma_neg, gamma_pos, clip, eps))]
    bad.append(check_unit_interval(xp, target, loss=loss))
    parts = _asymmetric_terms(xp, upcast(xp, input), upcast(xp, target), gamma_neg, gamma_pos, clip, eps)
    return _finish(xp, -parts["log_likelihood"] * parts["factor"], weight, reduction, input.dtype, *bad)


def _asymmetric_vjp(xp, arrays, options, upstream):
    """``d/dx = -w (dA F + A dF)`` with ``A`` the clamped log-likelihood and ``F = (1 - pt)^gamma``:

    d log max(p, eps) = sigmoid(-x) where p >= eps;  d log min(1 - p + clip, 1) = -p (1 - p) / (1 - p + clip)
    where it is below 1 (without clip: -p);  dF = gamma F d log(1 - pt),
    d log(1 - pt) = p (1 - p) ((1 - y) [p > clip] - y) / (1 - pt)  (0 where 1 - pt = 0).
    """
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    logits, labels = upcast(xp, input), upcast(xp, target)
    t = _asymmetric_terms(xp, logits, labels, options["gamma_neg"], options["gamma_pos"], options["clip"],
                          options["eps"])
    zeros = xp.zeros_like(logits)
    p, not_p = xp.exp(t["log_p"]), xp.exp(t["log_not_p"])
    d_pos = xp.where(t["log_p"] >= t["log_eps"], not_p, zeros)
    with quiet_floating_point(xp):
        d_shifted = xp.where(t["shifted"] <= 1, -p * not_p / t["shifted"], zeros)
    d_neg = xp.where(t["clipping"], d_shifted, -p)
    unclamped_neg = xp.where(t["clipping"], xp.log(xp.clip(t["shifted"], max=1)), t["log_not_p"])
    d_neg = xp.where(unclamped_neg >= t["log_eps"], d_neg, zeros)
    d_likelihood = labels * d_pos + (1 - labels) * d_neg
    direction = (1 - labels) * xp.astype(t["margin_positive"], logits.dtype) - labels
    d_log_gap = xp.exp(t["log_p"] + t["log_not_p"] - t["log_gap"]) * direction
    d_factor = xp.where(t["zero"], zeros, t["gamma"] * t["factor"] * d_log_gap)
    grad = -(d_likelihood * t["factor"] + t["log_likelihood"] * d_factor)
    scale = spread_upstream(xp, upstream, input.dtype, logits.shape, options["reduction"], weight)
    return {"input": gradient_like(xp, scale * grad, input)}


def _asl_option(name, default, check):
    return Option(name, default, traced=True, check=check)


def _interval(name, high, high_inclusive):
    def check(value):
        return require_in_range(value, argument=name, loss="asymmetric_loss", low=0.0, high=high,
                                high_inclusive=high_inclusive, exception=ValueError)
    return check


_ASL_OPTIONS = (
    _asl_option("gamma_neg", 4.0, check_exponent("gamma_neg", "asymmetric_loss")),
    _asl_option("gamma_pos", 1.0, check_exponent("gamma_pos", "asymmetric_loss")),
    _asl_option("clip", 0.05, _interval("clip", 1.0, True)),
    _asl_option("eps", 1e-8, _interval("eps", 1.0, False)),
)

register(LossSpec(
    name="asymmetric_loss", function=asymmetric_loss, vjp=_asymmetric_vjp, family="class imbalance",
    arrays=("input", "target"), optional_arrays=("weight",), options=(*_ASL_OPTIONS, Option("reduction", "mean")),
    summary="ASL multi-label: asymmetric focusing `gamma_neg`/`gamma_pos`, probability shift `clip` (timm)",
    reference="timm AsymmetricLossMultiLabel",
    torch=_binding("asymmetric_loss", "AsymmetricLoss",
                   (("gamma_neg", 4.0), ("gamma_pos", 1.0), ("clip", 0.05), ("eps", 1e-8))),
))


# -- Poly-1 cross entropy -----------------------------------------------------------

def _poly_coefficients(xp, input, target, weight, ignore_index, label_smoothing):
    """``(a, probabilities, class_axis, per-position reduction)`` with ``a_nc = w_c q_nc``: the
    coefficients of the cross entropy ``-sum_c a_nc log p_nc`` (``q``: the smoothed target
    distribution, 0 where ignored), so that the Poly-1 term is ``sum_c a_nc (1 - p_nc)``."""
    amount = _smoothing_amount(xp, label_smoothing)
    if shape_of(target) == shape_of(input):  # class probabilities
        axis = _class_axis(input)
        dtype = xp.result_type(input, target)
        probabilities = xp.exp(log_softmax(xp, upcast(xp, as_float(xp, input, dtype)), axis))
        num_classes = shape_of(input)[axis]
        a = upcast(xp, as_float(xp, target, dtype)) * (1 - amount) + amount / num_classes
        if weight is not None:
            a = a * class_axis_view(xp, upcast(xp, as_float(xp, weight, dtype)), input.ndim, axis)
        return a, probabilities, axis, None, None, False
    batched_input, batched_target, single = _as_batch(xp, input, target)
    logits = upcast(xp, batched_input)
    num_classes = shape_of(logits)[1]
    picked, denominator, kept = _index_coefficients(xp, logits, batched_target, weight, ignore_index, 0,
                                                    loss="poly1_cross_entropy")
    w = xp.ones((num_classes,), dtype=logits.dtype, device=device_of(logits)) if weight is None else upcast(xp, as_float(xp, weight,
                                                                                              logits.dtype))
    uniform = class_axis_view(xp, w, logits.ndim, 1) * xp.expand_dims(xp.astype(kept, logits.dtype), axis=1)
    a = (1 - amount) * picked + (amount / num_classes) * uniform
    return a, xp.exp(log_softmax(xp, logits, 1)), 1, denominator, kept, single


def poly1_cross_entropy(input, target, /, *, weight=None, ignore_index=-100, reduction="mean",
                        label_smoothing=0.0, epsilon=1.0):
    """Poly-1 cross entropy: torch's ``cross_entropy`` plus ``epsilon`` times the first polynomial term::

        loss_n = CE_n + epsilon sum_c w_c q_nc (1 - p_nc)
               = CE_n + epsilon w[y_n] (1 - p_n[y_n])            (class index, no smoothing)

    with ``p = softmax(input, class axis)`` and ``q`` the target distribution cross
    entropy uses (one-hot of the index, or the given probabilities, smoothed by
    ``label_smoothing``); 0 where the target is ``ignore_index``. Shapes, options,
    denominators (``'mean'`` divides by ``sum_n w[y_n]`` for class indices, by the
    number of positions for probabilities) and errors are ``cross_entropy``'s, so
    ``epsilon = 0`` is exactly ``cross_entropy`` (values and gradients).
    Paper: Leng et al. 2022, "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions" (arXiv:2204.12511), eq. 3 (``L_Poly-1 = -log P_t +
    epsilon (1 - P_t)``); as optax's ``poly_loss_cross_entropy`` (``1 - P_t`` taken
    under the smoothed labels). ``epsilon < -1`` raises ValueError (the paper's
    bound: the loss must decrease as ``P_t`` grows).
    """
    xp = namespace(input, target, weight)
    bad_epsilon = _POLY_EPSILON.validate(epsilon)
    # 'mean' is finalize of the parts, (sum CE_n + epsilon sum poly_n) / denominator: one division,
    # so that the parts give 'mean' exactly.
    value = cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                          reduction="parts" if reduction == "mean" else reduction, label_smoothing=label_smoothing)
    a, probabilities, axis, denominator, kept, single = _poly_coefficients(
        xp, input, target, weight, ignore_index, label_smoothing)
    terms = xp.sum(a * (1 - probabilities), axis=axis)
    if kept is not None:
        # Masked with where, as cross_entropy's terms: every target ignored gives 'mean' NaN and a zero
        # gradient (torch's), not 0 * (1/0).
        terms = xp.where(kept, terms, xp.zeros_like(terms))
        if reduction == "none" and single:
            terms = xp.reshape(terms, ())
    if reduction in ("mean", "parts"):
        # The denominator is cross_entropy's: the positions, or the kept targets' summed weights.
        numerator = xp.sum(terms)
        numerator = poison(xp, finish(xp, numerator, value.numerator.dtype), bad_epsilon)
        parts = as_parts(xp, value.numerator + epsilon * numerator, value.denominator)
        return parts if reduction == "parts" else finish(xp, finalize(parts), input.dtype)
    poly = poison(xp, finish(xp, xp.sum(terms) if reduction == "sum" else terms, value.dtype), bad_epsilon)
    return value + epsilon * poly


def _poly1_vjp(xp, arrays, options, upstream):
    """cross_entropy's gradient plus ``epsilon g_n d/dx sum_c a_c (1 - p_c) = -epsilon g_n p_k (a_k - sum_c a_c p_c)``;
    for probability targets also ``epsilon g_n (1 - eps_ls) w_c (1 - p_c)`` on the target."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    reduction, epsilon = options["reduction"], options["epsilon"]
    grads = _cross_entropy_vjp(xp, arrays, options, upstream)
    a, probabilities, axis, denominator, kept, _ = _poly_coefficients(
        xp, input, target, weight, options["ignore_index"], options["label_smoothing"])
    position_shape = tuple(n for i, n in enumerate(shape_of(probabilities)) if i != axis)
    if kept is None:
        g = spread_upstream(xp, upstream, probabilities.dtype, position_shape, reduction)
    else:
        g = _upstream_per_position(xp, upstream, kept, reduction, denominator, probabilities.dtype)
    g = xp.expand_dims(g, axis=axis)
    expected = xp.sum(a * probabilities, axis=axis, keepdims=True)
    d_input = -epsilon * g * probabilities * (a - expected)
    grads["input"] = grads["input"] + gradient_like(xp, xp.reshape(d_input, shape_of(input)), input)
    if kept is None and "target" in grads:
        amount = _smoothing_amount(xp, options["label_smoothing"])
        d_target = epsilon * g * (1 - amount) * (1 - probabilities)
        if weight is not None:
            d_target = d_target * class_axis_view(xp, upcast(xp, as_float(xp, weight, d_target.dtype)),
                                                  input.ndim, axis)
        grads["target"] = grads["target"] + gradient_like(xp, d_target, target)
    return grads


_POLY_EPSILON = Option("epsilon", 1.0, traced=True, check=lambda v: require_in_range(
    v, argument="epsilon", loss="poly1_cross_entropy", low=-1.0, exception=ValueError))

register(LossSpec(
    name="poly1_cross_entropy", function=poly1_cross_entropy, vjp=_poly1_vjp, family="class imbalance",
    arrays=("input", "target"), optional_arrays=("weight",),
    options=(*_CE_OPTIONS, _LABEL_SMOOTHING, _POLY_EPSILON), differentiable=("input", "target"),
    summary="PolyLoss Poly-1: `cross_entropy + epsilon (1 - p_t)`, every cross_entropy option",
    reference="optax poly_loss_cross_entropy",
    torch=TorchBinding(
        function="poly1_cross_entropy",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("weight", None), ("ignore_index", -100),
                   ("reduction", "mean"), ("label_smoothing", 0.0), ("epsilon", 1.0)),
        keyword_only=("weight", "ignore_index", "reduction", "label_smoothing", "epsilon"),
        module="Poly1CrossEntropyLoss",
        module_signature=(("weight", None), ("ignore_index", -100), ("reduction", "mean"),
                          ("label_smoothing", 0.0), ("epsilon", 1.0)),
        module_keyword_only=("weight", "ignore_index", "reduction", "label_smoothing", "epsilon"),
        buffers=("weight",),
    ),
))
