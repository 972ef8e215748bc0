"""Multi-label and multi-class margin losses: torch's MultiLabelSoftMarginLoss,
MultiLabelMarginLoss and MultiMarginLoss.

The margin losses take ``input`` of shape ``()``, ``(C)`` or ``(N, C)`` (torch:
"non-empty vector or matrix with optional 0-dim batch size") and divide each
sample's sum by C. The soft-margin loss takes any ``(..., C)`` input: the last
axis is the class axis.
"""

from __future__ import annotations

import math

from ._backend import (
    default_integer_dtype, device_of, dtype_name, is_concrete, namespace, quiet_floating_point, shape_of, size_of,
)
from ._common import as_float, floating_result_type, gradient_like, spread_upstream, upcast
from ._primitives import log_sigmoid, one_hot, take_along_axis, take_entries
from ._reductions import check_reduction, finish, reduce
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import broadcast_shape, data_check, fmt_shape, index_bounds, is_floating, poison

_LEGACY = (("size_average", None), ("reduce", None))


# -- multilabel_soft_margin_loss ------------------------------------------------------

def _soft_margin_setup(xp, input, target, weight):
    dtype = floating_result_type(xp, input, target, weight)
    arrays = [upcast(xp, as_float(xp, a, dtype)) for a in (input, target)]
    if weight is not None:
        arrays.append(upcast(xp, as_float(xp, weight, dtype)))
    shape = broadcast_shape(*(shape_of(a) for a in arrays))
    arrays = [xp.broadcast_to(a, shape) for a in arrays]
    return dtype, shape, arrays


def multilabel_soft_margin_loss(input, target, /, *, weight=None, reduction="mean"):
    """Multi-label one-versus-all loss on logits (``torch.nn.MultiLabelSoftMarginLoss``)::

        loss_n = (1 / C) sum_c w_c [(1 - y_nc) x_nc - log sigmoid(x_nc)]
               = -(1 / C) sum_c w_c [y_nc log sigmoid(x_nc) + (1 - y_nc) log sigmoid(-x_nc)]

    ``input`` is ``(..., C)``: the last axis holds the C classes, and ``target``
    and ``weight`` broadcast with it (torch broadcasts; it does not check shapes).
    The per-sample losses have the leading shape ``(...)`` and are reduced over
    it. The result has the promoted dtype of the floating arguments (an integer
    target is accepted). Log space: finite for logits of any magnitude.
    Reference: ``torch.nn.functional.multilabel_soft_margin_loss``.
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    if input.ndim < 1:
        raise IndexError(
            "Dimension specified as -1 but tensor has no dimensions: multilabel_soft_margin_loss needs "
            "'input' of shape (..., C), got a 0-d array"
        )
    if not is_floating(xp, input):
        raise NotImplementedError(
            f"\"log_sigmoid_cpu\" not implemented for '{dtype_name(input.dtype)}': multilabel_soft_margin_loss "
            f"expects floating point logits in 'input', got {input.dtype}"
        )
    shapes = [shape_of(input), shape_of(target)] + ([shape_of(weight)] if weight is not None else [])
    if broadcast_shape(*shapes) is None:
        raise RuntimeError(
            f"The size of tensor a must match the size of tensor b: multilabel_soft_margin_loss needs 'target' "
            f"{fmt_shape(shapes[1])}" + (f" and 'weight' {fmt_shape(shapes[2])}" if weight is not None else "")
            + f" to broadcast with 'input' {fmt_shape(shapes[0])}"
        )
    dtype, _, arrays = _soft_margin_setup(xp, input, target, weight)
    logits, labels = arrays[0], arrays[1]
    terms = (1 - labels) * logits - log_sigmoid(xp, logits)
    if weight is not None:
        terms = terms * arrays[2]
    classes = shape_of(input)[-1]
    with quiet_floating_point(xp):  # C = 0: 0 / 0 = NaN, as in torch
        per_sample = xp.sum(terms, axis=input.ndim - 1) / classes
    value = reduce(xp, per_sample, reduction)
    return finish(xp, value, dtype)


def _soft_margin_vjp(xp, arrays, options, upstream):
    """d/dx = w (sigmoid(x) - y) / C,  d/dy = -w x / C, times the reduction's upstream."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    dtype, shape, parts = _soft_margin_setup(xp, input, target, weight)
    logits, labels = parts[0], parts[1]
    axis = input.ndim - 1
    per_sample_shape = shape[:axis] + shape[axis + 1:]
    scale = spread_upstream(xp, upstream, dtype, per_sample_shape, options["reduction"])
    scale = xp.broadcast_to(xp.expand_dims(scale, axis=axis), shape) / shape_of(input)[-1]
    if weight is not None:
        scale = scale * parts[2]
    sigmoid = xp.exp(log_sigmoid(xp, logits))
    grads = {"input": gradient_like(xp, scale * (sigmoid - labels), input)}
    if is_floating(xp, target):
        grads["target"] = gradient_like(xp, -scale * logits, target)
    return grads


# -- shared by the two margin losses --------------------------------------------------

def _check_margin_input(xp, input, *, loss, kernel):
    shape = shape_of(input)
    size = 1
    for n in shape:
        size *= n
    if not ((size > 0 and input.ndim <= 2) or (input.ndim == 2 and shape[1] > 0)):
        raise RuntimeError(
            f"Expected non-empty vector or matrix with optional 0-dim batch size, but got: {fmt_shape(shape)} "
            f"({loss} needs 'input' of shape (), (C) or (N, C) with C > 0)"
        )
    if not is_floating(xp, input):
        raise NotImplementedError(
            f"\"{kernel}\" not implemented for '{dtype_name(input.dtype)}': {loss} expects a floating point "
            f"'input', got {input.dtype}"
        )


def _check_long_target(xp, target, *, loss):
    allowed = (xp.int64, default_integer_dtype(xp))
    if not any(target.dtype == d for d in allowed):
        raise RuntimeError(
            f"expected scalar type Long but found {dtype_name(target.dtype)}: {loss} expects 'target' of "
            f"class indices in int64, got {target.dtype}"
        )


def _frames(input):
    """``(N, C)`` of the input as the margin kernels see it (a 0-d input is one class)."""
    shape = shape_of(input)
    if input.ndim == 2:
        return shape[0], shape[1]
    return 1, (shape[0] if shape else 1)


def _out_of_range(loss, argument_message):
    def raise_error(_):
        raise RuntimeError(argument_message)
    return raise_error


# -- multi_margin_loss ----------------------------------------------------------------

def _multi_margin_check_p(p):
    if p != 1 and p != 2:
        raise ValueError(f"only p == 1 and p == 2 supported: multi_margin_loss expects 'p' 1 or 2, got p={p!r}")


def _labels_in_range(xp, target, lowest, classes):
    """Whether ``target`` can be read now and every entry lies in ``[lowest, classes)`` (one
    min/max read): the out-of-range masks are then skipped."""
    if not (is_concrete(target) and size_of(target) > 0):
        return False
    low, high = index_bounds(xp, target)
    return low >= lowest and high < classes


def _multi_margin_terms(xp, input, target, weight, p, margin, derivative=False, in_range=False):
    """``(safe, inside, h, dh)``: the labels as gather indices (0 where out of range), ``inside``
    marking the labels in range (None when ``in_range`` says all are), per class ``h_ni`` (zero
    at i = y_n) and, with ``derivative`` (for the gradient; else None), ``dh/dz``; both ``(N, C)``."""
    frames, classes = _frames(input)
    x = xp.reshape(upcast(xp, input), (frames, classes))
    labels = xp.reshape(target, (frames,))
    if in_range:
        inside, safe = None, labels
    else:
        inside = (labels >= 0) & (labels < classes)
        safe = xp.where(inside, labels, xp.zeros_like(labels))
    picked = take_along_axis(xp, x, xp.expand_dims(safe, axis=1), axis=1)
    with quiet_floating_point(xp):  # inf - inf: a NaN hinge, skipped below as torch's kernel skips it
        z = margin - picked + x
    active = (z > 0) & (xp.expand_dims(safe, axis=1) != xp.arange(classes, dtype=safe.dtype, device=device_of(safe)))
    zero = xp.zeros_like(z)
    h = xp.where(active, z if p == 1 else z * z, zero)
    dh = xp.where(active, xp.ones_like(z) if p == 1 else 2 * z, zero) if derivative else None
    if weight is not None:
        w = xp.expand_dims(take_entries(xp, upcast(xp, weight), safe), axis=1)
        h = h * w
        dh = None if dh is None else dh * w
    return safe, inside, h, dh


def multi_margin_loss(input, target, /, *, weight=None, p=1, margin=1.0, reduction="mean"):
    """Multi-class hinge loss (Weston-Watkins; ``torch.nn.MultiMarginLoss``)::

        loss_n = (1 / C) sum_{i != y_n} w_{y_n} max(0, margin - x_{n,y_n} + x_{n,i})^p

    ``input`` is ``()``, ``(C)`` or ``(N, C)``; ``target`` holds N int64 class
    indices (``(N)``, or ``()``/``(1)`` for one sample); ``weight`` is ``(C)`` in
    the input's dtype. ``p`` is 1 or 2. With ``'none'`` the result is ``(N)``
    for a 1-D target, ``()`` for a 0-d one. Under tracing, a class index out of
    range gives NaN. float16/bfloat16 are computed in float32 (torch's CPU kernel
    refuses them; its CUDA kernel accepts them).
    Reference: ``torch.nn.functional.multi_margin_loss``.
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    _multi_margin_check_p(p)
    if weight is not None and weight.ndim != 1:
        raise ValueError(
            f"weight must be one-dimensional: multi_margin_loss expects 'weight' of shape (C), got "
            f"{fmt_shape(shape_of(weight))}"
        )
    _check_margin_input(xp, input, loss="multi_margin_loss", kernel="multi_margin_loss_cpu_kernel")
    frames, classes = _frames(input)
    if target.ndim > 1 or (shape_of(target)[0] if target.ndim else 1) != frames:
        raise RuntimeError(
            f"multi_margin_loss: target tensor should be 1-D with size equal to the number of input samples "
            f"(batch size). Expected target size [{frames}], but got {fmt_shape(shape_of(target))}. Input has "
            f"shape {fmt_shape(shape_of(input))}."
        )
    _check_long_target(xp, target, loss="multi_margin_loss")
    if weight is not None:
        if shape_of(weight)[0] != classes:
            raise RuntimeError(
                f"inconsistent weight size, expected {classes} but got {fmt_shape(shape_of(weight))} "
                f"(multi_margin_loss: 'weight' needs one entry per class)"
            )
        if weight.dtype != input.dtype:
            raise RuntimeError(
                f"expected scalar type {dtype_name(input.dtype)} but found {dtype_name(weight.dtype)}: "
                f"multi_margin_loss expects 'weight' in the dtype of 'input' ({input.dtype}), got {weight.dtype}"
            )
    in_range = _labels_in_range(xp, target, 0, classes)
    _, inside, h, _ = _multi_margin_terms(xp, input, target, weight, p, margin, in_range=in_range)
    bad = None if in_range else data_check(xp, ~inside, raise_error=_out_of_range(
        "multi_margin_loss", f"target out of range: multi_margin_loss expects class indices in [0, {classes})"))
    per_sample = poison(xp, xp.sum(h, axis=1) / classes, bad)
    per_sample = xp.reshape(per_sample, (frames,) if target.ndim == 1 else ())
    value = reduce(xp, per_sample, reduction)
    return finish(xp, value, input.dtype)


def _multi_margin_vjp(xp, arrays, options, upstream):
    """d/dx_i = w_y dh_i / C for i != y and d/dx_y = -sum_i w_y dh_i / C, with dh = 1 or 2 z on z > 0."""
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    frames, classes = _frames(input)
    safe, _, _, dh = _multi_margin_terms(xp, input, target, weight, options["p"], options["margin"],
                                         derivative=True)
    out_shape = (frames,) if target.ndim == 1 else ()
    scale = spread_upstream(xp, upstream, input.dtype, out_shape, options["reduction"])
    dz = dh * xp.reshape(scale, (frames, 1)) / classes
    grad = dz - one_hot(xp, safe, classes, dz.dtype) * xp.sum(dz, axis=1, keepdims=True)
    return {"input": gradient_like(xp, xp.reshape(grad, shape_of(input)), input)}


# -- multilabel_margin_loss -----------------------------------------------------------

def _multilabel_margin_terms(xp, input, target, in_range=False):
    """``(z, is_slot_class, inside)`` on the ``(N, K, C)`` grid of target slot k against class i.

    ``z = 1 - x_j + x_i`` (j the slot's class), made -inf or NaN where the pair does not count
    (the slot is at or after the first -1, or i is a target class), so ``z > 0`` marks exactly
    the active hinges, as torch's kernel skips NaN. ``is_slot_class`` marks each counted slot's
    class; ``inside`` the entries in ``[-1, C)`` (None when ``in_range`` says all are).
    """
    frames, classes = _frames(input)
    x = xp.reshape(upcast(xp, input), (frames, classes))
    labels = xp.reshape(target, (frames, classes))
    position = xp.arange(classes, dtype=labels.dtype, device=device_of(labels))
    # The targets are the entries before the first -1: no -1 at or before their position. (A
    # running count, not the min of the -1 positions: torch's amin of int64 along a short axis
    # is a scalar loop, 0.36 ms at 4092x7, the whole loss natively 0.1 ms.)
    counted = xp.cumulative_sum(xp.astype(labels == -1, xp.int32), axis=1) == 0
    inside = None
    if not in_range:
        inside = (labels >= -1) & (labels < classes)
        counted = counted & inside
    safe = xp.where(counted, labels, xp.zeros_like(labels))
    # A class index no class has for the slots not counted, so they mark nothing.
    slot_class = xp.where(counted, labels, xp.full_like(labels, classes))
    is_slot_class = xp.expand_dims(slot_class, axis=2) == position  # (N, K, C)
    is_target = xp.any(is_slot_class, axis=1)  # (N, C)
    # The masks go into the operands, not onto the (N, K, C) grid: a slot not counted hinges on
    # +inf, a target class is -inf, and z is then -inf or NaN (fewer passes over the grid).
    picked = take_along_axis(xp, x, safe, axis=1)  # (N, K)
    picked = xp.where(counted, picked, xp.full_like(picked, math.inf))
    others = xp.where(is_target, xp.full_like(x, -math.inf), x)
    with quiet_floating_point(xp):  # inf - inf where a masked pair meets an infinite logit
        z = (1 - xp.expand_dims(picked, axis=2)) + xp.expand_dims(others, axis=1)
    return z, is_slot_class, inside


def multilabel_margin_loss(input, target, /, *, reduction="mean"):
    """Multi-label hinge loss (``torch.nn.MultiLabelMarginLoss``)::

        loss_n = (1 / C) sum_{j in T_n} sum_{i not in T_n} max(0, 1 - (x_{n,j} - x_{n,i}))

    ``target`` is int64 of the input's shape (``()``, ``(C)`` or ``(N, C)``):
    each row lists the target classes T_n, ended by the first -1 (later entries
    are ignored, but every entry must lie in [-1, C)). A class listed twice counts
    twice, as in torch. With ``'none'`` the result is ``(N)`` for a 2-D input,
    ``()`` otherwise. Under tracing, an index out of range gives NaN. float16/
    bfloat16 are computed in float32 (torch's CPU kernel refuses them).
    Reference: ``torch.nn.functional.multilabel_margin_loss``.
    """
    xp = namespace(input, target)
    check_reduction(reduction)
    _check_margin_input(xp, input, loss="multilabel_margin_loss", kernel="multilabel_margin_loss_forward_out_frame")
    _check_long_target(xp, target, loss="multilabel_margin_loss")
    if shape_of(target) != shape_of(input):
        raise RuntimeError(
            f"inconsistent target size: {fmt_shape(shape_of(target))} for input of size: "
            f"{fmt_shape(shape_of(input))} (multilabel_margin_loss expects 'target' of the shape of 'input')"
        )
    frames, classes = _frames(input)
    in_range = _labels_in_range(xp, target, -1, classes)
    z, _, inside = _multilabel_margin_terms(xp, input, target, in_range=in_range)
    bad = None if in_range else data_check(xp, ~xp.all(inside, axis=1), raise_error=_out_of_range(
        "multilabel_margin_loss",
        f"argument #2 'target' is out of range: multilabel_margin_loss expects entries in [-1, {classes})"))
    hinge = xp.sum(xp.where(z > 0, z, xp.zeros((), dtype=z.dtype, device=device_of(z))), axis=(1, 2)) / classes
    per_sample = xp.reshape(poison(xp, hinge, bad), (frames,) if input.ndim == 2 else ())
    value = reduce(xp, per_sample, reduction)
    return finish(xp, value, input.dtype)


def _multilabel_margin_vjp(xp, arrays, options, upstream):
    """d/dx_i = (1/C) #{j : hinge (j, i) active};  d/dx_j -= (1/C) #{i : hinge (j, i) active} per slot of j."""
    input = arrays["input"]
    frames, classes = _frames(input)
    z, is_slot_class, _ = _multilabel_margin_terms(xp, input, arrays["target"])
    out_shape = (frames,) if input.ndim == 2 else ()
    scale = spread_upstream(xp, upstream, input.dtype, out_shape, options["reduction"])
    weights = xp.astype(z > 0, scale.dtype) * xp.reshape(scale, (frames, 1, 1)) / classes  # (N, K, C)
    per_slot = xp.sum(weights, axis=2, keepdims=True)  # (N, K, 1)
    grad = xp.sum(weights, axis=1) - xp.sum(xp.astype(is_slot_class, scale.dtype) * per_slot, axis=1)
    return {"input": gradient_like(xp, xp.reshape(grad, shape_of(input)), input)}


# -- registration ---------------------------------------------------------------------

register(LossSpec(
    name="multilabel_soft_margin_loss", function=multilabel_soft_margin_loss, vjp=_soft_margin_vjp,
    family="multilabel", arrays=("input", "target"), optional_arrays=("weight",),
    options=(Option("reduction", "mean"),), differentiable=("input", "target"),
    summary="multi-label one-versus-all logistic loss, mean over the last (class) axis (`weight`)",
    torch=TorchBinding(
        function="multilabel_soft_margin_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("weight", None), *_LEGACY, ("reduction", "mean")),
        module="MultiLabelSoftMarginLoss",
        module_signature=(("weight", None), *_LEGACY, ("reduction", "mean")),
        buffers=("weight",), autocast="none",
    ),
))
register(LossSpec(
    name="multilabel_margin_loss", function=multilabel_margin_loss, vjp=_multilabel_margin_vjp,
    family="multilabel", arrays=("input", "target"), options=(Option("reduction", "mean"),),
    summary="multi-label hinge loss, targets listed before a -1 pad",
    torch=TorchBinding(
        function="multilabel_margin_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), *_LEGACY, ("reduction", "mean")),
        module="MultiLabelMarginLoss", module_signature=(*_LEGACY, ("reduction", "mean")),
    ),
))
register(LossSpec(
    name="multi_margin_loss", function=multi_margin_loss, vjp=_multi_margin_vjp, family="multilabel",
    arrays=("input", "target"), optional_arrays=("weight",),
    options=(Option("p", 1), Option("margin", 1.0, traced=True), Option("reduction", "mean")),
    summary="multi-class hinge loss (Weston-Watkins) / C (`p` 1 or 2, `margin`, `weight`)",
    torch=TorchBinding(
        function="multi_margin_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("p", 1), ("margin", 1.0), ("weight", None),
                   *_LEGACY, ("reduction", "mean")),
        module="MultiMarginLoss",
        module_signature=(("p", 1), ("margin", 1.0), ("weight", None), *_LEGACY, ("reduction", "mean")),
        buffers=("weight",),
    ),
))
