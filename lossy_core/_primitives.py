"""The functions a loss needs that the array API standard lacks.

Each primitive has a generic array-API body (``_generic_*``) and, where a
framework's native function has the same semantics, delegates to it for speed and
for that framework's own gradient rule. ``tests/test_primitives.py`` checks every
delegation against the generic body on every backend.
"""

from __future__ import annotations

import functools
import math

from ._backend import device_of, is_cupy, is_jax, is_numpy, is_torch, quiet_floating_point, shape_of


# -- stop_gradient ---------------------------------------------------------------

def stop_gradient(xp, x):
    """``x`` with no gradient flowing back (identity on backends without autodiff)."""
    if is_torch(xp):
        return x.detach()
    if is_jax(xp):
        import jax

        return jax.lax.stop_gradient(x)
    return x


# -- logsumexp / log_softmax -----------------------------------------------------

def _generic_logsumexp(xp, x, axis, keepdims=False):
    # The shift does not change the value, so its gradient is stopped: differentiating
    # through max() costs as much as the rest of the loss (performance-findings.md).
    shift = stop_gradient(xp, xp.max(x, axis=axis, keepdims=True))
    # A row of all -inf (or a +inf) has a non-finite max; shifting by it gives NaN.
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    out = xp.log(xp.sum(xp.exp(x - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else xp.squeeze(out, axis=axis)


def logsumexp(xp, x, axis, keepdims=False):
    """``log(sum(exp(x), axis))`` computed without overflow."""
    if is_torch(xp):
        import torch  # torch.logsumexp: same value, stable for -inf rows

        return torch.logsumexp(x, dim=axis, keepdim=keepdims)
    if is_jax(xp):
        import jax

        return jax.nn.logsumexp(x, axis=axis, keepdims=keepdims)
    return _generic_logsumexp(xp, x, axis, keepdims)


def _generic_logsumexp_of(xp, arrays):
    shift = arrays[0]
    for a in arrays[1:]:
        shift = xp.maximum(shift, a)
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    with quiet_floating_point(xp):
        total = xp.exp(arrays[0] - shift)
        for a in arrays[1:]:
            total = total + xp.exp(a - shift)
        return shift + xp.log(total)


def logsumexp_of(xp, arrays):
    """``log(sum_i exp(arrays[i]))`` elementwise over a few same-shape arrays; -inf where all
    are -inf, +inf beside a +inf, NaN beside a NaN (``torch.logsumexp`` over their stack).

    torch: one stack and ``torch.logsumexp`` (two calls instead of about fifteen: a per-step
    cost in ctc_loss's recursion). Elsewhere the max-shifted sum written out, which XLA fuses
    (a stack and a reduction inside ``lax.scan`` were ~10% slower, jax 0.10 CPU)."""
    if is_torch(xp):
        import torch

        return torch.logsumexp(torch.stack(list(arrays)), dim=0)
    return _generic_logsumexp_of(xp, arrays)


# Below this many entries along the reduced axis, XLA CPU's max reduction is a scalar loop (it
# vectorises along a contiguous axis that fills a 64-byte register of float32).
_SHORT_AXIS = 16


def _shift_max(xp, x, axis):
    """``max(x, axis, keepdims=True)`` with its gradient stopped: the shift of a log-sum-exp.

    On jax, along a short axis, a reduction by ``p > q`` instead of ``max``, which does not
    propagate NaN. XLA CPU's NaN-propagating max reduction is a scalar loop there: over 256 rows
    of 10 float32 it takes 1.8 us where this one takes 0.9, 8192x10 23 vs 10 us (jax 0.10;
    cross entropy 256x10 f+b against optax 1.02 -> 0.99x). Along 32 or more contiguous
    entries XLA vectorises the max and this reduction is 1.4-2x slower, so longer axes keep it.
    The shift need not be NaN: a NaN in a row makes the row's sum of exponentials NaN whatever
    the shift, and every caller's result goes through that sum. On rows without NaN both
    reductions give the max exactly.
    """
    if not (is_jax(xp) and x.shape[axis] < _SHORT_AXIS):
        return stop_gradient(xp, xp.max(x, axis=axis, keepdims=True))
    import jax
    import jax.numpy as jnp

    x = jax.lax.stop_gradient(x)  # no tangent reaches the reduction (it has no JVP rule)
    axis = axis % x.ndim
    lowest = jnp.array(-math.inf, dtype=x.dtype)
    row_max = jax.lax.reduce(x, lowest, _greater_of, (axis,))
    return jnp.expand_dims(row_max, axis)


def _greater_of(p, q):
    """The reducer of ``_shift_max``: one module-level function, so jax caches the reduction it
    traces (a new lambda per call made every eager call compile again: 35 ms against 0.1)."""
    import jax.numpy as jnp

    return jnp.where(p > q, p, q)


def _max_shifted(xp, x, axis):
    """``(shift, x - shift, log(sum(exp(x - shift), axis)))`` with the row max as the
    (gradient-stopped) shift: torch's and jax's log_softmax form. An all -inf row is shifted by
    0 and a +inf max is kept, so both rows give NaN, as torch.log_softmax does
    (``x - logsumexp`` would give -inf beside a +inf)."""
    shift = _shift_max(xp, x, axis)
    shift = xp.where(shift == -math.inf, xp.zeros_like(shift), shift)
    shifted = x - shift
    return shift, shifted, xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def _generic_log_softmax(xp, x, axis):
    _, shifted, log_sum = _max_shifted(xp, x, axis)
    return shifted - log_sum


def log_softmax(xp, x, axis):
    """``x - logsumexp(x, axis)``: log-probabilities over ``axis``."""
    if is_torch(xp):
        import torch  # the kernel torch's own cross_entropy uses: bit-identical values

        return torch.log_softmax(x, dim=axis)
    if is_jax(xp) and x.shape[axis] >= _SHORT_AXIS:
        import jax  # stops the gradient of its max shift, as the generic body does

        return jax.nn.log_softmax(x, axis=axis)
    # jax along a short axis too: the same operations, with the faster shift (_shift_max)
    return _generic_log_softmax(xp, x, axis)


def _generic_log_softmax_picks(xp, x, indices, axis, weights, with_sum):
    # log_softmax's shift and log-sum, without the log-probabilities themselves: under XLA the
    # gradient of this form fuses, while the gradient of a gather from log_softmax's output is a
    # scatter followed by log_softmax's own backward (4-5x slower, performance-findings.md).
    shift, shifted, log_sum = _max_shifted(xp, x, axis)
    # Gathered from x, not from ``shifted``: XLA then does not fuse the shift into the gather
    # (a forward 2x slower at 8192x1000, measured). The edge cases are the same (NaN rows).
    picked = xp.squeeze(take_along_axis(xp, x, xp.expand_dims(indices, axis=axis), axis) - shift - log_sum,
                        axis=axis)
    if not with_sum:
        return picked, None
    log_sum = xp.squeeze(log_sum, axis=axis)
    if weights is None:
        return picked, xp.sum(shifted, axis=axis) - shape_of(x)[axis] * log_sum
    return picked, xp.sum(shifted * weights, axis=axis) - xp.sum(weights, axis=axis) * log_sum


def log_softmax_picks(xp, x, indices, axis, weights=None, with_sum=False, total=False):
    """Log-probabilities ``l = log_softmax(x, axis)`` at class ``indices`` (``x``'s shape without
    ``axis``), and with ``with_sum`` also ``sum(weights * l, axis)`` (``weights`` broadcasts
    against ``x``; None means ones). Returns ``(picked, summed)``, ``summed`` None without
    ``with_sum``; both have the shape of ``indices``. With ``total``, ``picked`` is the sum of
    the picks over every position instead (0-d): for a caller that only sums them, one
    reshape fewer (on torch, one autograd node fewer).

    Same values and edge cases as computing ``l`` first (a row with a +inf or only -inf
    logits gives NaN). torch does compute ``l`` with its native log_softmax, whose fused
    backward beats autograd through the shifted form; elsewhere ``l`` is never materialised.
    On jax, long class axes are shifted by the target logit instead of the row max, which
    saves XLA a pass over ``x`` (``_jax_shifted_log_sum``).
    """
    if is_torch(xp):
        import torch

        if _short_last_axis_on_torch_cpu(x, axis):
            # (N, C) with C below a vector register: the log-probabilities of the transposed
            # view, over its first axis (the same values), and the weights transposed alike.
            x, indices, axis = x.T, indices.unsqueeze(0), 0
            weights = None if weights is None else weights.T
        else:
            indices = indices.unsqueeze(axis)
        log_probs = torch.log_softmax(x, dim=axis)
        picked = torch.gather(log_probs, axis, indices)
        picked = torch.sum(picked) if total else picked.squeeze(axis)
        if not with_sum:
            return picked, None
        weighted = log_probs if weights is None else log_probs * weights
        return picked, torch.sum(weighted, dim=axis)
    if is_jax(xp):
        picked, summed = _jax_log_softmax_picks(xp, x, indices, axis, weights, with_sum)
    else:
        picked, summed = _generic_log_softmax_picks(xp, x, indices, axis, weights, with_sum)
    return (xp.sum(picked) if total else picked), summed


def _jax_log_softmax_picks(xp, x, indices, axis, weights, with_sum, target_shift=None):
    """The generic form, with the shift of ``_jax_shifted_log_sum`` where that pays (``None``:
    decided by ``_target_shift_pays``; tests force either way)."""
    if target_shift is None:
        target_shift = _target_shift_pays(x, axis)
    if not target_shift:
        return _generic_log_softmax_picks(xp, x, indices, axis, weights, with_sum)
    target_logits = take_along_axis(xp, x, xp.expand_dims(indices, axis=axis), axis)
    shift, log_sum = _jax_shifted_log_sum()(x, target_logits, axis)
    picked = xp.squeeze((target_logits - shift) - log_sum, axis=axis)
    if not with_sum:
        return picked, None
    if weights is not None and x.ndim == 2 and axis in (1, -1):
        return picked, _jax_weighted_log_prob_sum()(x, shift, log_sum, xp.reshape(weights, (-1,)))
    # Each log-probability first, as torch sums them: all <= 0, no cancellation in the sum
    # (the shift may sit below some logits, so sum(x - shift) could cancel).
    log_probs = (x - shift) - log_sum
    weighted = log_probs if weights is None else log_probs * weights
    return picked, xp.sum(weighted, axis=axis)


@functools.cache
def _jax_weighted_log_prob_sum():
    """``sum_c w_c ((x - shift) - log_sum)_c`` over the class axis of (N, C) logits, for the
    target-shift path with class weights (cross entropy's label smoothing term).

    The value is the fused broadcast-multiply-sum (as without weights). Differentiated by
    autodiff, XLA writes ``w`` broadcast to N x C out and reduces it again per row in the
    backward (cross entropy 8192x1000 with label smoothing and weights: f+b 9.6-12.3 ms, of
    which 1.8-2.9 ms the broadcast and 4.4 ms that reduction; jax 0.10 CPU). The rule here
    computes the value as a matrix-vector product and the tangent as
    ``dx @ w - sum(w) d log_sum + log_probs @ dw``: f+b 6.0 ms, forward unchanged (2.9 ms).
    ``HIGHEST`` precision keeps the products float32 where XLA would use TF32 (GPUs)."""
    import operator

    import jax
    import jax.numpy as jnp
    from jax.custom_derivatives import SymbolicZero

    product = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)

    @jax.custom_jvp
    def weighted_log_prob_sum(x, shift, log_sum, weights):
        return jnp.sum(((x - shift) - log_sum) * weights, axis=1)

    def weighted_log_prob_sum_jvp(primals, tangents):
        (x, shift, log_sum, weights), (x_dot, _, log_sum_dot, weights_dot) = primals, tangents
        log_probs = (x - shift) - log_sum
        value = product(log_probs, weights)
        # Symbolic zeros are skipped, not multiplied: 0 * a -inf log-probability is NaN.
        terms = []
        if not isinstance(x_dot, SymbolicZero):
            terms.append(product(x_dot, weights))
        if not isinstance(log_sum_dot, SymbolicZero):
            terms.append(-jnp.sum(weights) * log_sum_dot[:, 0])
        if not isinstance(weights_dot, SymbolicZero):
            terms.append(product(log_probs, weights_dot))
        return value, functools.reduce(operator.add, terms, jnp.zeros_like(value))

    weighted_log_prob_sum.defjvp(weighted_log_prob_sum_jvp, symbolic_zeros=True)
    return weighted_log_prob_sum


# Where the target shift beats the row max under XLA CPU: long rows (its reduction kernel is
# fast along them) and enough of them. Cross entropy f+b against optax, jax 0.10, 2 cores, the
# row max first and the target shift second: 8192x1000 0.99x / 0.92x, 1024x1000 1.00 / 0.92,
# 512x1000 1.02 / 0.92, 2048x512 1.00 / 0.99; but 4096x256 1.06 / 1.04, 1024x100 1.04 / 1.11,
# 256x1000 ~1.0 / 1.06-1.10, 4096x10 0.97 / 1.42 (short rows: each exponential costs 5-10x more,
# and the target shift takes two per element where the max takes one, stored).
_TARGET_SHIFT_MIN_CLASSES = 512
_TARGET_SHIFT_MIN_ROWS = 512


def _target_shift_pays(x, axis):
    classes = x.shape[axis]
    return classes >= _TARGET_SHIFT_MIN_CLASSES and x.size >= _TARGET_SHIFT_MIN_ROWS * classes


def _target_shift_is_safe(x, target_logits, axis):
    """Whether ``_jax_shifted_log_sum`` shifts this batch by the target logits (else by the
    row max). Exposed for the tests."""
    import jax.numpy as jnp

    return _shift_parts(jnp, x, target_logits, axis)[0]


def _shift_parts(jnp, x, target_logits, axis):
    """``(safe, relative)``: ``relative = sum(exp(x), axis) * exp(-target_logits)``, and whether
    it is exact enough to use (see ``_jax_shifted_log_sum``)."""
    info = jnp.finfo(x.dtype)
    unshifted = jnp.sum(jnp.exp(x), axis=axis, keepdims=True)
    relative = unshifted * jnp.exp(-target_logits)
    lowest = x.shape[axis] * info.tiny / info.eps
    # One flag for the batch; NaN fails both comparisons.
    return jnp.all((unshifted >= lowest) & (relative <= info.max)), relative


@functools.cache
def _jax_shifted_log_sum():
    """``(shift, log(sum(exp(x - shift), axis)))`` for ``x`` and ``target_logits`` (``x``'s
    shape with 1 along ``axis``): the shift is the target logit wherever that is safe for the
    whole batch, else the row max (the generic form).

    Why: the row max costs XLA a pass over ``x`` (0.7 of optax's 3.7 ms for cross entropy
    8192x1000 f+b, jax 0.10 CPU). Here the sum is ``sum(exp(x)) * exp(-target_logit)``: one
    reduction over ``x`` with no broadcast operand (with ``x - target_logit`` inside, XLA CPU's
    reduction kernel takes 2.0 ms instead of 1.5 at 8192x1000), then the per-row factor. That equals
    ``sum(exp(x - target_logit))`` to a few ulp, so ``log_sum`` keeps torch's precision for
    ``log p = (x - shift) - log_sum`` (``log p`` of the target is ``-log_sum`` exactly; never
    ``x - logsumexp(x)``, whose rounding is ulp(logsumexp), torch issue 11752). It is safe when
    no ``exp(x)`` overflows and the sum is far enough above the smallest normal number that
    exponentials flushed to 0 (XLA flushes subnormals) change it by under an ulp:
    ``C * tiny / eps <= sum(exp(x))`` and the product finite; one check for the batch picks
    the branch (``lax.cond``: only the taken branch runs). NaN, +-inf and extreme logits take
    the max shift, whose edge cases are the generic form's.

    Differentiated as the generic form with a stopped shift: the shift has no tangent and the
    log-sum's is ``sum(softmax * dx, axis)``, softmax written ``exp((x - shift) - log_sum)``. A
    ``custom_jvp``, so forward mode works, and under ``jit`` XLA fuses the softmax into the
    gradient (no N x C residual is written).
    """
    import jax
    import jax.numpy as jnp

    def parts(x, target_logits, axis):
        safe, relative = _shift_parts(jnp, x, target_logits, axis)

        def by_row_max():
            shift, _, log_sum = _max_shifted(jnp, x, axis)
            return shift, log_sum

        return jax.lax.cond(safe, lambda: (target_logits, jnp.log(relative)), by_row_max)

    @functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
    def shifted_log_sum(x, target_logits, axis):
        return parts(x, target_logits, axis)

    @shifted_log_sum.defjvp
    def shifted_log_sum_jvp(axis, primals, tangents):
        (x, target_logits), (x_dot, _) = primals, tangents
        shift, log_sum = parts(x, target_logits, axis)
        softmax = jnp.exp((x - shift) - log_sum)
        return (shift, log_sum), (jnp.zeros_like(shift), jnp.sum(softmax * x_dot, axis=axis, keepdims=True))

    return shifted_log_sum


_TORCH_CPU_VECTOR_BYTES = None


def torch_cpu_vector_bytes():
    """The width of the vector registers torch's CPU kernels use: 64 bytes under AVX512, else 32.

    Looked up once (lossy_torch does it on import: torch.compile cannot trace the lookup)."""
    global _TORCH_CPU_VECTOR_BYTES
    if _TORCH_CPU_VECTOR_BYTES is None:
        import torch

        _TORCH_CPU_VECTOR_BYTES = 64 if torch.backends.cpu.get_cpu_capability() == "AVX512" else 32
    return _TORCH_CPU_VECTOR_BYTES


def _short_last_axis_on_torch_cpu(x, axis):
    """A 2-d CPU tensor whose softmax axis is the last and narrower than one vector register.

    torch's last-axis log_softmax kernel is vectorised along that axis only, and falls back to a
    scalar loop when it is shorter than a register: at 256x10 float32 it takes 18 us where the
    kernel for a non-last axis (vectorised across the rows) takes 5 us on the transposed view,
    and 2048x10 f+b 241 vs 115 us (torch 2.13, AVX512; AVX2 switches at 8 float32, measured).
    """
    return (x.ndim == 2 and axis in (1, -1) and x.is_cpu
            and x.shape[1] * x.element_size() < torch_cpu_vector_bytes())


# -- log_sigmoid / softplus --------------------------------------------------------

def _generic_log_sigmoid(xp, x):
    return -xp.logaddexp(xp.zeros_like(x), -x)


def _fused_log1p_exp_negative_abs(xp, x):
    # log(1 + e^-|x|) in (0, log 2]: with max(x, 0) or min(x, 0) beside it, softplus and
    # log_sigmoid without overflow. Four elementwise ops that XLA fuses into one pass, 2x faster
    # than jax.nn's logaddexp form, whose NaN select keeps XLA CPU from vectorising it
    # (sigmoid BCE 8192x80 forward 1.09 -> 0.54 ms, jax 0.10 CPU). -|x| is written min(x, -x):
    # autodiff splits a tie evenly, so its slope at x = 0 is 0 (jax's d|x| is 1 there), and with
    # max(x, 0)'s 1/2 the slope of softplus and log_sigmoid at 0 is exactly 1/2.
    return xp.log1p(xp.exp(xp.minimum(x, -x)))


def log_sigmoid(xp, x):
    """``log(sigmoid(x)) = -softplus(-x)``, finite for any finite ``x``."""
    if is_torch(xp):
        import torch

        return torch.nn.functional.logsigmoid(x)
    if is_jax(xp):
        return xp.minimum(x, 0.0) - _fused_log1p_exp_negative_abs(xp, x)
    return _generic_log_sigmoid(xp, x)


def _generic_softplus(xp, x):
    return xp.logaddexp(xp.zeros_like(x), x)


def softplus(xp, x):
    """``log(1 + exp(x))`` computed without overflow."""
    # No torch delegation: torch's softplus is log1p(exp(x)) below its threshold, which
    # overflows to inf for x > ~88 (float32) / ~709 (float64) when the threshold is inf, and
    # it returns x itself (off by up to e^-20) above the default threshold 20. torch.logaddexp,
    # which the generic body calls, is exact.
    if is_jax(xp):
        return xp.maximum(x, 0.0) + _fused_log1p_exp_negative_abs(xp, x)
    return _generic_softplus(xp, x)


# -- xlogx -------------------------------------------------------------------------

def _generic_xlogx(xp, x):
    # 0 * log(0) is 0, as in torch.xlogy(x, x); negative x gives NaN (log of a negative).
    with quiet_floating_point(xp):
        return xp.where(x == 0, xp.zeros_like(x), x * xp.log(x))


@functools.cache
def _jax_xlogx():
    """``x log x`` without a select, for XLA: a select keeps XLA CPU from fusing the terms into
    the reduction that follows them (they are written out first), which made kl_div's forward
    1.6x slower at 8192x1000 (jax 0.10 CPU). ``max(x, tiny) + 2 min(x, 0)`` is ``x`` for
    ``x >= tiny``, the smallest normal number (a positive value for which ``0 * log`` is 0) at
    ``x = 0``, and negative for any normal ``x < 0`` (NaN from the log, as in torch). Subnormal
    ``x`` count as 0: XLA flushes them to zero. The derivative is torch's for ``xlogy(x, x)``:
    ``log x`` where ``x != 0`` (0 at 0) plus ``x / x`` (NaN at 0)."""
    import jax
    import jax.numpy as jnp

    @jax.custom_jvp
    def xlogx(x):
        tiny = jnp.finfo(x.dtype).tiny
        return x * jnp.log(jnp.maximum(x, tiny) + 2 * jnp.minimum(x, 0))

    @xlogx.defjvp
    def xlogx_jvp(primals, tangents):
        (x,), (x_dot,) = primals, tangents
        return xlogx(x), x_dot * (jnp.where(x == 0, 0, jnp.log(x)) + x / x)

    return xlogx


def xlogx(xp, x):
    """``x * log(x)``, with ``0 * log(0) = 0`` (``torch.xlogy(x, x)``)."""
    if is_torch(xp):
        import torch

        return torch.xlogy(x, x)
    if is_jax(xp):
        return _jax_xlogx()(x)
    return _generic_xlogx(xp, x)


# -- vecdot -------------------------------------------------------------------------

def _generic_vecdot(xp, x, y):
    return xp.vecdot(x, y, axis=-1)


def vecdot(xp, x, y):
    """``sum(x * y, axis=-1)`` for real ``x`` and ``y``, without the product as a temporary."""
    if is_torch(xp):
        import torch  # array-api-compat's vecdot is a batched matmul: 70x slower on 1e6 elements

        return torch.linalg.vecdot(x, y, dim=-1)
    if is_jax(xp):  # XLA fuses the product into the sum; its vector dot is a slower kernel
        return xp.sum(x * y, axis=-1)
    return _generic_vecdot(xp, x, y)


# -- gathering class entries --------------------------------------------------------

def _generic_take_along_axis(xp, x, indices, axis):
    return xp.take_along_axis(x, indices, axis=axis)


def take_along_axis(xp, x, indices, axis):
    """``x`` gathered at ``indices`` along ``axis`` (indices must be in range)."""
    if is_torch(xp):
        import torch  # torch.gather: array-api-compat's wrapper costs 4x (performance-findings.md)

        return torch.gather(x, axis, indices)
    if is_jax(xp):
        import jax.numpy as jnp  # indices are in range here: skip the bounds-fill machinery

        return jnp.take_along_axis(x, indices, axis=axis, mode="promise_in_bounds")
    return _generic_take_along_axis(xp, x, indices, axis)


def _generic_take_entries(xp, values, indices):
    flat = xp.take(values, xp.reshape(indices, (-1,)), axis=0)
    return xp.reshape(flat, shape_of(indices))


def take_entries(xp, values, indices):
    """``values[indices]`` for 1-D ``values`` (e.g. class weights) and in-range, non-negative
    ``indices`` of any shape; the result has the shape of ``indices``."""
    if is_torch(xp):
        # One indexing op: array-api-compat's take first wraps negative indices (three more ops,
        # each a few microseconds on small batches) and needs 1-D indices (two reshapes).
        return values[indices]
    return _generic_take_entries(xp, values, indices)


def _generic_add_at_index(xp, x, index, values):
    classes = xp.arange(shape_of(x)[1], dtype=index.dtype, device=device_of(index))
    hits = xp.expand_dims(index, axis=1) == xp.reshape(classes, (1, -1, 1))
    return x + xp.where(hits, xp.expand_dims(values, axis=1), xp.zeros_like(x))


def add_at_index(xp, x, index, values):
    """``x[n, index[n, p], p] += values[n, p]`` for ``x`` of shape ``(N, C, P)`` and in-range
    ``index``/``values`` of shape ``(N, P)``: in place on torch (``scatter_add_``), NumPy and CuPy
    (one entry per ``(n, p)``, so fancy indexing has no repeats), ``.at[].add`` on jax; the generic
    body adds through a comparison with the class range (a temporary of ``x``'s size). Returns
    the result (``x`` itself where in place)."""
    if is_torch(xp):
        return x.scatter_add_(1, xp.expand_dims(index, axis=1), xp.expand_dims(values, axis=1))
    n, _, p = shape_of(x)
    if is_jax(xp) or is_numpy(xp) or is_cupy(xp):
        rows = xp.reshape(xp.arange(n, device=device_of(index)), (n, 1))
        positions = xp.reshape(xp.arange(p, device=device_of(index)), (1, p))
        if is_jax(xp):
            return x.at[rows, index, positions].add(values)
        x[rows, index, positions] += values
        return x
    return _generic_add_at_index(xp, x, index, values)


def exp_in_place(xp, x):
    """``exp(x)``, written over ``x`` where the namespace can (torch, NumPy, CuPy): a buffer of
    logits becomes its exponentials with no second buffer. Returns the result."""
    if is_torch(xp):
        return x.exp_()
    if is_numpy(xp) or is_cupy(xp):
        native = __import__("cupy" if is_cupy(xp) else "numpy")
        return native.exp(x, out=x)
    return xp.exp(x)


def one_hot(xp, indices, num_classes, dtype, axis=-1):
    """Indicator of ``indices`` over ``num_classes`` classes, placed along ``axis``."""
    classes = xp.arange(num_classes, dtype=indices.dtype, device=device_of(indices))
    out = xp.astype(xp.expand_dims(indices, axis=-1) == classes, dtype)
    if axis != -1 and axis != out.ndim - 1:
        out = xp.moveaxis(out, -1, axis)
    return out


def class_axis_view(xp, vector, ndim, axis):
    """A 1-D per-class ``vector`` reshaped to broadcast along ``axis`` of an ``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = shape_of(vector)[0]
    return xp.reshape(vector, tuple(shape))


# -- scan ------------------------------------------------------------------------------

def _generic_scan(xp, step, carry, xs, reverse=False):
    length = shape_of(xs[0])[0]
    ys = [None] * length
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        carry, ys[t] = step(carry, tuple(x[t, ...] for x in xs))
    return carry, xp.stack(ys, axis=0)


def scan(xp, step, carry, xs, reverse=False):
    """``step(carry, x_t) -> (carry, y_t)`` over the leading axis of the arrays ``xs`` (a tuple).

    Returns the final carry and the ``y_t`` stacked along a new leading axis. A Python
    loop of static length (torch.compile unrolls it); on jax ``lax.scan``, whose
    compiled size does not grow with the length. ``xs`` must not be empty along that axis.
    """
    if is_jax(xp):
        import jax

        return jax.lax.scan(step, carry, tuple(xs), reverse=reverse)
    return _generic_scan(xp, step, carry, xs, reverse)
