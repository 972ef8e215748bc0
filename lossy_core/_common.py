"""Small pieces shared by the loss families: dtype policy and pointwise set-up."""

from __future__ import annotations

from ._backend import shape_of, warn_user
from ._reductions import reduction_vjp
from ._validation import broadcast_shape, fmt_shape, is_floating


def compute_dtype(xp, dtype):
    """float16/bfloat16 are computed in float32 (as torch's CPU kernels accumulate)."""
    for name in ("float16", "bfloat16"):
        # getattr: array_api_strict has no float16. The None test matters: numpy's
        # ``dtype('float64') == None`` is True (None means the default dtype there).
        low = getattr(xp, name, None)
        if low is not None and dtype == low:
            return xp.float32
    return dtype


def upcast(xp, x):
    """``x`` in its compute dtype (float32 for half precision)."""
    if x.dtype == xp.float32 or x.dtype == xp.float64:  # the common case, without the lookups below
        return x
    target = compute_dtype(xp, x.dtype)
    return x if target == x.dtype else xp.astype(x, target)


def as_float(xp, x, dtype):
    """``x`` in floating ``dtype`` (integer weights are accepted, as torch does)."""
    return x if x.dtype == dtype else xp.astype(x, dtype)


def spread_upstream(xp, upstream, dtype, shape, reduction, weight=None):
    """The opening of a vector-Jacobian product: the gradient of the reduced output, in the
    compute dtype of ``dtype``, spread over the per-element loss of ``shape`` by ``reduction``
    (``reduction_vjp``: divided by the element count for ``'mean'``), times the per-element
    ``weight`` when there is one."""
    scale = reduction_vjp(xp, upcast(xp, as_float(xp, upstream, dtype)), shape, reduction)
    return scale if weight is None else scale * upcast(xp, as_float(xp, weight, dtype))


def broadcast_pair(xp, input, target, *, loss, warn=True):
    """Broadcast ``input`` and ``target`` as torch's pointwise losses do.

    torch warns when the shapes differ ("This will likely lead to incorrect
    results due to broadcasting") and raises RuntimeError when they cannot be
    broadcast.
    """
    input_shape, target_shape = shape_of(input), shape_of(target)
    if input_shape == target_shape:
        return input, target
    shape = broadcast_shape(input_shape, target_shape)
    if shape is None:
        raise RuntimeError(
            f"{loss}: the shape of 'target', {fmt_shape(target_shape)}, must broadcast with the shape of "
            f"'input', {fmt_shape(input_shape)}"
        )
    if warn:
        warn_user(
            f"Using a target size ({fmt_shape(target_shape)}) that is different to the input size "
            f"({fmt_shape(input_shape)}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=4,
        )
    return xp.broadcast_to(input, shape), xp.broadcast_to(target, shape)


def require_weight_like_input(weight, input, *, loss):
    """The functional ``weight`` of l1/mse/huber must have exactly the input's shape (ValueError)."""
    if shape_of(weight) != shape_of(input):
        raise ValueError(
            f"Weights and input must have the same size. {loss}: expected 'weight' of shape "
            f"{fmt_shape(shape_of(input))} (the shape of 'input'), got {fmt_shape(shape_of(weight))}"
        )


def floating_result_type(xp, *arrays):
    """The promoted dtype of ``arrays``, counting only floating ones."""
    floats = [a for a in arrays if a is not None and is_floating(xp, a)]
    return xp.result_type(*floats)


def sum_to_shape(xp, gradient, shape):
    """``gradient`` summed over the axes that broadcasting added to an array of ``shape``."""
    shape = tuple(shape)
    if tuple(gradient.shape) == shape:
        return gradient
    extra = gradient.ndim - len(shape)
    if extra:
        gradient = xp.sum(gradient, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and gradient.shape[i] != 1)
    if axes:
        gradient = xp.sum(gradient, axis=axes, keepdims=True)
    return xp.reshape(gradient, shape)


def gradient_like(xp, gradient, array):
    """``gradient`` reduced to ``array``'s shape (undoing broadcasting) in ``array``'s dtype."""
    gradient = sum_to_shape(xp, gradient, array.shape)
    return gradient if gradient.dtype == array.dtype else xp.astype(gradient, array.dtype)
