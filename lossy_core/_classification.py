"""Multi-class losses over a class axis: negative log-likelihood and cross entropy.

Shapes follow torch: ``input`` is ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``
with classes on axis 1 (axis 0 for a single sample); a class-index ``target``
is ``()``, ``(N)`` or ``(N, d1, ..., dk)``. A target with the input's exact
shape holds class probabilities (cross_entropy only).
"""

from __future__ import annotations

from ._backend import (
    default_integer_dtype, device_of, dtype_name, is_concrete, is_number, namespace, quiet_floating_point, shape_of,
    size_of,
)
from ._common import as_float, gradient_like, spread_upstream, upcast
from ._primitives import class_axis_view, log_softmax, log_softmax_picks, one_hot, take_along_axis, take_entries
from ._reductions import check_reduction, divide, finish, reduce, reduce_weighted, reduction_vjp
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import (
    data_check, first_value, fmt_shape, index_bounds, is_floating, is_integer, poison, require_in_range,
)

_LEGACY = (("size_average", None), ("reduce", None))


def _class_axis(input) -> int:
    return 0 if input.ndim == 1 else 1


def _check_input(xp, input, *, loss, kernel):
    if input.ndim < 1:
        raise ValueError(
            f"Expected 1 or more dimensions (got 0): {loss} needs 'input' of shape (C), (N, C) or "
            f"(N, C, d1, ..., dk), got a 0-d array"
        )
    if not is_floating(xp, input):
        raise NotImplementedError(
            f'"{kernel}" not implemented for \'{dtype_name(input.dtype)}\': {loss} expected a floating point '
            f"'input', got {input.dtype}"
        )


def _check_weight(xp, weight, input, num_classes, *, loss):
    if weight is None:
        return
    if weight.ndim != 1 or shape_of(weight)[0] != num_classes:
        raise RuntimeError(
            f"weight tensor should be defined either for all {num_classes} classes or no classes but got weight "
            f"tensor of shape: {fmt_shape(shape_of(weight))} ({loss}: expected 'weight' of shape "
            f"[{num_classes}])"
        )
    if weight.dtype != input.dtype:
        raise RuntimeError(
            f"expected scalar type {dtype_name(input.dtype)} but found {dtype_name(weight.dtype)}: {loss} expects "
            f"'weight' in the dtype of 'input' ({input.dtype}), got {weight.dtype}"
        )


def _check_index_target(xp, input, target, *, loss):
    """torch's shape and dtype rules for class-index targets (nll_loss_nd)."""
    # int64 first: the common case, without building the set (a per-call cost on small batches).
    # Compared with ==, not by hash: numpy's dtype('uint8') equals np.uint8 but hashes differently.
    allowed = (xp.int64, xp.uint8, default_integer_dtype(xp)) if target.dtype != xp.int64 else ()
    if allowed and (not is_integer(xp, target) or not any(target.dtype == d for d in allowed)):
        names = " or ".join(sorted({dtype_name(d) for d in allowed}))
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {dtype_name(target.dtype)}: {loss} expects "
            f"class indices in 'target' with dtype {names}, got {target.dtype}"
        )
    input_shape, target_shape = shape_of(input), shape_of(target)
    if input.ndim == 1:
        if target.ndim > 1:
            raise RuntimeError(
                "0D or 1D target tensor expected, multi-target not supported: for 'input' of shape "
                f"{fmt_shape(input_shape)} {loss} expects 'target' of shape [] or [1], got {fmt_shape(target_shape)}"
            )
        if target.ndim == 1 and target_shape[0] != 1:
            raise ValueError(
                f"For 1D input, 1D target must have size 1, but got target size: {target_shape[0]} ({loss}: "
                f"'target' of shape {fmt_shape(target_shape)} for 'input' of shape {fmt_shape(input_shape)})"
            )
        return
    target_batch = target_shape[0] if target.ndim else 0
    if target_batch != input_shape[0]:
        raise ValueError(
            f"Expected input batch_size ({input_shape[0]}) to match target batch_size ({target_batch}). "
            f"{loss}: 'input' has shape {fmt_shape(input_shape)}, 'target' has shape {fmt_shape(target_shape)}"
        )
    expected = (input_shape[0],) + input_shape[2:]
    if input.ndim == 2 and target.ndim != 1:
        raise RuntimeError(
            "0D or 1D target tensor expected, multi-target not supported: for 'input' of shape "
            f"{fmt_shape(input_shape)} {loss} expects 'target' of shape {fmt_shape(expected)} (or class "
            f"probabilities of shape {fmt_shape(input_shape)}), got {fmt_shape(target_shape)}"
        )
    if target_shape != expected:
        raise RuntimeError(
            f"Expected target size {fmt_shape(expected)}, got {fmt_shape(target_shape)}: {loss} expects 'target' "
            f"of shape (N, d1, ..., dk) for 'input' of shape {fmt_shape(input_shape)}"
        )


def _check_indices(xp, target, num_classes, ignore_index, *, loss):
    """``(kept, out_of_range, bad)`` for class indices: raises IndexError (torch's) for a readable
    index outside [0, C) that is not ``ignore_index``; ``bad`` is the mask to poison under tracing.

    For readable targets that are all in range and none ignored -- the common case --
    ``kept`` and ``out_of_range`` are None: one min/max read replaces the masks, and the
    formula needs no ``where`` (the per-call cost of small batches, performance-findings.md).
    """
    if is_concrete(target) and size_of(target) > 0:
        low, high = index_bounds(xp, target)
        if low >= 0 and high < num_classes and not low <= ignore_index <= high:
            return None, None, None
    # A Python int outside the target dtype's range (uint8 vs ignore_index=-100) cannot be compared
    # in array_api_strict (OverflowError); no target can equal it, or reach it.
    info = xp.iinfo(target.dtype)
    if info.min <= ignore_index <= info.max:
        kept = target != ignore_index
    else:
        kept = xp.ones(shape_of(target), dtype=xp.bool, device=device_of(target))
    too_large = target >= num_classes if num_classes <= info.max else xp.zeros_like(kept)
    out_of_range = kept & ((target < 0) | too_large)

    def out_of_bounds(bad):
        value = first_value(xp, target, bad)
        raise IndexError(
            f"Target {value} is out of bounds. {loss}: expected class indices in [0, {num_classes - 1}] "
            f"(or ignore_index={ignore_index}) in 'target', got {value}"
        )

    return kept, out_of_range, data_check(xp, out_of_range, raise_error=out_of_bounds)


def _index_array(xp, target):
    """Class indices in the dtype gathers take (int64; the default integer dtype without x64)."""
    if target.dtype == xp.int64:
        return target
    return xp.astype(target, default_integer_dtype(xp))


def _class_index(xp, target, checked):
    """The indices to gather: ``target``, with ignored and out-of-range positions set to class 0
    (masked afterwards, so no index wraps) unless ``checked`` found none."""
    kept, out_of_range, _ = checked
    index = _index_array(xp, target)
    if kept is None:
        return index
    return xp.where(kept & ~out_of_range, index, xp.zeros_like(index))


def _weighted_class_terms(xp, picked, index, weight, kept, negate=True):
    """``(terms, target_weights)``: ``-w[y] * picked``, 0 where not ``kept`` (None: all kept).

    ``target_weights`` (``w[y]``, 0 where ignored) sum to the ``'mean'`` denominator; None
    when there is no weight and every position is kept (the denominator is then the count).
    ``negate=False`` (only with every position kept) leaves the sign to the reduction
    (``_reduce_class_terms(negated=True)``): one autograd node fewer per call.
    """
    if kept is None:
        signed = -picked if negate else picked
        if weight is None:
            return signed, None
        target_weights = take_entries(xp, upcast(xp, weight), index)
        return signed * target_weights, target_weights
    zeros = xp.zeros_like(picked)
    if weight is None:
        return xp.where(kept, -picked, zeros), xp.astype(kept, picked.dtype)
    target_weights = xp.where(kept, take_entries(xp, upcast(xp, weight), index), zeros)
    return xp.where(kept, -picked * target_weights, zeros), target_weights


def _class_terms(xp, values, target, weight, ignore_index, *, loss, checked=None):
    """Per-position ``-w[y] * values[y]`` (0 where ``y == ignore_index``), on a batched layout.

    ``values`` is ``(N, C, ...)`` and ``target`` ``(N, ...)``. Returns
    ``(terms, target_weights, kept, bad)`` (see _weighted_class_terms; ``kept`` None when
    every position is kept); ``bad`` is None, or under tracing the mask of out-of-range
    indices to poison with NaN (torch raises IndexError for them).
    """
    if checked is None:  # ``checked``: the result of _check_indices, run before any compute
        checked = _check_indices(xp, target, shape_of(values)[1], ignore_index, loss=loss)
    index = _class_index(xp, target, checked)
    picked = xp.squeeze(take_along_axis(xp, values, xp.expand_dims(index, axis=1), axis=1), axis=1)
    terms, target_weights = _weighted_class_terms(xp, picked, index, weight, checked[0])
    return terms, target_weights, checked[0], checked[2]


def _kept_mask(xp, kept, target):
    """``kept`` as a mask (None from _class_terms means every position is kept)."""
    if kept is None:
        return xp.ones(shape_of(target), dtype=xp.bool, device=device_of(target))
    return kept


def _as_batch(xp, input, target):
    """A single sample ``(C)`` / ``()`` as a batch of one."""
    if input.ndim != 1:
        return input, target, False
    return xp.expand_dims(input, axis=0), xp.reshape(target, (1,)), True


def _reduce_class_terms(xp, terms, target_weights, reduction, single, out_dtype, negated=False, count=None):
    """Reduce the per-position terms; ``negated``: ``terms`` hold ``-loss`` (the sign is applied
    here, folded into the ``'mean'`` division: ``-(s / n)`` is exactly ``s / -n``). With
    ``count`` (no weights, every position kept), ``terms`` is already their sum over ``count``
    positions and ``reduction`` is ``'sum'``, ``'mean'`` or ``'parts'`` (whose denominator stays
    positive: the sign goes to the numerator)."""

    def signed(value):
        return -value if negated else value

    if count is not None:
        if reduction == "mean":
            value = terms / (-count if negated else count)
        else:
            value = divide(xp, signed(terms), count, reduction) if reduction == "parts" else signed(terms)
    elif reduction == "none" and single:
        value = signed(xp.reshape(terms, ()))
    elif reduction == "none":
        value = signed(terms)
    elif reduction == "sum":
        value = signed(xp.sum(terms))
    elif reduction == "parts":
        denominator = size_of(terms) if target_weights is None else xp.sum(target_weights)
        value = divide(xp, signed(xp.sum(terms)), denominator, reduction)
    elif target_weights is None:  # no weights, nothing ignored: the denominator is the position count
        count = size_of(terms)
        value = reduce_weighted(xp, terms, reduction, -count if negated else count)
    else:
        total = xp.sum(target_weights)
        value = reduce_weighted(xp, terms, reduction, -total if negated else total)
    return finish(xp, value, out_dtype)


def nll_loss(input, target, /, *, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class indices: ``loss_n = -weight[y_n] * input[n, y_n]``.

    ``input`` holds log-probabilities, shape ``(C)``, ``(N, C)`` or
    ``(N, C, d1..dk)``; ``target`` holds class indices, ``()``, ``(N)`` or
    ``(N, d1..dk)``, int64 or uint8 (or the namespace's default integer dtype,
    e.g. int32 in jax without x64). Positions with ``target == ignore_index``
    give 0 and do not count. ``'mean'`` divides by the summed weights of the
    kept targets: NaN when every target is ignored.
    Reference: ``torch.nn.functional.nll_loss``.
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    _check_input(xp, input, loss="nll_loss", kernel="nll_loss_forward")
    _check_index_target(xp, input, target, loss="nll_loss")
    _check_weight(xp, weight, input, shape_of(input)[_class_axis(input)], loss="nll_loss")
    batched_input, batched_target, single = _as_batch(xp, input, target)
    terms, target_weights, _, bad = _class_terms(
        xp, upcast(xp, batched_input), batched_target, weight, ignore_index, loss="nll_loss"
    )
    terms = poison(xp, terms, bad)
    return _reduce_class_terms(xp, terms, target_weights, reduction, single, input.dtype)


def _label_smoothing_message(value):
    return f"label_smoothing must be between 0.0 and 1.0. Got: {value}." if is_number(value) else ""


def _check_label_smoothing(value):
    """torch rejects label_smoothing > 1; values <= 0 mean no smoothing (torch smooths only when > 0)."""
    return require_in_range(
        value, argument="label_smoothing", loss="cross_entropy", high=1.0,
        torch_message=_label_smoothing_message(value),
    )


_LABEL_SMOOTHING = Option("label_smoothing", 0.0, traced=True, check=_check_label_smoothing,
                          specialize_default=True)


def _smoothing_amount(xp, label_smoothing):
    """The effective smoothing: torch smooths only when ``label_smoothing > 0``."""
    if is_number(label_smoothing):
        return max(float(label_smoothing), 0.0)
    return xp.maximum(label_smoothing, xp.zeros_like(label_smoothing))


def _probability_cross_entropy(xp, input, target, weight, reduction, label_smoothing, *, bad_smoothing):
    class_axis = _class_axis(input)
    num_classes = shape_of(input)[class_axis]
    if not is_floating(xp, target):
        raise RuntimeError(
            "Expected floating point type for target with class probabilities, got "
            f"{dtype_name(target.dtype)}: cross_entropy reads a 'target' of the input's shape "
            f"{fmt_shape(shape_of(input))} as class probabilities"
        )
    if weight is not None and (weight.ndim != 1 or shape_of(weight)[0] != num_classes):
        raise RuntimeError(
            f"cross_entropy: weight tensor should be defined either for all {num_classes} classes or no classes "
            f"but got weight tensor of shape: {fmt_shape(shape_of(weight))}"
        )
    out_dtype = xp.result_type(input, target)
    log_probs = log_softmax(xp, upcast(xp, input), class_axis)
    probabilities = upcast(xp, target)
    amount = _smoothing_amount(xp, label_smoothing)
    if not (is_number(amount) and amount == 0):
        probabilities = probabilities * (1 - amount) + amount / num_classes
    products = log_probs * probabilities
    if weight is not None:
        products = products * class_axis_view(xp, upcast(xp, weight), input.ndim, class_axis)
    terms = poison(xp, -xp.sum(products, axis=class_axis), bad_smoothing)
    # 'mean' divides by N * d1 * ... * dk, never by the weights (torch's rule).
    return finish(xp, reduce(xp, terms, reduction), out_dtype)


def cross_entropy(input, target, /, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Softmax cross entropy between logits and class indices or class probabilities.

    Class indices (``target`` of shape ``()``, ``(N)`` or ``(N, d1..dk)``)::

        loss_n = (1 - eps) * (-w[y_n] log p_n[y_n]) + eps / C * (-sum_c w_c log p_n[c])

    with ``log p = log_softmax(input, class axis)`` and ``eps = label_smoothing``;
    0 where ``y_n == ignore_index``. ``'mean'`` divides by ``sum_n w[y_n]`` over
    the kept targets (NaN if every target is ignored).

    Class probabilities (``target`` with the input's shape)::

        loss_n = -sum_c w_c q_nc log p_nc,   q = (1 - eps) target + eps / C

    ``'mean'`` divides by ``N * d1 * ... * dk``, not by the weights;
    ``ignore_index`` is not supported (RuntimeError when set >= 0).

    ``label_smoothing > 1`` raises; values <= 0 apply no smoothing (torch's rule).
    Reference: ``torch.nn.functional.cross_entropy``; label smoothing:
    Szegedy et al., "Rethinking the Inception Architecture", 2016.
    """
    xp = namespace(input, target, weight)
    check_reduction(reduction)
    if input.ndim == 0:
        # torch: a 0-d target of the 0-d input's shape reads as class probabilities and is
        # dtype-checked first (RuntimeError); otherwise the missing class axis is an IndexError.
        if target.ndim == 0 and not is_floating(xp, target):
            raise RuntimeError(
                "Expected floating point type for target with class probabilities, got "
                f"{dtype_name(target.dtype)}: cross_entropy reads a 'target' of the 0-d input's shape as class "
                "probabilities; pass 'input' of shape (C), (N, C) or (N, C, d1, ..., dk)"
            )
        raise IndexError(
            "Dimension out of range (expected to be in range of [-1, 0], but got 1): cross_entropy needs "
            "'input' of shape (C), (N, C) or (N, C, d1, ..., dk), got a 0-d array"
        )
    _check_input(xp, input, loss="cross_entropy", kernel="log_softmax_lastdim_kernel_impl")
    bad_smoothing = None
    if target.ndim == input.ndim and shape_of(target) == shape_of(input):
        if not is_floating(xp, target):
            raise RuntimeError(
                "Expected floating point type for target with class probabilities, got "
                f"{dtype_name(target.dtype)}: cross_entropy reads a 'target' of the input's shape "
                f"{fmt_shape(shape_of(input))} as class probabilities"
            )
        if ignore_index >= 0:
            raise RuntimeError(
                "ignore_index is not supported for floating point target: cross_entropy with class "
                f"probabilities expects ignore_index < 0, got ignore_index={ignore_index}"
            )
        bad_smoothing = _LABEL_SMOOTHING.validate(label_smoothing)
        return _probability_cross_entropy(
            xp, input, target, weight, reduction, label_smoothing, bad_smoothing=bad_smoothing
        )
    _check_index_target(xp, input, target, loss="cross_entropy")
    class_axis = _class_axis(input)
    num_classes = shape_of(input)[class_axis]
    _check_weight(xp, weight, input, num_classes, loss="cross_entropy")
    amount = _smoothing_amount(xp, label_smoothing)
    smoothing = not (is_number(amount) and amount == 0)
    if smoothing:
        bad_smoothing = _LABEL_SMOOTHING.validate(label_smoothing)
    batched_input, batched_target, single = _as_batch(xp, input, target)
    # Indices are checked before the log_softmax: validation comes before any compute.
    checked = _check_indices(xp, batched_target, num_classes, ignore_index, loss="cross_entropy")
    kept, _, bad = checked
    logits = upcast(xp, batched_input)
    index = _class_index(xp, batched_target, checked)
    class_weights = None if weight is None else class_axis_view(xp, upcast(xp, weight), logits.ndim, 1)
    # Every position kept (known for readable targets): the terms stay log-likelihoods and the
    # reduction applies the sign. Without weights or smoothing, 'sum' and 'mean' need only the
    # picks' total.
    negated = kept is None
    if negated and weight is None and not smoothing and reduction != "none":
        total, _ = log_softmax_picks(xp, logits, index, 1, total=True)
        return _reduce_class_terms(xp, total, None, reduction, single, input.dtype, negated=True,
                                   count=size_of(index))
    picked, summed = log_softmax_picks(xp, logits, index, 1, weights=class_weights, with_sum=smoothing)
    terms, target_weights = _weighted_class_terms(xp, picked, index, weight, kept, negate=not negated)
    if smoothing:
        uniform_terms = summed if negated else -summed
        if kept is not None:
            uniform_terms = xp.where(kept, uniform_terms, xp.zeros_like(terms))
        smoothed = (1 - amount) * terms + (amount / num_classes) * uniform_terms
        # A traced amount of exactly 0 keeps the plain loss, so -inf logits do not give 0 * inf.
        terms = smoothed if is_number(amount) else xp.where(amount > 0, smoothed, terms)
        terms = poison(xp, terms, bad_smoothing)
    terms = poison(xp, terms, bad)
    return _reduce_class_terms(xp, terms, target_weights, reduction, single, input.dtype, negated=negated)


# -- gradients (LossSpec.vjp; called after the loss accepted the same arguments) -------
#
# Both losses are ``-sum_c a_nc * l_nc`` per position n, reduced: ``l = input`` for nll_loss,
# ``l = log_softmax(input)`` for cross_entropy, with coefficients ``a`` (weights, one-hot or
# smoothed targets, 0 where ignored). The gradient with respect to l is ``-g_n a_nc``; through
# log_softmax it is ``-g_n (a_nc - softmax_nc sum_c a_nc)``.

def _index_coefficients(xp, input, target, weight, ignore_index, amount, *, loss):
    """``(a, g_scale_denominator, kept)`` on the batched layout for class-index targets.

    ``a_nc = (1 - eps) w[y_n] [c = y_n] + eps / C w_c``, 0 where ``y_n`` is ignored; the
    denominator of ``'mean'`` is ``sum_n w[y_n]`` over the kept positions (as in the loss).
    """
    num_classes = shape_of(input)[1]
    checked = _check_indices(xp, target, num_classes, ignore_index, loss=loss)
    _, target_weights, kept, _ = _class_terms(xp, input, target, weight, ignore_index, loss=loss, checked=checked)
    kept = _kept_mask(xp, kept, target)
    if target_weights is None:
        target_weights = xp.ones(shape_of(target), dtype=input.dtype, device=device_of(input))
    index = _index_array(xp, target)
    safe_index = xp.where(kept, index, xp.zeros_like(index))
    picked = one_hot(xp, safe_index, num_classes, input.dtype, axis=1) * xp.expand_dims(target_weights, axis=1)
    if amount == 0:
        return picked, xp.sum(target_weights), kept
    w = xp.ones((num_classes,), dtype=input.dtype, device=device_of(input)) if weight is None else upcast(xp, as_float(xp, weight, input.dtype))
    uniform = class_axis_view(xp, w, input.ndim, 1) * xp.expand_dims(xp.astype(kept, input.dtype), axis=1)
    return (1 - amount) * picked + (amount / num_classes) * uniform, xp.sum(target_weights), kept


def _upstream_per_position(xp, upstream, kept, reduction, denominator, dtype):
    """``g_n``: the gradient of the output with respect to each position's term (0 where ignored)."""
    upstream = upcast(xp, as_float(xp, upstream, dtype))
    if reduction == "none":
        upstream = xp.reshape(upstream, shape_of(kept))
    g = reduction_vjp(xp, upstream, shape_of(kept), reduction, denominator)
    # torch writes the gradient only at kept targets: all ignored gives zeros, not 0 * (1/0).
    return xp.where(kept, g, xp.zeros_like(g))


def _nll_vjp(xp, arrays, options, upstream):
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    batched_input, batched_target, _ = _as_batch(xp, input, target)
    values = upcast(xp, batched_input)
    a, denominator, kept = _index_coefficients(
        xp, values, batched_target, weight, options["ignore_index"], 0, loss="nll_loss"
    )
    g = _upstream_per_position(xp, upstream, kept, options["reduction"], denominator, values.dtype)
    grad = -xp.expand_dims(g, axis=1) * a
    return {"input": gradient_like(xp, xp.reshape(grad, shape_of(input)), input)}


def _cross_entropy_vjp(xp, arrays, options, upstream):
    input, target, weight = arrays["input"], arrays["target"], arrays.get("weight")
    reduction, amount = options["reduction"], _smoothing_amount(xp, options["label_smoothing"])
    if shape_of(target) == shape_of(input):
        return _probability_cross_entropy_vjp(xp, input, target, weight, reduction, amount, upstream)
    batched_input, batched_target, _ = _as_batch(xp, input, target)
    logits = upcast(xp, batched_input)
    a, denominator, kept = _index_coefficients(
        xp, logits, batched_target, weight, options["ignore_index"], amount, loss="cross_entropy"
    )
    g = _upstream_per_position(xp, upstream, kept, reduction, denominator, logits.dtype)
    softmax = xp.exp(log_softmax(xp, logits, 1))
    grad = -xp.expand_dims(g, axis=1) * (a - softmax * xp.sum(a, axis=1, keepdims=True))
    return {"input": gradient_like(xp, xp.reshape(grad, shape_of(input)), input)}


def _probability_cross_entropy_vjp(xp, input, target, weight, reduction, amount, upstream):
    """``a = w q``, ``q = (1 - eps) target + eps / C``; d/d target = ``-(1 - eps) g w log_softmax``."""
    class_axis = _class_axis(input)
    num_classes = shape_of(input)[class_axis]
    dtype = xp.result_type(input, target)
    log_probs = log_softmax(xp, upcast(xp, as_float(xp, input, dtype)), class_axis)
    q = upcast(xp, as_float(xp, target, dtype))
    if amount != 0:
        q = q * (1 - amount) + amount / num_classes
    w = None if weight is None else class_axis_view(xp, upcast(xp, as_float(xp, weight, dtype)), input.ndim,
                                                    class_axis)
    a = q if w is None else q * w
    position_shape = tuple(n for i, n in enumerate(shape_of(input)) if i != class_axis)
    g = spread_upstream(xp, upstream, log_probs.dtype, position_shape, reduction)
    g = xp.expand_dims(g, axis=class_axis)
    grad_input = -g * (a - xp.exp(log_probs) * xp.sum(a, axis=class_axis, keepdims=True))
    with quiet_floating_point(xp):
        grad_target = -g * (1 - amount) * (log_probs if w is None else log_probs * w)
    return {"input": gradient_like(xp, grad_input, input), "target": gradient_like(xp, grad_target, target)}


_CE_OPTIONS = (Option("ignore_index", -100), Option("reduction", "mean"))

register(LossSpec(
    name="nll_loss", function=nll_loss, vjp=_nll_vjp, family="classification", arrays=("input", "target"),
    optional_arrays=("weight",), options=_CE_OPTIONS,
    summary="negative log-likelihood of class indices (`weight`, `ignore_index`)",
    torch=TorchBinding(
        function="nll_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("weight", None), _LEGACY[0],
                   ("ignore_index", -100), _LEGACY[1], ("reduction", "mean")),
        module="NLLLoss",
        module_signature=(("weight", None), _LEGACY[0], ("ignore_index", -100), _LEGACY[1], ("reduction", "mean")),
        buffers=("weight",),
    ),
))
register(LossSpec(
    name="cross_entropy", function=cross_entropy, vjp=_cross_entropy_vjp, family="classification",
    arrays=("input", "target"),
    optional_arrays=("weight",), options=(*_CE_OPTIONS, _LABEL_SMOOTHING),
    differentiable=("input", "target"),
    summary="softmax cross entropy; class indices or probabilities, `weight`, `ignore_index`, `label_smoothing`",
    torch=TorchBinding(
        function="cross_entropy",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("weight", None), _LEGACY[0],
                   ("ignore_index", -100), _LEGACY[1], ("reduction", "mean"), ("label_smoothing", 0.0)),
        module="CrossEntropyLoss",
        module_signature=(("weight", None), _LEGACY[0], ("ignore_index", -100), _LEGACY[1],
                          ("reduction", "mean"), ("label_smoothing", 0.0)),
        buffers=("weight",),
    ),
))
