"""Comparing a backend's Result with the reference's.

An array matches when shape and dtype equal the reference's, NaN positions are
identical, every +-inf matches exactly (same position, same sign), and on the
finite positions ``|got - ref| <= rtol * max(|ref|, floor * scale)``, where
``scale`` is the largest finite ``|ref|`` of that array (1 if none). The error
reported is ``max |got - ref| / max(|ref|, floor * scale)``: a relative error
with an absolute floor of ``floor * scale``.

Tolerances (rtol, floor), chosen as tight as the measured evidence allows:
- float64: 1e-12, 1.0    (DESIGN: ~1e-12 relative; absolute floor 1e-12 * scale)
- float32: 1e-5, 0.1     (absolute floor 1e-6 * scale)
- float16: 1e-2, 0.1     (float16 ulp is 9.8e-4 relative)
- bfloat16: 3e-2, 0.1    (bfloat16 ulp is 7.8e-3 relative)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TOLERANCES = {
    "float64": (1e-12, 1.0),
    "float32": (1e-5, 0.1),
    "float16": (1e-2, 0.1),
    "bfloat16": (3e-2, 0.1),
}


@dataclass
class ArrayCheck:
    ok: bool
    error: float  # worst relative error (with the floor) on finite positions; 0.0 if none
    message: str = ""


def compare_array(got: np.ndarray, ref: np.ndarray, got_dtype: str, ref_dtype: str, dtype: str) -> ArrayCheck:
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return ArrayCheck(False, float("inf"), f"shape {got.shape} != torch's {ref.shape}")
    if got_dtype != ref_dtype:
        return ArrayCheck(False, float("inf"), f"dtype {got_dtype} != torch's {ref_dtype}")
    nan_got, nan_ref = np.isnan(got), np.isnan(ref)
    if (nan_got != nan_ref).any():
        where = np.argwhere(nan_got != nan_ref)[:5].tolist()
        return ArrayCheck(False, float("inf"), f"NaN positions differ at {where}")
    inf = np.isinf(got) | np.isinf(ref)
    if (got[inf] != ref[inf]).any():
        where = np.argwhere(inf & (got != ref))[:5].tolist()
        return ArrayCheck(False, float("inf"), f"inf mismatch at {where}: got {got[inf]} want {ref[inf]}")
    finite = ~(nan_ref | inf)
    if not finite.any():
        return ArrayCheck(True, 0.0)
    rtol, floor = TOLERANCES[dtype]
    r = ref[finite]
    scale = float(np.max(np.abs(r)))
    scale = scale if scale > 0 else 1.0
    error = float(np.max(np.abs(got[finite] - r) / np.maximum(np.abs(r), floor * scale)))
    if not error <= rtol:
        i = int(np.argmax(np.abs(got[finite] - r) / np.maximum(np.abs(r), floor * scale)))
        return ArrayCheck(False, error, f"error {error:.3g} > rtol {rtol:g} (got {got[finite][i]!r}, "
                                        f"want {r[i]!r})")
    return ArrayCheck(True, error)


@dataclass
class CaseCheck:
    ok: bool
    value_error: float | None = None
    grad_error: float | None = None  # worst over the differentiable arrays; None if none compared
    messages: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def compare_result(got, ref, dtype: str, known: dict | None = None) -> CaseCheck:
    """Value, then the gradient of every array torch differentiates (when the backend computes gradients).

    ``known``: documented deviations ({"value" | "output <k>" | "grad <name>": reason}); those
    arrays are not compared, and the reason is noted. A tuple output's further outputs
    (``Result.more``; "output 1", ...) are compared like the value, into ``value_error``.
    """
    known = known or {}
    check = CaseCheck(True)
    if "value" in known:  # the case's gradients are still compared
        check.notes.append(f"value: not compared (known deviation: {known['value']})")
    else:
        v = compare_array(got.value, ref.value, got.dtype, ref.dtype, dtype)
        check.value_error = v.error
        if not v.ok:
            check.ok = False
            check.messages.append(f"value: {v.message}")
    # the further outputs of a loss that returns a tuple (linear_cross_entropy's lse): compared as the value
    if len(got.more) != len(ref.more):
        check.ok = False
        check.messages.append(f"outputs: {1 + len(got.more)} != torch's {1 + len(ref.more)}")
    for k, ((have, have_dtype), (want, want_dtype)) in enumerate(zip(got.more, ref.more), start=1):
        if f"output {k}" in known:
            check.notes.append(f"output {k}: not compared (known deviation: {known[f'output {k}']})")
            continue
        o = compare_array(have, want, have_dtype, want_dtype, dtype)
        check.value_error = o.error if check.value_error is None else max(check.value_error, o.error)
        if not o.ok:
            check.ok = False
            check.messages.append(f"output {k}: {o.message}")
    if got.grads is None or ref.grads is None:
        return check
    for name, want in ref.grads.items():
        have = got.grads.get(name)
        if want is None:
            continue  # torch cannot differentiate it: nothing to compare
        if f"grad {name}" in known:
            check.notes.append(f"grad {name}: not compared (known deviation: {known[f'grad {name}']})")
            continue
        if have is None:
            check.ok = False
            check.messages.append(f"grad {name}: missing (torch has one)")
            continue
        g = compare_array(have[0], want[0], have[1], want[1], dtype)
        check.grad_error = g.error if check.grad_error is None else max(check.grad_error, g.error)
        if not g.ok:
            check.ok = False
            check.messages.append(f"grad {name}: {g.message}")
    return check
