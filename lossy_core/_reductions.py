"""Reductions with torch's exact denominators, and the one reduction validator."""

from __future__ import annotations

from ._backend import device_of, quiet_floating_point, size_of, warn_user

REDUCTIONS = ("none", "mean", "sum")
KL_REDUCTIONS = ("none", "mean", "sum", "batchmean")


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
    """Apply ``'none'``, ``'sum'`` or ``'mean'`` (over every element)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return xp.sum(loss)
    return mean(xp, loss)


def reduce_weighted(xp, loss, reduction, weight_total):
    """``'mean'`` divides by ``weight_total`` (e.g. the summed weights of the kept targets).

    A zero total gives NaN (0/0), as torch does when every target is ignored.
    """
    if reduction == "none":
        return loss
    total = xp.sum(loss)
    if reduction == "sum":
        return total
    with quiet_floating_point(xp):
        return total / weight_total


# -- the reductions' vector-Jacobian products ------------------------------------------

def reduction_vjp(xp, upstream, shape, reduction, denominator=None):
    """The gradient of ``reduce``/``reduce_weighted`` with respect to the per-element loss.

    ``upstream`` is the gradient of the reduced output (a scalar for ``'mean'``/``'sum'``,
    the loss's shape for ``'none'``); the result has ``shape``. ``'mean'`` divides by
    ``denominator`` (default: the number of elements). An empty loss gives an empty
    gradient; a zero ``denominator`` gives +-inf/NaN, which callers mask where torch does.
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
