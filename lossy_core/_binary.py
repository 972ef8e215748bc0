"""Binary cross entropy, on probabilities and on logits.

Both are pointwise over ``input``/``target`` of the same shape (torch raises
ValueError otherwise) with an optional ``weight`` that broadcasts to the input,
and reduce with ``'mean'`` over every element (never over the weights).
"""

from __future__ import annotations

from ._autodiff import custom_gradient
from ._backend import dtype_name, namespace, quiet_floating_point, shape_of
from ._common import as_float, gradient_like, spread_upstream, upcast
from ._primitives import log_sigmoid
from ._reductions import check_reduction, finish, reduce
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import (
    data_check, fmt_shape, is_floating, poison, require_broadcastable_to, require_same_dtype,
)

_LEGACY = (("size_average", None), ("reduce", None))
# torch clamps each log term at -100 so that p = 0 or 1 gives a finite loss.
_LOG_FLOOR = -100.0
# torch's binary_cross_entropy_backward divides by max(p (1 - p), EPSILON) with EPSILON = 1e-12
# rounded to float32 (measured on torch 2.13 CPU, float64: d/dp at p=0, y=1 is -1/9.999999960041972e-13).
_GRADIENT_EPSILON = 9.999999960041972e-13


def _bce_backward(xp, arrays, upstream, needs):
    """torch's gradients of the clamped terms (finite at p = 0 and 1 for the input).

    d/dp = (p - y) / max(p (1 - p), 1e-12);  d/dy = log(1 - p) - log(p).
    """
    probability, target = arrays
    grad_probability = grad_target = None
    if needs[0]:
        denominator = xp.clip(probability * (1 - probability), min=_GRADIENT_EPSILON)
        grad_probability = upstream * (probability - target) / denominator
    if needs[1]:
        grad_target = upstream * (xp.log1p(-probability) - xp.log(probability))
    return grad_probability, grad_target


@custom_gradient(_bce_backward)
def _clamped_bce_terms(xp, probability, target):
    """``-(y max(log p, -100) + (1 - y) max(log(1 - p), -100))``, elementwise.

    Differentiating the clamped logs gives 0 * inf = NaN at p = 0 and 1, where
    torch's gradient is finite, hence the gradient written beside it.
    """
    with quiet_floating_point(xp):
        log_p = xp.clip(xp.log(probability), min=_LOG_FLOOR)
        log_not_p = xp.clip(xp.log1p(-probability), min=_LOG_FLOOR)
    return -(target * log_p + (1 - target) * log_not_p)


def bce_with_logits_terms(xp, logits, labels, positive_scale=None):
    """``(1 - y) x - (1 + (pw - 1) y) log sigmoid(x)``: the unweighted per-element loss (log space)."""
    log_sigmoid_logits = log_sigmoid(xp, logits)
    if positive_scale is not None:
        log_sigmoid_logits = log_sigmoid_logits * ((positive_scale - 1) * labels + 1)
    return (1 - labels) * logits - log_sigmoid_logits


def bce_with_logits_derivatives(xp, logits, labels, positive_scale=None):
    """The partial derivatives of ``bce_with_logits_terms`` in ``x`` and ``y``.

    With ``c = 1 + (pw - 1) y``: d/dx = (1 - y) - c sigmoid(-x),  d/dy = (1 - pw) log sigmoid(x) - x.
    ``sigmoid(-x)`` is ``exp(log_sigmoid(-x))``: finite for logits of any magnitude.
    """
    sigmoid_negative = xp.exp(log_sigmoid(xp, -logits))
    if positive_scale is None:
        return (1 - labels) - sigmoid_negative, -logits
    d_input = (1 - labels) - ((positive_scale - 1) * labels + 1) * sigmoid_negative
    return d_input, (1 - positive_scale) * log_sigmoid(xp, logits) - logits


def _require_same_shape_bce(input, target, loss="binary_cross_entropy"):
    if shape_of(target) != shape_of(input):
        raise ValueError(
            f"Using a target size ({fmt_shape(shape_of(target))}) that is different to the input size "
            f"({fmt_shape(shape_of(input))}) is deprecated. Please ensure they have the same size. "
            f"{loss} expects 'target' of the shape of 'input'"
        )


def check_probability_arguments(xp, input, target, weight, *, loss):
    """binary_cross_entropy's checks (shape, dtype, [0, 1] range, weight), raised before compute.

    Returns the traced "outside [0, 1]" masks of ``input`` and ``target`` (None when checked).
    """
    _require_same_shape_bce(input, target, loss)
    # torch checks the dtypes match first: int input + float target is a RuntimeError.
    require_same_dtype(target, input, argument="target", reference_argument="input", loss=loss)
    if not is_floating(xp, input):
        raise NotImplementedError(
            f"\"{loss}\" not implemented for '{dtype_name(input.dtype)}': expected a floating "
            f"point 'input', got {input.dtype}"
        )
    if weight is not None:
        require_broadcastable_to(weight, shape_of(input), argument="weight", target_argument="input",
                                 loss=loss)

    def outside(name):
        def raise_error(_):
            raise RuntimeError(
                f"all elements of {name} should be between 0 and 1: {loss} expects "
                f"probabilities in [0, 1] in '{name}'"
            )
        return raise_error

    # Written as "not inside" so that NaN counts as outside, as in torch.
    bad_input = data_check(xp, ~((input >= 0) & (input <= 1)), raise_error=outside("input"))
    bad_target = data_check(xp, ~((target >= 0) & (target <= 1)), raise_error=outside("target"))
    return bad_input, bad_target


def binary_cross_entropy(input, target, /, *, weight=None, reduction="mean"):
    """Binary cross entropy on probabilities::

        loss_i = -w_i [y_i max(log p_i, -100) + (1 - y_i) max(log(1 - p_i), -100)]

    ``input`` (probabilities) and ``target`` have the same shape and dtype and
    must lie in [0, 1] (NaN input raises too); ``weight`` broadcasts to the
    input. ``'mean'`` divides by the number of elements. The -100 clamp keeps
    ``p = 0, y = 1`` at 100; the input gradient there is finite, as torch's.
    Under tracing, values outside [0, 1] give NaN.
    Reference: ``torch.nn.functional.binary_cross_entropy``.
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    bad_input, bad_target = check_probability_arguments(xp, input, target, weight, loss="binary_cross_entropy")
    terms = _clamped_bce_terms(xp, upcast(xp, input), upcast(xp, target))
    if weight is not None:
        terms = terms * upcast(xp, as_float(xp, weight, input.dtype))
    terms = poison(xp, poison(xp, terms, bad_input), bad_target)
    value = reduce(xp, terms, reduction)
    return finish(xp, value, input.dtype)


def binary_cross_entropy_with_logits(input, target, /, *, weight=None, pos_weight=None, reduction="mean"):
    """Binary cross entropy on logits, in log space::

        loss_i = -w_i [pw y_i log sigmoid(x_i) + (1 - y_i) log sigmoid(-x_i)]
               = w_i [(1 - y_i) x_i - (1 + (pw - 1) y_i) log sigmoid(x_i)]

    ``target`` has the input's shape and a floating dtype (not range-checked,
    as in torch); ``weight`` and ``pos_weight`` broadcast to the input under
    the usual rules, so a ``(C,)`` ``pos_weight`` applies along the last axis.
    Finite for logits of any magnitude. The result has the target's dtype
    (torch's rule). Reference: ``torch.nn.functional.binary_cross_entropy_with_logits``.
    """
    xp = namespace(input, target, weight, pos_weight)
    check_reduction(reduction)
    if shape_of(target) != shape_of(input):
        raise ValueError(
            f"Target size ({fmt_shape(shape_of(target))}) must be the same as input size "
            f"({fmt_shape(shape_of(input))}): binary_cross_entropy_with_logits expects 'target' of the "
            "shape of 'input'"
        )
    if not is_floating(xp, input):
        raise NotImplementedError(
            f"\"log_sigmoid_cpu\" not implemented for '{dtype_name(input.dtype)}': expected floating point "
            f"logits in 'input', got {input.dtype}"
        )
    if not is_floating(xp, target):
        raise RuntimeError(
            f"result type Float can't be cast to the desired output type {dtype_name(target.dtype)}: "
            f"binary_cross_entropy_with_logits expects a floating point 'target', got {target.dtype}"
        )
    for name, extra in (("weight", weight), ("pos_weight", pos_weight)):
        if extra is not None:
            require_broadcastable_to(extra, shape_of(input), argument=name, target_argument="input",
                                     loss="binary_cross_entropy_with_logits")
    dtype = xp.result_type(input, target)
    logits = upcast(xp, as_float(xp, input, dtype))
    labels = upcast(xp, as_float(xp, target, dtype))
    positive_scale = None if pos_weight is None else upcast(xp, as_float(xp, pos_weight, dtype))
    terms = bce_with_logits_terms(xp, logits, labels, positive_scale)
    if weight is not None:
        terms = terms * upcast(xp, as_float(xp, weight, dtype))
    value = reduce(xp, terms, reduction)
    return finish(xp, value, target.dtype)


# -- gradients (LossSpec.vjp; called after the loss accepted the same arguments) -------

def _bce_vjp(xp, arrays, options, upstream):
    """Per element: ``w * upstream'`` times ``_bce_backward`` (torch's clamped-term gradients)."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    probability, label = upcast(xp, input), upcast(xp, target)
    scale = spread_upstream(xp, upstream, input.dtype, probability.shape, options["reduction"], weight)
    grad_input, grad_target = _bce_backward(xp, (probability, label), scale, (True, True))
    return {"input": gradient_like(xp, grad_input, input), "target": gradient_like(xp, grad_target, target)}


def _bce_with_logits_vjp(xp, arrays, options, upstream):
    """``w`` times ``bce_with_logits_derivatives`` (finite for logits of any magnitude)."""
    input, target = arrays["input"], arrays["target"]
    weight, pos_weight = arrays.get("weight"), arrays.get("pos_weight")
    dtype = xp.result_type(input, target)
    logits = upcast(xp, as_float(xp, input, dtype))
    labels = upcast(xp, as_float(xp, target, dtype))
    scale = spread_upstream(xp, upstream, dtype, logits.shape, options["reduction"], weight)
    positive_scale = None if pos_weight is None else upcast(xp, as_float(xp, pos_weight, dtype))
    d_input, d_target = bce_with_logits_derivatives(xp, logits, labels, positive_scale)
    grads = {"input": gradient_like(xp, scale * d_input, input)}
    if is_floating(xp, target):
        grads["target"] = gradient_like(xp, scale * d_target, target)
    return grads


register(LossSpec(
    name="binary_cross_entropy", function=binary_cross_entropy, vjp=_bce_vjp, family="binary",
    arrays=("input", "target"),
    optional_arrays=("weight",), options=(Option("reduction", "mean"),), differentiable=("input", "target"),
    summary="binary cross entropy on probabilities, logs clamped at -100",
    torch=TorchBinding(
        function="binary_cross_entropy",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("weight", None), *_LEGACY, ("reduction", "mean")),
        module="BCELoss", module_signature=(("weight", None), *_LEGACY, ("reduction", "mean")),
        buffers=("weight",), autocast="unsafe_on_cuda",
    ),
))
register(LossSpec(
    name="binary_cross_entropy_with_logits", function=binary_cross_entropy_with_logits, vjp=_bce_with_logits_vjp,
    family="binary",
    arrays=("input", "target"), optional_arrays=("weight", "pos_weight"), options=(Option("reduction", "mean"),),
    differentiable=("input", "target"),
    summary="binary cross entropy on logits in log space (`weight`, `pos_weight`)",
    torch=TorchBinding(
        function="binary_cross_entropy_with_logits",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("weight", None), *_LEGACY,
                   ("reduction", "mean"), ("pos_weight", None)),
        module="BCEWithLogitsLoss",
        module_signature=(("weight", None), *_LEGACY, ("reduction", "mean"), ("pos_weight", None)),
        buffers=("weight", "pos_weight"),
    ),
))
