"""Reductions with torch's exact denominators, the one reduction validator, and the parts of a mean.

``reduction="parts"`` returns :class:`LossParts` ``(numerator, denominator)`` with
``numerator / denominator`` exactly the loss's ``'mean'``: the sum of the per-element loss over
torch's ``'mean'`` denominator (the element count, the summed class weights of the kept
targets, ...). Parts add (:func:`combine`) across micro-batches and ranks, and are divided
once (:func:`finalize`), which gives the mean of the whole batch where a mean of per-batch
means does not.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._backend import device_of, quiet_floating_point, size_of, warn_user

REDUCTIONS = ("none", "mean", "sum", "parts")
KL_REDUCTIONS = ("none", "mean", "sum", "batchmean", "parts")
# What ``finalize`` gives where the denominator is 0 (every target ignored, an empty batch).
EMPTY_POLICIES = ("nan", "zero", "clamp1")


class LossParts(NamedTuple):
    """``(numerator, denominator)`` of a loss's ``'mean'``: 0-d arrays of one floating dtype.

    A NamedTuple, so a jax pytree (it passes through ``jit``, ``grad``'s ``has_aux``,
    ``shard_map``) and a torch output whose ``numerator`` carries the autograd graph. The
    ``denominator`` depends on targets, weights and shapes only: it has no gradient.
    Both are in the loss's compute dtype: float32 for float16/bfloat16 inputs (a float16
    count is exact only to 2048 and overflows at 65504, and micro-batch sums should not be
    rounded to half precision at every step); ``finalize(parts)`` cast to the input's dtype
    is bit-identical to ``'mean'``.
    """

    numerator: Any
    denominator: Any


def combine(*parts):
    """The parts of the concatenated batch: numerators and denominators summed.

    ``combine(p1, p2, ...)`` or ``combine([p1, p2, ...])``; for gradient accumulation, sum the
    micro-batches' parts (or their gradients, which are the numerators') and divide once.
    """
    if len(parts) == 1 and not isinstance(parts[0], LossParts):
        parts = tuple(parts[0])
    if not parts:
        raise ValueError("combine: expected at least one LossParts, got none")
    for i, p in enumerate(parts):
        if not isinstance(p, tuple) or len(p) != 2:
            raise TypeError(f"combine: argument {i} is not a (numerator, denominator) pair: {type(p).__name__}")
    numerator, denominator = parts[0]
    for p in parts[1:]:
        numerator = numerator + p[0]
        denominator = denominator + p[1]
    return LossParts(numerator, denominator)


def check_empty_policy(empty):
    if empty not in EMPTY_POLICIES:
        raise ValueError(
            f"empty must be one of {', '.join(repr(e) for e in EMPTY_POLICIES)}, got {empty!r}"
        )


def finalize(parts, *, empty="nan"):
    """``numerator / denominator``: the mean of every element that the parts cover.

    ``empty`` chooses the value where the denominator is 0 (every target ignored, an empty
    batch), where the ecosystem disagrees:

    - ``'nan'`` (default): ``0 / 0``, torch's ``'mean'`` when every target is ignored;
    - ``'zero'``: 0, with a zero gradient (keras' ``divide_no_nan``, MaxText's ``where``);
    - ``'clamp1'``: ``numerator / max(denominator, 1)`` (mmdetection's ``clamp(min=1)``, DETR;
      it changes the value wherever a weighted denominator is below 1).

    Works on any array namespace, under autodiff (the gradient is finite for 'zero' and
    'clamp1') and under tracing (no data-dependent branch).
    """
    check_empty_policy(empty)
    numerator, denominator = parts
    from ._backend import namespace

    xp = namespace(numerator, denominator)
    if empty == "clamp1":
        return numerator / xp.clip(denominator, min=1)
    if empty == "zero":
        is_empty = denominator == 0
        safe = xp.where(is_empty, xp.ones_like(denominator), denominator)
        return xp.where(is_empty, xp.zeros_like(numerator), numerator / safe)
    with quiet_floating_point(xp):
        return numerator / denominator


def as_parts(xp, numerator, denominator):
    """LossParts with the denominator as an array of the numerator's dtype and device."""
    if isinstance(numerator, (int, float, complex)):  # NumPy's sum gives a scalar (np.float64 is a float)
        numerator = xp.asarray(numerator)
    if not hasattr(denominator, "dtype") or denominator.dtype != numerator.dtype:
        denominator = xp.asarray(denominator, dtype=numerator.dtype, device=device_of(numerator))
    return LossParts(numerator, denominator)


def divide(xp, total, denominator, reduction):
    """``'mean'``: ``total / denominator``; ``'parts'``: the two as LossParts (``total`` is the
    sum of the per-element loss, ``denominator`` torch's mean denominator)."""
    if reduction == "parts":
        return as_parts(xp, total, denominator)
    with quiet_floating_point(xp):
        return total / denominator


def finish(xp, value, dtype):
    """The reduced value in the loss's result ``dtype``; LossParts in its compute dtype
    (float32 for float16/bfloat16, see LossParts)."""
    if isinstance(value, LossParts):
        numerator, denominator = value
        low = [getattr(xp, name, None) for name in ("float16", "bfloat16")]
        target = xp.float32 if any(d is not None and dtype == d for d in low) else dtype
        if numerator.dtype != target:
            numerator = xp.astype(numerator, target)
        if denominator.dtype != target:
            denominator = xp.astype(denominator, target)
        return LossParts(numerator, denominator)
    return value if value.dtype == dtype else xp.astype(value, dtype)


def on_numerator(value, function):
    """``function(value)``, or for LossParts ``function`` applied to the numerator alone (a scale
    or a NaN poison of the reduced loss changes the sum, not the count)."""
    if isinstance(value, LossParts):
        return LossParts(function(value.numerator), value.denominator)
    return function(value)


def check_reduction(reduction, allowed=REDUCTIONS):
    """torch raises ``ValueError: avg is not a valid value for reduction``."""
    if not isinstance(reduction, str) or reduction not in allowed:
        expected = ", ".join(repr(r) for r in allowed)
        raise ValueError(
            f"{reduction} is not a valid value for reduction: expected one of {expected}, got {reduction!r}"
        )


def legacy_reduction(size_average, reduce, emit_warning=True) -> str:
    """torch's mapping of the deprecated ``size_average``/``reduce`` to a reduction string.

    ``None`` counts as True; ``reduce=False`` wins, then ``size_average``.
    """
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        reduction = "mean"
    elif reduce:
        reduction = "sum"
    else:
        reduction = "none"
    if emit_warning:
        warn_user(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.",
                  stacklevel=3)
    return reduction


def _nan_scalar(xp, like):
    return xp.full((), xp.nan, dtype=like.dtype, device=device_of(like))


def mean(xp, loss):
    """Mean over every element; NaN for an empty loss, as in torch."""
    n = size_of(loss)
    if n == 0:
        # sum (0) + NaN rather than a bare NaN constant: the result stays connected to
        # ``loss``, so autodiff gives torch's (empty) gradient instead of none at all.
        return xp.sum(loss) + _nan_scalar(xp, loss)
    # sum, then divide, rather than xp.mean: torch's mean backward materialises grad / n at the
    # loss's full size, while the division's backward stays a scalar (the sum's is a broadcast view).
    return xp.sum(loss) / n


def reduce(xp, loss, reduction):
    """Apply ``'none'``, ``'sum'``, ``'mean'`` (over every element) or ``'parts'`` (the sum and the count)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return xp.sum(loss)
    if reduction == "parts":
        return as_parts(xp, xp.sum(loss), size_of(loss))
    return mean(xp, loss)


def reduce_weighted(xp, loss, reduction, weight_total):
    """``'mean'`` divides by ``weight_total`` (e.g. the summed weights of the kept targets).

    A zero total gives NaN (0/0), as torch does when every target is ignored; ``'parts'``
    returns the sum and ``weight_total``.
    """
    if reduction == "none":
        return loss
    total = xp.sum(loss)
    if reduction == "sum":
        return total
    return divide(xp, total, weight_total, reduction)


# -- the reductions' vector-Jacobian products ------------------------------------------

def reduction_vjp(xp, upstream, shape, reduction, denominator=None):
    """The gradient of ``reduce``/``reduce_weighted`` with respect to the per-element loss.

    ``upstream`` is the gradient of the reduced output (a scalar for ``'mean'``/``'sum'``,
    the loss's shape for ``'none'``); the result has ``shape``. ``'mean'`` divides by
    ``denominator`` (default: the number of elements). An empty loss gives an empty
    gradient; a zero ``denominator`` gives +-inf/NaN, which callers mask where torch does.
    ``'parts'``: ``upstream`` is the numerator's gradient (the denominator has none), as ``'sum'``.
    """
    if reduction == "none":
        return xp.broadcast_to(upstream, shape)
    if reduction == "mean":
        if denominator is None:
            count = 1
            for n in shape:
                count *= n
            if count == 0:
                return xp.zeros(shape, dtype=upstream.dtype, device=device_of(upstream))
            denominator = count
        with quiet_floating_point(xp):
            upstream = upstream / denominator
    return xp.broadcast_to(upstream, shape)
