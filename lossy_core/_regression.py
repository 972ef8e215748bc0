"""Regression losses: L1, squared error, smooth L1 and Huber.

Each is pointwise in ``d = input - target`` (broadcast together, as torch does,
with torch's warning when the shapes differ) and reduced with torch's
denominators. The functional ``weight`` of l1/mse/huber must have the input's
shape; note torch's two weighted means: l1/mse divide by ``sum(weight)``, huber
by the number of elements.
"""

from __future__ import annotations

from functools import partial

from ._autodiff import custom_gradient
from ._backend import dtype_name, is_jax, is_number, is_torch, namespace, shape_of, size_of
from ._common import (
    as_float, broadcast_pair, gradient_like, require_weight_like_input, sum_to_shape, upcast,
)
from ._primitives import vecdot
from ._reductions import check_reduction, divide, finish, on_numerator, reduce, reduce_weighted, reduction_vjp
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import is_floating, poison, require_in_range

_REDUCTION = Option("reduction", "mean")
_LEGACY = (("size_average", None), ("reduce", None))
_BETA = Option("beta", 1.0, traced=True, check=partial(
    require_in_range, argument="beta", loss="smooth_l1_loss", low=0.0,
    torch_message="smooth_l1_loss does not support negative values for beta.",
))
_DELTA = Option("delta", 1.0, traced=True, check=partial(
    require_in_range, argument="delta", loss="huber_loss", low=0.0, low_inclusive=False,
    torch_message="huber_loss does not support non-positive values for delta.",
))


def _compute_pair(xp, input, target, *, loss, warn=True):
    """``input`` and ``target`` broadcast together (torch's rules and warning), in the compute dtype."""
    input, target = broadcast_pair(xp, input, target, loss=loss, warn=warn)
    return upcast(xp, input), upcast(xp, target)


def _difference(xp, input, target, *, loss, warn=True):
    input, target = _compute_pair(xp, input, target, loss=loss, warn=warn)
    return input - target


def _absolute(xp, difference):
    """``|d|`` with torch's gradient ``sign(d)``, i.e. 0 at ``d = 0``.

    torch (and numpy, which has no gradient) use ``abs`` itself. jax differentiates
    ``abs`` to 1 at 0, so there ``sign(d) * d`` -- exactly ``|d|`` -- gives torch's
    subgradient. (array-api-compat's torch ``sign`` indexes with a boolean mask,
    which torch.vmap cannot batch, so it is not used for torch.)
    """
    if is_jax(xp) and is_floating(xp, difference):
        return xp.sign(difference) * difference
    return xp.abs(difference)


def _weighted_reduce(xp, loss, weight, reduction, out_dtype):
    """l1/mse with ``weight``: ``'mean'`` is ``sum(weight * loss) / sum(weight)``."""
    dtype = xp.result_type(loss.dtype, out_dtype)
    weight = upcast(xp, as_float(xp, weight, dtype))
    weighted = loss * weight
    return reduce_weighted(xp, weighted, reduction, xp.sum(weight))


def _real_dtype(xp, dtype):
    if dtype == xp.complex64:
        return xp.float32
    if dtype == xp.complex128:
        return xp.float64
    return dtype


def l1_loss(input, target, /, *, weight=None, reduction="mean"):
    """Mean absolute error: ``loss_i = |input_i - target_i|`` (times ``weight_i``).

    Shapes: ``input`` and ``target`` broadcast together (torch warns when they
    differ); ``weight`` has exactly the input's shape. ``'mean'`` with ``weight``
    is ``sum(w * |d|) / sum(w)``. Integer inputs work for ``'none'``/``'sum'``
    (an integer result) and raise RuntimeError for ``'mean'``, as in torch;
    complex inputs give the real ``|d|``. Reference: ``torch.nn.functional.l1_loss``.
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    if weight is not None:
        require_weight_like_input(weight, input, loss="l1_loss")
    out_dtype = _real_dtype(xp, xp.result_type(input, target))
    if not xp.isdtype(out_dtype, "real floating"):
        if reduction in ("mean", "parts") and weight is None:
            raise RuntimeError(
                "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
                f"dtype. l1_loss: reduction='mean' needs a floating 'input', got {dtype_name(input.dtype)}"
            )
        if weight is not None:
            out_dtype = weight.dtype if is_floating(xp, weight) else xp.float32
    error = _absolute(xp, _difference(xp, input, target, loss="l1_loss"))
    if weight is None:
        return finish(xp, reduce(xp, error, reduction), out_dtype)
    if is_floating(xp, weight):
        out_dtype = xp.result_type(out_dtype, weight.dtype)
    error = as_float(xp, error, xp.result_type(error.dtype, out_dtype) if is_floating(xp, error) else out_dtype)
    return finish(xp, _weighted_reduce(xp, error, weight, reduction, out_dtype), out_dtype)


def _require_floating_pair(xp, input, target, kernel):
    """torch: NotImplementedError '"mse_cpu" not implemented for 'Long''."""
    for name, x in (("input", input), ("target", target)):
        if not is_floating(xp, x):
            raise NotImplementedError(
                f'"{kernel}" not implemented for \'{dtype_name(x.dtype)}\': expected a floating point '
                f"'{name}', got {x.dtype}"
            )


def mse_loss(input, target, /, *, weight=None, reduction="mean"):
    """Mean squared error: ``loss_i = (input_i - target_i)^2`` (times ``weight_i``).

    Shapes as :func:`l1_loss`; ``'mean'`` with ``weight`` is
    ``sum(w * d^2) / sum(w)``. Reference: ``torch.nn.functional.mse_loss``.
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    if weight is not None:
        require_weight_like_input(weight, input, loss="mse_loss")
    _require_floating_pair(xp, input, target, "mse_cpu")
    out_dtype = xp.result_type(input, target)
    difference = _difference(xp, input, target, loss="mse_loss")
    error = difference * difference
    if weight is None:
        return finish(xp, reduce(xp, error, reduction), out_dtype)
    if is_floating(xp, weight):
        out_dtype = xp.result_type(out_dtype, weight.dtype)
    return finish(xp, _weighted_reduce(xp, error, weight, reduction, out_dtype), out_dtype)


def _huber_backward(xp, arrays, saved, upstream, needs):
    """d/dd of ``c (d - c/2)`` is ``c`` itself: torch's huber_loss_backward, one multiply.
    d/d delta (a traced delta, in jax) is ``|d| - |c|``: 0 below delta, ``|d| - delta`` above."""
    difference, delta = arrays
    (clipped,) = saved
    grad_difference = upstream * clipped if needs[0] else None
    grad_delta = None
    if needs[1] and not is_number(delta):
        grad_delta = sum_to_shape(xp, upstream * (xp.abs(difference) - xp.abs(clipped)), shape_of(delta))
    return grad_difference, grad_delta


@custom_gradient(_huber_backward, residuals=True, torch_only=True)
def _huber_terms(xp, difference, delta):
    """Huber terms of ``d = input - target``: ``c (d - c/2)`` with ``c = clip(d, -delta, delta)``.

    Bit-identical to ``0.5 d^2`` below ``delta`` and ``delta (|d| - delta/2)`` above (the
    halving and the sign flips are exact), with no branch and no ``|d|``. ``c`` is also the
    derivative, so it is saved for the gradient: differentiating the clip would go through a
    masked select, which costs more than the loss on torch CPU (performance-findings.md).

    Elsewhere the same values come from ``q (|d| - q/2)``, ``q = min(|d|, delta)``, which
    autodiff differentiates exactly: XLA runs ``abs`` and one ``min`` 2x faster than the
    two-sided clip (measured, jax 0.10 CPU).
    """
    if not is_torch(xp):
        distance = xp.abs(difference)
        clipped = xp.clip(distance, max=delta) if is_number(delta) else xp.minimum(distance, delta)
        return clipped * (distance - 0.5 * clipped), ()
    clipped = _clip_symmetric(xp, difference, delta)
    return clipped * (difference - 0.5 * clipped), (clipped,)


def _huber_total_backward(xp, arrays, saved, upstream, needs):
    """The gradient of the summed terms: ``upstream * c`` (and ``upstream * sum(|d| - |c|)`` for delta)."""
    difference, delta = arrays
    (clipped,) = saved
    grad_difference = xp.reshape(upstream * clipped, shape_of(difference)) if needs[0] else None
    grad_delta = None
    if needs[1] and not is_number(delta):
        flat = xp.reshape(difference, (-1,))
        grad_delta = upstream * (xp.sum(xp.abs(flat)) - xp.sum(xp.abs(clipped)))
    return grad_difference, grad_delta


@custom_gradient(_huber_total_backward, residuals=True, torch_only=True)
def _huber_total(xp, difference, delta):
    """The sum of the Huber terms, ``sum c (d - c/2) = c.d - c.c / 2`` with ``c = clip(d, -delta, delta)``.

    Two ``vecdot`` reductions instead of three elementwise passes and a sum: the reduced loss
    never materialises its terms (on 1e6 float32 elements, torch CPU: 0.61 ms vs 1.07 ms,
    with the same 1e-7 relative error as torch's own). ``c`` is saved for the gradient.
    torch only: elsewhere ``_huber_pair_total`` sums the terms (XLA fuses them into one reduction).
    """
    flat = xp.reshape(difference, (-1,))
    clipped = _clip_symmetric(xp, flat, delta)
    return vecdot(xp, clipped, flat) - 0.5 * vecdot(xp, clipped, clipped), (clipped,)


def _huber_pair_backward(xp, arrays, upstream, needs):
    """``upstream * c`` for the input and its negation for the target, ``c = clip(d, -delta, delta)``
    computed as ``-clip(target - input)``: XLA would otherwise share the forward's
    ``input - target`` with the gradient and write it out (see ``_huber_pair_total``). A traced
    delta gets ``upstream * sum(|d| - |c|)``."""
    input, target, delta = arrays
    negated = _clip_symmetric(xp, target - input, delta)  # -c
    grad_input = negated * -upstream if needs[0] else None
    grad_target = negated * upstream if needs[1] else None
    grad_delta = None
    if needs[2] and not is_number(delta):
        grad_delta = upstream * (xp.sum(xp.abs(target - input)) - xp.sum(xp.abs(negated)))
    return grad_input, grad_target, grad_delta


@custom_gradient(_huber_pair_backward)
def _huber_pair_total(xp, input, target, delta):
    """The sum of the Huber terms of ``input - target``, differentiated from the pair (every
    backend but torch; a plain sum where nothing differentiates).

    Under XLA the reduction and the gradient then share only their inputs: each is one fused
    pass over ``input`` and ``target``, where autodiff of the terms writes ``d`` and
    ``min(|d|, delta)`` out for the gradient to read (huber_loss 1e6 f+b against optax, jax 0.10
    CPU, ``python -m benchmarks``: 0.94-1.09x in four runs before, 0.78-0.88x in three after).
    """
    terms, _ = _huber_terms.forward(xp, input - target, delta)
    return xp.sum(terms)


def _reduced_huber(xp, input, target, delta, reduction):
    """``reduce(huber terms of input - target, reduction)`` for a broadcast, upcast pair: the
    summed form for ``'sum'``/``'mean'`` of non-empty arrays (no per-element terms), the terms
    otherwise."""
    count = size_of(input)
    if reduction != "none" and count > 0:
        if is_torch(xp):
            total = _huber_total(xp, input - target, delta)
        else:
            total = _huber_pair_total(xp, input, target, delta)
        return total if reduction == "sum" else divide(xp, total, count, reduction)
    return reduce(xp, _huber_terms(xp, input - target, delta), reduction)


def smooth_l1_loss(input, target, /, *, beta=1.0, reduction="mean"):
    """Smooth L1: ``loss_i = 0.5 d_i^2 / beta`` if ``d_i < beta`` else ``d_i - 0.5 beta``, ``d = |input - target|``.

    ``beta = 0`` is exactly :func:`l1_loss` (torch does the same); ``beta < 0``
    raises RuntimeError. ``smooth_l1(beta) = huber(delta=beta) / beta``.
    Reference: ``torch.nn.functional.smooth_l1_loss`` (Girshick, Fast R-CNN, 2015).
    """
    xp = namespace(input, target)
    check_reduction(reduction)
    bad_beta = _BETA.validate(beta)
    if is_number(beta) and beta == 0:
        # torch's beta == 0 path is l1_loss itself, integer rules included ('sum' of int64 works).
        return l1_loss(input, target, reduction=reduction)
    _require_floating_pair(xp, input, target, "smooth_l1_cpu")
    out_dtype = xp.result_type(input, target)
    pair = _compute_pair(xp, input, target, loss="smooth_l1_loss")
    if is_number(beta):
        # beta > 0 here: smooth_l1 is huber(delta=beta) / beta, with Huber's fast forms and gradient
        # (the default beta = 1 skips the division, exact anyway: one op and one autograd node fewer).
        huber = _reduced_huber(xp, *pair, beta, reduction)
        return finish(xp, huber if beta == 1 else on_numerator(huber, lambda h: h / beta), out_dtype)
    # A traced beta (jax): d - q + q^2 / (2 beta) with q = min(d, beta), no division by a zero beta.
    distance = _absolute(xp, pair[0] - pair[1])
    clipped = xp.minimum(distance, beta)
    safe_beta = xp.where(beta > 0, beta, xp.ones_like(beta))
    error = distance - clipped + 0.5 * clipped * clipped / safe_beta
    error = poison(xp, error, bad_beta)
    return finish(xp, reduce(xp, error, reduction), out_dtype)


def huber_loss(input, target, /, *, delta=1.0, weight=None, reduction="mean"):
    """Huber: ``loss_i = 0.5 d_i^2`` if ``d_i < delta`` else ``delta (d_i - 0.5 delta)``, ``d = |input - target|``.

    ``delta <= 0`` raises RuntimeError. With ``weight`` (the input's shape),
    ``'mean'`` is ``mean(w * loss)`` -- divided by the number of elements, not by
    ``sum(w)`` as :func:`mse_loss` does (torch's rule). The result has the
    input's dtype, as in torch. Reference: ``torch.nn.functional.huber_loss``
    (Huber, 1964).
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    if weight is not None:
        require_weight_like_input(weight, input, loss="huber_loss")
    bad_delta = _DELTA.validate(delta)
    _require_floating_pair(xp, input, target, "huber_cpu")
    out_dtype = input.dtype
    pair = _compute_pair(xp, input, target, loss="huber_loss")
    if weight is None:  # a traced bad delta is a scalar mask: poisoning the reduced value is the same
        reduced = _reduced_huber(xp, *pair, delta, reduction)
        return finish(xp, on_numerator(reduced, lambda h: poison(xp, h, bad_delta)), out_dtype)
    error = finish(xp, poison(xp, _huber_terms(xp, pair[0] - pair[1], delta), bad_delta), out_dtype)
    if is_floating(xp, weight):
        out_dtype = xp.result_type(out_dtype, weight.dtype)
    weighted = upcast(xp, as_float(xp, error, out_dtype)) * upcast(xp, as_float(xp, weight, out_dtype))
    return finish(xp, reduce(xp, weighted, reduction), out_dtype)


# -- gradients: vector-Jacobian products of the losses above ---------------------------
#
# Each is ``vjp(xp, arrays, options, upstream) -> {name: gradient}`` (see LossSpec.vjp),
# called after the loss itself has validated the same arguments. All four losses are
# ``reduce(w * f(d))`` with ``d = input - target``; ``f'`` is written here beside ``f``.

def _pointwise_vjp(xp, arrays, reduction, upstream, derivative, *, weight_total=False):
    """Gradients of ``reduce(w * f(input - target))`` given ``derivative(d) = f'(d)``.

    ``weight_total``: ``'mean'`` divides by ``sum(w)`` (l1/mse) instead of the element count.
    """
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    difference = _difference(xp, input, target, loss="", warn=False)  # the loss has checked and warned
    local = derivative(difference)
    denominator = None
    if weight is not None:
        w = upcast(xp, as_float(xp, weight, local.dtype))
        local = local * w
        if weight_total:
            denominator = xp.sum(w)
    upstream = upcast(xp, as_float(xp, upstream, local.dtype))
    grad = reduction_vjp(xp, upstream, local.shape, reduction, denominator) * local
    grads = {}
    if is_floating(xp, input):
        grads["input"] = gradient_like(xp, grad, input)
    if is_floating(xp, target):
        grads["target"] = gradient_like(xp, -grad, target)
    return grads


def _sign(xp, d):
    """``sign(d)``, 0 at 0: torch's subgradient of ``|d|``."""
    return xp.where(d > 0, xp.ones_like(d), xp.where(d < 0, -xp.ones_like(d), xp.zeros_like(d)))


def _clip_symmetric(xp, d, bound):
    """``clip(d, -bound, bound)`` for a Python number or an array ``bound``."""
    if is_number(bound):
        return xp.clip(d, min=-bound, max=bound)
    return xp.minimum(xp.maximum(d, -bound), bound)


def _l1_vjp(xp, arrays, options, upstream):
    return _pointwise_vjp(xp, arrays, options["reduction"], upstream, partial(_sign, xp), weight_total=True)


def _mse_vjp(xp, arrays, options, upstream):
    return _pointwise_vjp(xp, arrays, options["reduction"], upstream, lambda d: 2 * d, weight_total=True)


def _smooth_l1_vjp(xp, arrays, options, upstream):
    """``f'(d) = clip(d, -beta, beta) / beta`` (``sign(d)`` for ``beta = 0``, which is l1_loss)."""
    beta = options["beta"]
    if is_number(beta) and beta == 0:
        return _l1_vjp(xp, arrays, {"reduction": options["reduction"]}, upstream)
    return _pointwise_vjp(xp, arrays, options["reduction"], upstream, lambda d: _clip_symmetric(xp, d, beta) / beta)


def _huber_vjp(xp, arrays, options, upstream):
    """``f'(d) = clip(d, -delta, delta)``; the weighted ``'mean'`` divides by the element count."""
    delta = options["delta"]
    return _pointwise_vjp(xp, arrays, options["reduction"], upstream, lambda d: _clip_symmetric(xp, d, delta))


register(LossSpec(
    name="l1_loss", function=l1_loss, vjp=_l1_vjp, family="regression", arrays=("input", "target"),
    optional_arrays=("weight",), options=(_REDUCTION,), differentiable=("input", "target"),
    summary="mean absolute error |x - y| (functional `weight`: mean = sum(w l) / sum(w))",
    torch=TorchBinding(
        function="l1_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), *_LEGACY, ("reduction", "mean"), ("weight", None)),
        module="L1Loss", module_signature=(*_LEGACY, ("reduction", "mean")),
    ),
))
register(LossSpec(
    name="mse_loss", function=mse_loss, vjp=_mse_vjp, family="regression", arrays=("input", "target"),
    optional_arrays=("weight",), options=(_REDUCTION,), differentiable=("input", "target"),
    summary="mean squared error (x - y)^2 (functional `weight`: mean = sum(w l) / sum(w))",
    torch=TorchBinding(
        function="mse_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), *_LEGACY, ("reduction", "mean"), ("weight", None)),
        module="MSELoss", module_signature=(*_LEGACY, ("reduction", "mean")),
    ),
))
register(LossSpec(
    name="smooth_l1_loss", function=smooth_l1_loss, vjp=_smooth_l1_vjp, family="regression",
    arrays=("input", "target"),
    options=(_BETA, _REDUCTION), differentiable=("input", "target"),
    summary="quadratic below `beta`, linear above; beta=0 is L1",
    torch=TorchBinding(
        function="smooth_l1_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), *_LEGACY, ("reduction", "mean"), ("beta", 1.0)),
        module="SmoothL1Loss", module_signature=(*_LEGACY, ("reduction", "mean"), ("beta", 1.0)),
    ),
))
register(LossSpec(
    name="huber_loss", function=huber_loss, vjp=_huber_vjp, family="regression", arrays=("input", "target"),
    optional_arrays=("weight",), options=(_DELTA, _REDUCTION),
    differentiable=("input", "target"),
    summary="quadratic below `delta`, linear above (functional `weight`: mean over elements)",
    torch=TorchBinding(
        function="huber_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("reduction", "mean"), ("delta", 1.0), ("weight", None)),
        module="HuberLoss", module_signature=(("reduction", "mean"), ("delta", 1.0)),
    ),
))
