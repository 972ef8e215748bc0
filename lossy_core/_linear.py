"""Large-vocabulary cross entropy without the N x V logits: ``linear_cross_entropy``.

``linear_cross_entropy(x, W, target)`` is ``cross_entropy(x @ W.T + b, target)`` (torch 2.13's
``torch.nn.functional.linear_cross_entropy``, its reference path ``options=None``), computed a
chunk of rows at a time so that only one ``(rows, C)`` block of logits ever exists. The formula
of one chunk is written here once; the loop over chunks belongs to each adapter:

- ``lossy_core`` (NumPy, CuPy, array-api-strict, torch without autograd) runs a Python loop
  (``_run``), in place where the namespace allows, and ``value_and_grad`` takes the value and
  every gradient in that one pass;
- ``lossy_torch`` runs the same loop inside a ``torch.autograd.Function``;
- ``lossy_jax`` runs ``_chunk`` under ``lax.scan`` inside a ``custom_vjp``.

Per position ``n`` (a row, and for a K-dimensional weight ``(C, d1..dK, D)`` each of its
``d1 * ... * dK`` positions), with logits ``z_n`` over the C classes (soft-capped when asked) and
``lse_n = log sum_c exp(z_nc)``::

    loss_n = A_n lse_n - sum_c a_nc z_nc + s W_n lse_n^2

where the coefficients are cross_entropy's: for a class index ``y_n``,
``a_nc = (1 - eps) w[y_n] [c = y_n] + eps / C w_c`` (0 where ``y_n == ignore_index``),
``W_n = w[y_n]``; for class probabilities ``a_nc = w_c ((1 - eps) q_nc + eps / C)``, ``W_n = 1``;
``A_n = sum_c a_nc``, ``eps = label_smoothing``, ``s = lse_square_scale`` (PaLM's z-loss). The
gradient with respect to the logits is ``g_n (A_n + 2 s W_n lse_n + h_n / g_n) softmax_nc -
g_n a_nc``, ``g_n`` the gradient of the output with respect to ``loss_n`` and ``h_n`` that of
``lse_n`` (``return_lse``); through the soft cap ``c tanh(z / c)`` it is multiplied by
``1 - tanh^2``. The target entries are subtracted in place (``add_at_index``): no one-hot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._backend import default_integer_dtype, device_of, dtype_name, is_jax, is_number, is_torch, namespace, quiet_floating_point, shape_of
from ._classification import _check_indices, _class_index, _label_smoothing_message
from ._common import compute_dtype
from ._primitives import add_at_index, exp_in_place, take_along_axis, take_entries
from ._reductions import check_reduction, divide
from ._reductions import finish as finish_reduced
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import fmt_shape, is_floating, is_integer, poison, require_in_range

# The automatic chunk. Each chunk re-reads the weight twice (logits, input gradient) and
# read-modify-writes the weight gradient, so the time lost to chunking depends on the rows per
# chunk alone, whatever C and D are: measured on 2 CPU cores at N=4096, D=1024, V=32000, forward
# + backward takes 1.20x its 1024-row time at 128 rows, 1.08x at 256. Hence: as many rows as keep
# one chunk's logits (float32 or float64) within CHUNK_BYTES, the peak then being the gradients
# plus one chunk (16 MiB: 131 rows and a 157.5 MiB peak at that shape), but never fewer than
# MIN_CHUNK_ROWS (at V=128256 a 16 MiB chunk would be 32 rows, and each chunk costs a full
# pass over the 250 MiB weight and its gradient).
CHUNK_BYTES = 16 * 2**20
MIN_CHUNK_ROWS = 128


def chunk_rows(num_rows, num_columns, itemsize, *, buffers=1, budget=None):
    """Rows per chunk: the most whose ``(rows, num_columns)`` buffers fit ``budget`` bytes
    (default ``CHUNK_BYTES``), at least ``MIN_CHUNK_ROWS`` (and 1), at most ``num_rows``."""
    budget = CHUNK_BYTES if budget is None else budget
    rows = max(MIN_CHUNK_ROWS, budget // max(1, num_columns * itemsize * buffers))
    return int(max(1, min(max(num_rows, 1), rows)))


def _check_linear_smoothing(value):
    return require_in_range(value, argument="label_smoothing", loss="linear_cross_entropy", high=1.0,
                            torch_message=_label_smoothing_message(value))


def _check_lse_square_scale(value):
    return require_in_range(value, argument="lse_square_scale", loss="linear_cross_entropy", low=0.0,
                            exception=ValueError)


_LABEL_SMOOTHING = Option("label_smoothing", 0.0, traced=True, check=_check_linear_smoothing,
                          specialize_default=True)
_LSE_SQUARE_SCALE = Option("lse_square_scale", 0.0, traced=True, check=_check_lse_square_scale,
                           specialize_default=True)


@dataclass
class Plan:
    """A validated call, laid out for the chunk loop.

    ``x`` is ``(N, D)`` and ``weight_matrix`` ``(C * P, D)`` (``P = d1 * ... * dK`` positions per
    row), both in the compute dtype; ``target`` is ``(N, P)`` class indices (made safe to gather)
    or ``(N, C, P)`` probabilities; ``target_weight`` ``(N, P)`` is ``w[y] * kept`` and ``kept``
    the kept mask as floats (index targets only). ``scale`` ``(N, P)`` is each position's gradient
    scale for a scalar reduction (``1 / denominator`` or 1), ``denominator`` the ``'mean'``
    divisor. ``bad`` marks out-of-range indices that could not be read (NaN under tracing).
    """

    xp: Any
    x: Any
    weight_matrix: Any
    bias: Any
    target: Any
    probabilities: bool
    target_weight: Any
    kept: Any
    class_weight: Any  # (C,) in the compute dtype, or None
    class_weight_total: Any  # sum_c w_c (C without weights)
    denominator: Any
    scale: Any
    bad: Any
    num_classes: int
    positions: int
    rows: int
    chunk: int
    reduction: str
    label_smoothing: Any
    lse_square_scale: Any
    softcap: Any
    dtype: Any  # the compute dtype
    input_dtype: Any
    weight_dtype: Any
    output_shape: tuple  # the per-position shape of the 'none' output (and of the lse)
    single: bool


def _require(condition, message, exception=RuntimeError):
    if not condition:
        raise exception(message)


def plan(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean", ignore_index=None,
         label_smoothing=0.0, lse_square_scale=0.0, softcap=None, chunk_size=None, chunk_bytes=None):
    """Validate a call as torch's reference path does (same exception types, its wording first)
    and lay it out for the chunk loop (``Plan``). Raises before any compute. ``chunk_bytes``: the
    adapter's budget for the automatic chunk (default ``CHUNK_BYTES``)."""
    loss = "linear_cross_entropy"
    xp = namespace(input, linear_weight, target, linear_bias, weight)
    check_reduction(reduction)
    _require(1 <= input.ndim <= 2, f"expected input with dimensionality 1 or 2, got {input.ndim}: {loss} needs "
             f"'input' of shape (in_features) or (N, in_features), got {fmt_shape(shape_of(input))}")
    _require(linear_weight.ndim >= 2, f"expected linear_weight with dimensionality at least 2, got "
             f"{linear_weight.ndim}: {loss} needs 'linear_weight' of shape (C, in_features) or "
             f"(C, d1, ..., dK, in_features)")
    input_shape, weight_shape = shape_of(input), shape_of(linear_weight)
    in_features = input_shape[-1]
    _require(in_features == weight_shape[-1], "expected equal input and linear_weight last dimensions "
             f"(in_features), got {in_features} and {weight_shape[-1]}, respectively")
    num_classes, out_features = weight_shape[0], weight_shape[1:-1]
    if linear_bias is not None:
        _require(shape_of(linear_bias) == (num_classes, *out_features), "expected linear_bias shape "
                 f"{(num_classes, *out_features)}, got {shape_of(linear_bias)}")
    _require(not (out_features and input.ndim == 1), "K-dimensional loss defined by linear_weight shape "
             f"{weight_shape} requires batched input, (N, {in_features}), got unbatched input with shape "
             f"{input_shape}")
    _require(linear_weight.dtype == input.dtype, "expected m1 and m2 to have the same dtype, but got: "
             f"{_scalar_type(input.dtype)} != {_scalar_type(linear_weight.dtype)} ({loss}: 'linear_weight' must "
             f"have the dtype of 'input', {input.dtype}, got {linear_weight.dtype})")
    if linear_bias is not None:
        _require(linear_bias.dtype == input.dtype, "self and mat2 must have the same dtype, but got "
                 f"{dtype_name(linear_bias.dtype)} and {dtype_name(input.dtype)} ({loss}: 'linear_bias' must "
                 f"have the dtype of 'input', {input.dtype})")
    if not is_floating(xp, input):  # torch computes integer logits, then refuses their log_softmax
        raise NotImplementedError(f'"log_softmax_lastdim_kernel_impl" not implemented for '
                                  f"'{dtype_name(input.dtype)}': {loss} expects floating point 'input' and "
                                  f"'linear_weight', got {input.dtype}")
    if weight is not None:
        _require(weight.ndim == 1 and shape_of(weight)[0] == num_classes,
                 f"weight tensor should be defined either for all {num_classes} classes or no classes but got "
                 f"weight tensor of shape: {fmt_shape(shape_of(weight))}")
        _require(weight.dtype == input.dtype, f"expected scalar type {dtype_name(input.dtype)} but found "
                 f"{dtype_name(weight.dtype)} ({loss}: 'weight' must have the dtype of 'input')")
    if softcap is not None:
        if not is_number(softcap) or isinstance(softcap, bool) or softcap <= 0:
            raise ValueError(f"{loss}: expected softcap > 0 (a Python number) or None, got {softcap!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool)
                                   or chunk_size <= 0):
        raise ValueError(f"{loss}: expected chunk_size a positive int or None, got {chunk_size!r}")
    bad_smoothing = _LABEL_SMOOTHING.validate(label_smoothing)
    bad_scale = _LSE_SQUARE_SCALE.validate(lse_square_scale)

    single = input.ndim == 1
    rows = 1 if single else input_shape[0]
    positions = math.prod(out_features)
    logits_shape = (*input_shape[:-1], num_classes, *out_features)
    probabilities = shape_of(target) == logits_shape
    dtype = compute_dtype(xp, input.dtype)
    device = device_of(input)
    if probabilities:
        _require(ignore_index is None, "ignore_index cannot be specified when target contains probabilities")
        _require(is_floating(xp, target), "Expected floating point type for target with class probabilities, "
                 f"got {dtype_name(target.dtype)}")
        probs = xp.reshape(target, (rows, num_classes, positions))
        kept = target_weight = bad = None
        denominator = rows * positions
    else:
        ignore_index = -100 if ignore_index is None else ignore_index
        _check_targets(xp, target, single, rows, out_features, loss=loss)
        index = xp.reshape(target, (rows, positions))
        checked = _check_indices(xp, index, num_classes, ignore_index, loss=loss)
        kept_mask, _, bad = checked
        index = _class_index(xp, index, checked)
        ones = xp.ones((rows, positions), dtype=dtype, device=device)
        kept = ones if kept_mask is None else xp.astype(kept_mask, dtype)
        if weight is None:
            target_weight = kept
        else:
            target_weight = take_entries(xp, xp.astype(weight, dtype), index) * kept
        denominator = xp.sum(target_weight)
        probs = index
    class_weight = None if weight is None else xp.astype(weight, dtype)
    class_weight_total = num_classes if weight is None else xp.sum(class_weight)
    if reduction == "mean":
        if is_number(denominator):
            scale = 1.0 / denominator if denominator else 0.0
        else:  # every target ignored: zero gradients, as torch's reference path gives
            with quiet_floating_point(xp):
                scale = xp.where(denominator != 0, 1 / denominator, xp.zeros_like(denominator))
    else:
        scale = 1.0
    scale = xp.full((rows, positions), scale, dtype=dtype, device=device) if is_number(scale) else \
        xp.broadcast_to(scale, (rows, positions))
    for extra in (bad_smoothing, bad_scale):  # traced hyperparameters out of range poison everything
        if extra is not None:
            bad = extra if bad is None else bad | extra
    scale = poison(xp, scale, bad)  # NaN gradients where the loss is NaN
    x = xp.reshape(input, (rows, in_features))
    weight_matrix = xp.reshape(linear_weight, (num_classes * positions, in_features))
    bias = None if linear_bias is None else xp.reshape(linear_bias, (num_classes * positions,))
    chunk = chunk_size if chunk_size is not None else chunk_rows(
        rows, num_classes * positions, 8 if dtype == xp.float64 else 4, buffers=3 if softcap else 1,
        budget=chunk_bytes)
    return Plan(
        xp=xp, x=x, weight_matrix=_as(xp, weight_matrix, dtype), bias=None if bias is None else _as(xp, bias, dtype),
        target=probs, probabilities=probabilities, target_weight=target_weight, kept=kept,
        class_weight=class_weight, class_weight_total=class_weight_total, denominator=denominator, scale=scale,
        bad=bad, num_classes=num_classes, positions=positions, rows=rows, chunk=min(chunk, max(rows, 1)),
        reduction=reduction, label_smoothing=max(label_smoothing, 0.0) if is_number(label_smoothing) else
        xp.maximum(label_smoothing, xp.zeros_like(label_smoothing)),
        lse_square_scale=lse_square_scale, softcap=softcap, dtype=dtype, input_dtype=input.dtype,
        weight_dtype=linear_weight.dtype,
        output_shape=() if single else (rows, *out_features), single=single,
    )


def _scalar_type(dtype):
    """The C++ scalar type name torch's matmul dtype error uses ('float', 'c10::Half', 'long int')."""
    names = {"Float": "float", "Double": "double", "Half": "c10::Half", "BFloat16": "c10::BFloat16",
             "Long": "long int", "Int": "int", "Short": "short int", "Char": "signed char", "Byte": "unsigned char",
             "Bool": "bool"}
    name = dtype_name(dtype)
    return names.get(name, name)


def _as(xp, x, dtype):
    return x if x.dtype == dtype else xp.astype(x, dtype)


def _check_targets(xp, target, single, rows, out_features, *, loss):
    """torch's rules for class-index targets: int64 or uint8, ``()``/``(N)``/``(N, d1..dK)``."""
    allowed = (xp.int64, xp.uint8, default_integer_dtype(xp))  # int32: jax without x64
    if not is_integer(xp, target) or not any(target.dtype == d for d in allowed):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {dtype_name(target.dtype)}: "
                           f"{loss} expects class indices in 'target' (int64), got {target.dtype}")
    shape = shape_of(target)
    multi_target = ("0D or 1D target tensor expected, multi-target not supported: {loss} expects 'target' of "
                    "shape {expected}, got {got}")
    if single:
        _require(target.ndim <= 1, multi_target.format(loss=loss, expected="[] or [1]", got=fmt_shape(shape)))
        if target.ndim == 1 and shape[0] != 1:
            raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: {shape[0]} ({loss}: "
                             f"'target' of shape {fmt_shape(shape)} for unbatched 'input')")
        return
    batch = shape[0] if target.ndim else 0
    if batch != rows:
        raise ValueError(f"Expected input batch_size ({rows}) to match target batch_size ({batch}).")
    if not out_features:  # torch's nll_loss rule for (N, C) logits
        _require(target.ndim == 1, multi_target.format(loss=loss, expected=fmt_shape((rows,)), got=fmt_shape(shape)))
    _require(shape == (rows, *out_features), f"Expected target size {fmt_shape((rows, *out_features))}, got "
             f"{fmt_shape(shape)}: {loss} expects 'target' of shape (N, d1, ..., dK) for 'linear_weight' with "
             f"d = {tuple(out_features)}")


# -- one chunk ------------------------------------------------------------------------

def _logits(xp, plan, x):
    """``(B, C, P)`` logits of the rows ``x`` (soft-capped), and the ``tanh`` of the cap or None."""
    z = _as(xp, x, plan.dtype) @ xp.matrix_transpose(plan.weight_matrix)
    if plan.bias is not None:
        z += plan.bias
    z = xp.reshape(z, (shape_of(x)[0], plan.num_classes, plan.positions))
    if plan.softcap is None:
        return z, None
    z /= plan.softcap
    capped = xp.tanh(z)
    return capped * plan.softcap, capped


def chunk(xp, plan, x, target, target_weight, kept, scale, upstream_lse=None, gradient=True):
    """One chunk of rows: ``(terms, lse, grad_logits, grad_target)``.

    ``x`` is ``(B, D)``; ``target`` ``(B, P)`` indices or ``(B, C, P)`` probabilities;
    ``target_weight``, ``kept`` and ``scale`` ``(B, P)`` (``scale``: the gradient of the output
    with respect to each position's loss term); ``upstream_lse`` ``(B, P)`` or None. ``terms`` and
    ``lse`` are ``(B, P)``; ``grad_logits`` ``(B, C * P)`` is the gradient of the pre-cap logits
    (None without ``gradient``), ``grad_target`` that of probability targets (else None).
    """
    eps, s = plan.label_smoothing, plan.lse_square_scale
    smoothing = not (is_number(eps) and eps == 0)
    z_loss = not (is_number(s) and s == 0)
    classes = plan.num_classes
    z, capped = _logits(xp, plan, x)
    shift = xp.max(z, axis=1, keepdims=True)
    # A row of -inf logits (or a +inf) has a non-finite max; shifting by it would give NaN.
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    z -= shift
    w = None if plan.class_weight is None else xp.reshape(plan.class_weight, (1, classes, 1))
    if plan.probabilities:
        q = _as(xp, target, plan.dtype)
        if smoothing:
            q = q * (1 - eps) + eps / classes
        a = q if w is None else q * w
        total = xp.sum(a, axis=1)
        linear = xp.sum(a * z, axis=1)  # sum_c a_nc z_nc (shifted)
        zloss_weight = 1.0
    else:
        index = xp.expand_dims(target, axis=1)
        picked = xp.squeeze(take_along_axis(xp, z, index, axis=1), axis=1)
        total = target_weight
        # An ignored position gathers class 0, whose logit may be -inf: select its 0 rather than
        # multiply (0 * -inf would be NaN where torch gives 0).
        ignored = kept == 0
        zero = xp.zeros_like(picked)
        with quiet_floating_point(xp):
            linear = xp.where(ignored, zero, target_weight * picked)
            if smoothing:
                spread = xp.sum(z, axis=1) if w is None else xp.sum(z * w, axis=1)
                total = (1 - eps) * target_weight + (eps / classes) * plan.class_weight_total * kept
                linear = (1 - eps) * linear + (eps / classes) * xp.where(ignored, zero, spread)
        zloss_weight = target_weight
    # Probability targets differentiate the target too, through log_softmax: keep the shifted
    # logits (a second buffer); otherwise the logits become their exponentials in place.
    shifted = z if plan.probabilities and gradient and is_floating(xp, target) else None
    e = exp_in_place(xp, z if shifted is None else z * 1)
    sum_exp = xp.sum(e, axis=1)
    with quiet_floating_point(xp):
        log_sum = xp.log(sum_exp)
    terms = total * log_sum - linear
    lse = log_sum + xp.squeeze(shift, axis=1)
    if z_loss:
        terms = terms + s * zloss_weight * lse * lse
    if not gradient:
        return terms, lse, None, None
    ratio = scale * total
    if z_loss:
        ratio = ratio + scale * (2 * s) * zloss_weight * lse
    if upstream_lse is not None:
        ratio = ratio + upstream_lse
    with quiet_floating_point(xp):
        ratio = ratio / sum_exp
    e *= xp.expand_dims(ratio, axis=1)  # e is now the softmax term of the gradient
    grad_target = None
    if plan.probabilities:
        e -= xp.expand_dims(scale, axis=1) * a
        if shifted is not None:
            log_probs = shifted - xp.expand_dims(log_sum, axis=1)
            factor = -(1 - eps) * xp.expand_dims(scale, axis=1)
            grad_target = factor * (log_probs if w is None else log_probs * w)
    else:
        e = add_at_index(xp, e, target, -(1 - eps) * scale * target_weight if smoothing else -scale * target_weight)
        if smoothing:
            uniform = xp.expand_dims((eps / classes) * scale * kept, axis=1)
            e -= uniform if w is None else uniform * w
    if capped is not None:
        capped *= capped
        e *= 1 - capped
    return terms, lse, xp.reshape(e, (shape_of(x)[0], classes * plan.positions)), grad_target


# -- the loop (NumPy, CuPy, array-api-strict, torch without autograd) ------------------

def accumulate_product(xp, accumulator, left, right):
    """``accumulator += left.T @ right`` in place, without a temporary of the accumulator's size:
    torch's ``addmm_``; elsewhere in blocks of the accumulator's rows (an ``(R, D)`` block of
    at most ~4 MiB)."""
    if is_torch(xp):
        accumulator.addmm_(left.mT, right)
        return accumulator
    if is_jax(xp):
        return accumulator + xp.matrix_transpose(left) @ right
    rows, columns = shape_of(accumulator)
    block = max(1, (4 * 2**20) // max(1, columns * 8))
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        accumulator[start:stop, :] += xp.matrix_transpose(left[:, start:stop]) @ right
    return accumulator


def _slice(a, start, stop):
    return None if a is None or is_number(a) else a[start:stop, ...]


def run(plan, *, gradients=(True, True, True, True), upstream=None, upstream_lse=None):
    """The chunk loop. Returns ``(terms, lse, grads)``: ``terms`` and ``lse`` ``(N, P)``; ``grads``
    ``[dX, dW, db, dtarget]`` in the layouts of ``plan`` (None where not asked, or all None when
    no gradient is asked). ``upstream`` ``(N, P)`` replaces ``plan.scale`` (reduction 'none')."""
    xp = plan.xp
    scale = plan.scale if upstream is None else upstream
    want = any(gradients)
    device = device_of(plan.x)
    n, d = shape_of(plan.x)
    columns = plan.num_classes * plan.positions
    grad_x = xp.empty((n, d), dtype=plan.dtype, device=device) if want and gradients[0] else None
    grad_w = xp.zeros((columns, d), dtype=plan.dtype, device=device) if want and gradients[1] else None
    grad_b = xp.zeros((columns,), dtype=plan.dtype, device=device) if want and gradients[2] and \
        plan.bias is not None else None
    grad_t = [] if want and gradients[3] and plan.probabilities else None
    terms, lses = [], []
    for start in range(0, n, plan.chunk):
        stop = min(n, start + plan.chunk)
        x = plan.x[start:stop, ...]
        chunk_terms, chunk_lse, grad_z, grad_q = chunk(
            xp, plan, x, plan.target[start:stop, ...], _slice(plan.target_weight, start, stop),
            _slice(plan.kept, start, stop), scale[start:stop, ...], _slice(upstream_lse, start, stop), want)
        terms.append(chunk_terms)
        lses.append(chunk_lse)
        if not want:
            continue
        if grad_x is not None:
            if is_jax(xp):  # jax arrays are immutable
                grad_x = grad_x.at[start:stop, :].set(grad_z @ plan.weight_matrix)
            else:
                grad_x[start:stop, :] = grad_z @ plan.weight_matrix
        if grad_w is not None:
            grad_w = accumulate_product(xp, grad_w, grad_z, _as(xp, x, plan.dtype))
        if grad_b is not None:
            grad_b += xp.sum(grad_z, axis=0)
        if grad_t is not None:
            grad_t.append(grad_q)
        del grad_z  # the next chunk's logits must not coexist with this chunk's
    if n == 0:
        empty = xp.zeros((0, plan.positions), dtype=plan.dtype, device=device)
        terms, lses = [empty], [empty]
    grads = [grad_x, grad_w, grad_b, None]
    if grad_t is not None:
        grad_t = xp.concat(grad_t, axis=0) if grad_t else \
            xp.zeros((0, plan.num_classes, plan.positions), dtype=plan.dtype, device=device)
        grads[3] = grad_t
    terms = xp.concat(terms, axis=0) if len(terms) > 1 else terms[0]
    lses = xp.concat(lses, axis=0) if len(lses) > 1 else lses[0]
    return terms, lses, grads


def finish(xp, plan, terms, lse, return_lse):
    """The reduced loss in the input's dtype (and the lse in the compute dtype, per position)."""
    terms = poison(xp, terms, plan.bad)
    if plan.reduction == "none":
        value = xp.reshape(terms, plan.output_shape)
    else:
        total = xp.sum(terms)
        if plan.reduction == "sum":
            value = total
        else:  # 'mean', or 'parts' (its numerator's gradient is that of 'sum': the scale is 1)
            value = divide(xp, total, plan.denominator, plan.reduction)
    value = finish_reduced(xp, value, plan.input_dtype)
    if return_lse:
        return value, xp.reshape(lse, plan.output_shape)
    return value


def linear_cross_entropy(input, linear_weight, target, /, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, lse_square_scale=0.0, softcap=None,
                         return_lse=False, chunk_size=None):
    """Cross entropy of the logits ``input @ linear_weight.T + linear_bias`` without materialising them.

    The value is torch's ``cross_entropy(linear(input, W, b).reshape(N, C, d1..dK), target, ...)``
    (``torch.nn.functional.linear_cross_entropy`` with ``options=None``), computed ``chunk_size``
    rows at a time (default: as many as keep a chunk's logits within ``CHUNK_BYTES``, 16 MiB, and at
    least ``MIN_CHUNK_ROWS``, 128).
    Per position, with ``lse = logsumexp`` of its C logits::

        loss_n = -sum_c a_nc log_softmax(z_n)_c + lse_square_scale * w[y_n] * lse_n^2

    with cross_entropy's coefficients ``a`` (class weights, ``label_smoothing``, 0 where ``y_n ==
    ignore_index``); ``'mean'`` divides by ``sum_n w[y_n]`` over the kept targets (NaN when all
    are ignored; the gradients are then 0, as torch's reference path gives), or by ``N * d1..dK``
    for class probabilities.

    Shapes: ``input`` ``(D)`` or ``(N, D)``; ``linear_weight`` ``(C, D)`` or ``(C, d1..dK, D)``
    (K-dimensional: softmax over C for each of the ``d1..dK`` positions; needs batched input);
    ``linear_bias`` ``(C, d1..dK)``; ``target`` ``()``/``(N)``/``(N, d1..dK)`` class indices or
    probabilities of the logits' shape ``(C)``/``(N, C, d1..dK)``; ``weight`` ``(C)``.
    ``ignore_index=None`` means -100 for class indices (torch's rule); setting it with
    probabilities raises.

    Beyond torch: ``lse_square_scale`` (PaLM's z-loss ``s * lse^2``, weighted like the target's
    term; Liger's ``lse_square_scale``), ``softcap`` (Gemma 2's ``c * tanh(z / c)`` on the logits;
    Liger's and Cut Cross-Entropy's ``softcap``), ``return_lse`` (also return the per-position
    ``lse`` of the logits, in the compute dtype; Cut Cross-Entropy's ``return_lse``).

    float16/bfloat16 compute in float32 (the weight is upcast once; the gradients accumulate in
    float32) and return the input's dtype. Reference: ``torch.nn.functional.linear_cross_entropy``
    (torch 2.13); Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", 2025.
    """
    p = plan(input, linear_weight, target, linear_bias=linear_bias, weight=weight, reduction=reduction,
             ignore_index=ignore_index, label_smoothing=label_smoothing, lse_square_scale=lse_square_scale,
             softcap=softcap, chunk_size=chunk_size)
    terms, lse, _ = run(p, gradients=(False,) * 4)
    return finish(p.xp, p, terms, lse, return_lse)


def position_upstream(xp, plan, upstream):
    """The gradient of each position's loss term, ``(N, P)``, for an output gradient ``upstream``."""
    if plan.reduction == "none":
        return poison(xp, xp.reshape(_as(xp, upstream, plan.dtype), (plan.rows, plan.positions)), plan.bad)
    return plan.scale * _as(xp, upstream, plan.dtype)


def gradients_out(xp, plan, grads, input, linear_weight, linear_bias, target):
    """``run``'s gradients in the arguments' shapes and dtypes."""
    grad_x, grad_w, grad_b, grad_t = grads
    out = {}
    if grad_x is not None:
        out["input"] = _as(xp, xp.reshape(grad_x, shape_of(input)), input.dtype)
    if grad_w is not None:
        out["linear_weight"] = _as(xp, xp.reshape(grad_w, shape_of(linear_weight)), linear_weight.dtype)
    if grad_b is not None and linear_bias is not None:
        out["linear_bias"] = _as(xp, xp.reshape(grad_b, shape_of(linear_bias)), linear_bias.dtype)
    if grad_t is not None:
        out["target"] = _as(xp, xp.reshape(grad_t, shape_of(target)), target.dtype)
    return out


def _value_and_vjp(xp, arrays, options, upstream):
    """One pass: the value and every gradient (``LossSpec.value_and_vjp``).

    For ``'mean'``/``'sum'`` the gradients are computed with the per-position scale in the same
    loop as the value, then multiplied by the (scalar) ``upstream``; for ``'none'`` (whose
    ``upstream`` is per position) the loop takes it directly. ``upstream`` may be a pair
    ``(loss upstream, lse upstream)`` with ``return_lse``.
    """
    input, linear_weight, target = arrays["input"], arrays["linear_weight"], arrays["target"]
    linear_bias = arrays.get("linear_bias")
    options = dict(options)
    return_lse = options.pop("return_lse")
    p = plan(input, linear_weight, target, linear_bias=linear_bias, weight=arrays.get("weight"), **options)
    upstream_lse = None
    if isinstance(upstream, tuple):
        upstream, upstream_lse = upstream
        upstream_lse = None if upstream_lse is None else xp.reshape(_as(xp, upstream_lse, p.dtype),
                                                                      (p.rows, p.positions))
    wanted = (True, True, linear_bias is not None, is_floating(xp, target))
    if p.reduction == "none":
        if upstream is None and not p.output_shape:  # a 0-d output (unbatched): upstream 1, as value_and_grad says
            upstream = xp.ones((), dtype=p.dtype, device=device_of(p.x))
        if upstream is None:
            raise ValueError(f"value_and_grad(linear_cross_entropy): the output has shape "
                             f"{fmt_shape(p.output_shape)}; pass 'upstream' (the gradient of the output)")
        upstream = xp.asarray(upstream, device=device_of(p.x))
        if shape_of(upstream) != p.output_shape:
            raise ValueError(f"value_and_grad(linear_cross_entropy): 'upstream' has shape "
                             f"{fmt_shape(shape_of(upstream))}, the output {fmt_shape(p.output_shape)}")
        terms, lse, grads = run(p, gradients=wanted, upstream=position_upstream(xp, p, upstream),
                                upstream_lse=upstream_lse)
    else:
        terms, lse, grads = run(p, gradients=wanted, upstream_lse=upstream_lse)
        if upstream is not None:  # the gradients were computed for an output gradient of 1
            factor = _as(xp, xp.asarray(upstream, device=device_of(terms)), p.dtype)
            grads = [None if g is None else g * factor for g in grads]
    value = finish(xp, p, terms, lse, return_lse)
    return value, gradients_out(xp, p, grads, input, linear_weight, linear_bias, target)


register(LossSpec(
    name="linear_cross_entropy", function=linear_cross_entropy, family="large_vocabulary",
    value_and_vjp=_value_and_vjp,
    arrays=("input", "linear_weight", "target"), optional_arrays=("linear_bias", "weight"),
    options=(Option("reduction", "mean"), Option("ignore_index", None), _LABEL_SMOOTHING, _LSE_SQUARE_SCALE,
             Option("softcap", None), Option("return_lse", False), Option("chunk_size", None)),
    differentiable=("input", "linear_weight", "linear_bias", "target"),
    summary="cross entropy of `input @ linear_weight.T + bias` a chunk of rows at a time, never the N x C "
            "logits (every cross_entropy option; z-loss, softcap, return_lse)",
    reference="torch 2.13 linear_cross_entropy; Wijmans et al., ICLR 2025",
    extra={"adapters": "own"},  # each adapter binds it by hand: the loop over chunks is the adapter's
    torch=TorchBinding(
        function="linear_cross_entropy",
        signature=(("input", REQUIRED), ("linear_weight", REQUIRED), ("target", REQUIRED), ("linear_bias", None),
                   ("weight", None), ("reduction", "mean"), ("ignore_index", None), ("label_smoothing", 0.0),
                   ("options", None)),
        keyword_only=("linear_bias",),
        module="LinearCrossEntropyLoss",
    ),
))
