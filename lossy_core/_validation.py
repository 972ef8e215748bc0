"""Checks shared by the losses: they raise torch's exception type, before any compute.

Messages name the argument, what was expected and what was given. Where torch's
own message is well known, its wording leads so that users searching for it find
it. Data-dependent checks (a class index out of range, a probability outside
[0, 1]) can only raise when the values can be read; under tracing
(jax.jit, torch.compile, torch.func) they return a mask that the loss turns into
NaN instead (``poison``).
"""

from __future__ import annotations

import sys

from ._backend import dtype_name, is_concrete, shape_of


def fmt_shape(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def is_floating(xp, x) -> bool:
    floating = getattr(x.dtype, "is_floating_point", None)  # a torch dtype: what isdtype reads
    return floating if floating is not None else xp.isdtype(x.dtype, "real floating")


def is_integer(xp, x) -> bool:
    return xp.isdtype(x.dtype, "integral")


def require_floating(xp, x, *, argument, loss, exception=NotImplementedError):
    """torch raises NotImplementedError ('"mse_cpu" not implemented for 'Long'') here."""
    if not is_floating(xp, x):
        raise exception(
            f"{loss}: expected argument '{argument}' to have a floating point dtype, "
            f"got {dtype_name(x.dtype)} ({x.dtype})"
        )


def require_same_dtype(x, reference, *, argument, reference_argument, loss):
    """torch: 'Found dtype Long but expected Float' / 'expected scalar type Float but found Double'."""
    if x.dtype != reference.dtype:
        raise RuntimeError(
            f"{loss}: Found dtype {dtype_name(x.dtype)} but expected {dtype_name(reference.dtype)}: "
            f"argument '{argument}' must have the dtype of '{reference_argument}' "
            f"({reference.dtype}), got {x.dtype}"
        )


def broadcast_shape(*shapes) -> tuple[int, ...] | None:
    """The broadcast of ``shapes`` under the standard's rules, or None."""
    ndim = max([0] + [len(s) for s in shapes])  # not max(..., default=0): a graph break in torch.compile
    out = []
    for axis in range(-ndim, 0):
        sizes = {s[axis] for s in shapes if len(s) >= -axis and s[axis] != 1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def require_broadcastable_to(x, shape, *, argument, target_argument, loss):
    """``x`` must broadcast to ``shape`` without enlarging it (torch: RuntimeError)."""
    got = shape_of(x)
    if broadcast_shape(got, tuple(shape)) != tuple(shape):
        raise RuntimeError(
            f"{loss}: argument '{argument}' of shape {fmt_shape(got)} must broadcast to the shape "
            f"of '{target_argument}', {fmt_shape(shape)}"
        )


def require_in_range(value, *, argument, loss, low=None, high=None, low_inclusive=True,
                     high_inclusive=True, exception=RuntimeError, torch_message=""):
    """Check a hyperparameter's range: raise if it is readable and out of range.

    Returns None when checked, or, for a traced value (a jax tracer), the traced
    condition "out of range" so that the caller poisons the loss with NaN.
    """
    def outside(v):
        below = None if low is None else (v < low if low_inclusive else v <= low)
        above = None if high is None else (v > high if high_inclusive else v >= high)
        if below is None:
            return above
        return below if above is None else below | above

    if not is_concrete(value):
        return outside(value)
    if bool(outside(float(value))):
        lo = "" if low is None else f"{low} {'<=' if low_inclusive else '<'} "
        hi = "" if high is None else f" {'<=' if high_inclusive else '<'} {high}"
        lead = f"{torch_message} " if torch_message else ""
        raise exception(f"{lead}{loss}: expected {lo}{argument}{hi}, got {argument}={float(value)}")
    return None


def data_check(xp, bad, *, raise_error):
    """Raise through ``raise_error(bad)`` if any of ``bad`` is true and can be read.

    Returns None when checked, or the mask ``bad`` itself when it cannot be read
    (under tracing) so that the caller poisons those entries with NaN.
    """
    if is_concrete(bad):
        if bool(xp.any(bad)):
            raise_error(bad)
        return None
    return bad


def index_bounds(xp, indices):
    """``(min, max)`` of a readable, non-empty integer array, as Python ints."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(indices, torch.Tensor):
        low, high = torch.aminmax(indices)  # one pass instead of two
        return int(low), int(high)
    return int(xp.min(indices)), int(xp.max(indices))


def first_value(xp, values, mask):
    """The first entry of ``values`` where ``mask`` holds, as a Python number (for messages)."""
    flat_values = xp.reshape(values, (-1,))
    flat_mask = xp.reshape(mask, (-1,))
    index = int(xp.argmax(xp.astype(flat_mask, xp.int32)))
    entry = flat_values[index]
    return int(entry) if is_integer(xp, flat_values) else float(entry)


def poison(xp, loss, bad):
    """``loss`` with NaN wherever ``bad`` holds (``bad`` broadcasts to the loss).

    Multiplied in rather than selected with ``where``, so that the gradient of a
    poisoned entry is NaN too, not a finite gradient of a loss that is not there.
    """
    if bad is None:
        return loss
    return loss * xp.where(bad, xp.full_like(loss, xp.nan), xp.ones_like(loss))
