"""Sequence losses: connectionist temporal classification (CTC).

``ctc_loss`` is torch's ``torch.nn.functional.ctc_loss``: the negative log
likelihood of a target label sequence summed over every alignment of it to the
input frames (Graves et al., "Connectionist Temporal Classification", ICML 2006),
computed with the alpha (forward) recursion over the blank-interleaved extended
label sequence in log space. The recursion is a Python loop over the ``T``
frames (static) of array-API operations masked by ``input_lengths``: no
data-dependent Python control flow, so it traces under ``jax.jit`` and
``torch.compile``.

The gradient is torch's (``ctc_loss_backward``), from the alpha-beta
(forward-backward) recursion: for ``t < input_lengths[n]``::

    d loss_n / d log_probs[t, n, c] = exp(log_probs[t, n, c]) - sum_{s: l'_s = c} gamma_t(s)

with ``gamma_t(s) = alpha_t(s) beta_t(s) / (p(l|x) y_t(l'_s))`` the posterior
occupancy of extended position ``s`` at frame ``t``; 0 for ``t >= input_lengths[n]``.
This is the gradient torch returns: it assumes ``log_probs`` are normalised
(``log_softmax`` outputs), so through ``log_softmax`` it is the exact gradient of
the logits, but it is not the derivative with respect to free ``log_probs``
(which lacks the ``exp(log_probs)`` term); hence the custom gradient.
"""

from __future__ import annotations

import math

from ._autodiff import CustomGradient
from ._backend import default_integer_dtype, dtype_name, is_concrete, namespace, quiet_floating_point, shape_of
from ._primitives import logsumexp_of, scan, take_along_axis, take_entries
from ._reductions import check_reduction, divide, reduction_vjp
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import data_check, first_value, is_floating, is_integer, poison

_WHERE = " (while checking arguments for ctc_loss_allocate_outputs)"


def _device(x):
    return getattr(x, "device", None)


def _lengths(xp, lengths, like, argument):
    """``lengths`` (an integer array of any shape, or a tuple/list of ints) as a 1-D array."""
    if isinstance(lengths, (list, tuple)):
        if not all(isinstance(v, int) and not isinstance(v, bool) or hasattr(v, "dtype") for v in lengths):
            raise TypeError(f"ctc_loss: '{argument}' must be an integer array or a tuple of ints, got {lengths!r}")
        lengths = xp.asarray(lengths, device=_device(like))
        if not is_integer(xp, lengths):
            raise TypeError(f"ctc_loss: '{argument}' must be an integer array or a tuple of ints")
    elif isinstance(lengths, int) and not isinstance(lengths, bool):
        lengths = xp.asarray(lengths, device=_device(like))
    if not is_integer(xp, lengths):
        raise RuntimeError(f"{argument} must be integral: ctc_loss expects integer '{argument}', got {lengths.dtype}")
    index = default_integer_dtype(xp)
    return xp.reshape(lengths if lengths.dtype == index else xp.astype(lengths, index), (-1,))


def _shift(xp, x, by, fill):
    """``x`` moved ``by`` positions along axis 1 (right for by > 0), ``fill`` entering."""
    n, length = shape_of(x)
    k = min(abs(by), length)
    pad = xp.full((n, k), fill, dtype=x.dtype, device=_device(x))
    if by > 0:
        return xp.concat([pad, x[:, : length - k]], axis=1)
    return xp.concat([x[:, k:], pad], axis=1)


def _lattice(xp, log_probs, ext, target_lengths):
    """Per-frame emissions ``(T, N, L)``; the same, -inf outside each target's lattice; the skip
    transitions ``(N, L)``."""
    T, N, _ = shape_of(log_probs)
    L = shape_of(ext)[1]
    index = xp.broadcast_to(xp.expand_dims(ext, axis=0), (T, N, L))
    emissions = take_along_axis(xp, log_probs, index, axis=2)
    positions = xp.reshape(xp.arange(L, dtype=ext.dtype, device=_device(ext)), (1, L))
    valid = positions < xp.reshape(2 * target_lengths + 1, (N, 1))
    skip = (positions >= 2) & (ext != _shift(xp, ext, 2, -1))
    lattice_emissions = xp.where(valid, emissions, _negative_infinity(xp, emissions, (N, L)))
    return emissions, lattice_emissions, skip


def _negative_infinity(xp, like, shape):
    return xp.full(shape, -math.inf, dtype=like.dtype, device=_device(like))


def _bias(xp, allowed, neg_inf):
    """0 where a transition is ``allowed``, -inf elsewhere: added inside the log-sum-exp."""
    return xp.where(allowed, xp.zeros_like(neg_inf), neg_inf)


def _alphas(xp, lattice_emissions, skip, input_lengths):
    """The log-space forward variables ``alpha_t`` (T, N, L), frozen after each input's end.

    Positions outside a target's lattice stay -inf through its -inf emissions (a NaN there
    reaches only positions further right, never the end the loss reads)."""
    T, N, L = shape_of(lattice_emissions)
    neg_inf = _negative_infinity(xp, lattice_emissions, (N, L))
    positions = xp.reshape(xp.arange(L, device=_device(lattice_emissions)), (1, L))
    first = xp.where(positions < 2, lattice_emissions[0, ...], neg_inf)
    skip_bias = _bias(xp, skip, neg_inf)
    pad = _negative_infinity(xp, lattice_emissions, (N, 2))

    def step(alpha, x):
        emission, running = x
        moved = xp.concat([pad, alpha], axis=1)  # alpha moved right by 2 - j at moved[:, j : j + L]
        new = logsumexp_of(xp, (alpha, moved[:, 1: L + 1], moved[:, :L] + skip_bias)) + emission
        alpha = xp.where(running, new, alpha)
        return alpha, alpha

    if T == 1:
        return xp.expand_dims(first, axis=0)
    frames = xp.reshape(xp.arange(1, T, dtype=input_lengths.dtype, device=_device(lattice_emissions)), (T - 1, 1, 1))
    running = frames < xp.reshape(input_lengths, (1, N, 1))  # (T - 1, N, 1)
    _, rest = scan(xp, step, first, (lattice_emissions[1:, ...], running))
    return xp.concat([xp.expand_dims(first, axis=0), rest], axis=0)


def _end(xp, x, target_lengths):
    """``log(exp(x[2S]) + exp(x[2S - 1]))`` per sample (``x[-1]`` absent when S = 0)."""
    last = xp.reshape(2 * target_lengths, (-1, 1))
    a = xp.squeeze(take_along_axis(xp, x, last, axis=1), axis=1)
    b = xp.squeeze(take_along_axis(xp, x, xp.clip(last - 1, min=0), axis=1), axis=1)
    b = xp.where(target_lengths > 0, b, xp.full_like(b, -math.inf))
    return logsumexp_of(xp, (a, b))


def _nll(xp, alphas, input_lengths, target_lengths):
    # alpha is frozen after frame input_lengths - 1, so the last one is the end of every input.
    nll = -_end(xp, alphas[-1, ...], target_lengths)
    # An empty input aligns only with an empty target (torch: 0, else inf).
    empty = xp.where(target_lengths == 0, xp.zeros_like(nll), xp.full_like(nll, math.inf))
    return xp.where(input_lengths == 0, empty, nll)


def _ctc_forward(xp, log_probs, ext, input_lengths, target_lengths, *, zero_infinity):
    """``(loss per sample, (alphas,))``: the recursion's alphas are saved for the backward (as
    torch's kernel saves its log_alpha), which would otherwise run the recursion again."""
    _, lattice_emissions, skip = _lattice(xp, log_probs, ext, target_lengths)
    alphas = _alphas(xp, lattice_emissions, skip, input_lengths)
    nll = _nll(xp, alphas, input_lengths, target_lengths)
    loss = xp.where(nll == math.inf, xp.zeros_like(nll), nll) if zero_infinity else nll
    return loss, (alphas,)


def _ctc_backward(xp, arrays, saved, upstream, needs, *, zero_infinity):
    """torch's ``ctc_loss_backward``: ``upstream[n] (exp(lp) - sum_{l'_s = c} gamma_t(s))`` for t < T_n."""
    log_probs, ext, input_lengths, target_lengths = arrays
    if not needs[0]:
        return (None, None, None, None)
    T, N, C = shape_of(log_probs)
    L = shape_of(ext)[1]
    emissions, lattice_emissions, skip = _lattice(xp, log_probs, ext, target_lengths)
    (alphas,) = saved
    nll = _nll(xp, alphas, input_lengths, target_lengths)  # the loss not zeroed (not saved: it may be the output)
    neg_inf = _negative_infinity(xp, log_probs, (N, L))
    positions = xp.reshape(xp.arange(L, dtype=ext.dtype, device=_device(ext)), (1, L))
    two_s = xp.reshape(2 * target_lengths, (N, 1))
    ends = (positions == two_s) | ((positions == two_s - 1) & (two_s > 0))
    skip_bias = _bias(xp, _shift(xp, skip, -2, False), neg_inf)  # position s may jump to s + 2
    classes = xp.reshape(xp.arange(C, dtype=ext.dtype, device=_device(ext)), (1, 1, C))
    one_hot = xp.astype(xp.expand_dims(ext, axis=2) == classes, log_probs.dtype)  # (N, L, C)
    scale = xp.reshape(xp.astype(upstream, log_probs.dtype), (N, 1))
    pad = _negative_infinity(xp, log_probs, (N, 2))
    zeros = xp.zeros((N, C), dtype=log_probs.dtype, device=_device(log_probs))
    # Everything that does not depend on beta, for every frame at once: beta starts at each
    # input's last frame and is -inf after it; the gradient is 0 from there on (and, with
    # zero_infinity, for an impossible target); the occupancy's exponent without beta.
    frames = xp.reshape(xp.arange(T, dtype=input_lengths.dtype, device=_device(log_probs)), (T, 1, 1))
    last = xp.reshape(input_lengths - 1, (1, N, 1))
    at_last, before_last, in_input = frames == last, frames < last, frames <= last
    if zero_infinity:
        in_input = in_input & xp.reshape(nll != math.inf, (1, N, 1))
    starts = xp.where(ends, lattice_emissions, neg_inf)
    with quiet_floating_point(xp):
        partial_exponents = alphas - emissions + xp.reshape(nll, (1, N, 1))  # NaN for an impossible target
    probabilities = xp.exp(log_probs)

    def step(beta, x):
        emission, start, partial_exponent, probability, is_last, is_before, is_in = x
        moved = xp.concat([beta, pad], axis=1)  # beta moved left by j at moved[:, j : j + L]
        new = logsumexp_of(xp, (beta, moved[:, 1: L + 1], moved[:, 2:] + skip_bias)) + emission
        beta = xp.where(is_last, start, xp.where(is_before, new, neg_inf))
        with quiet_floating_point(xp):
            occupancy = xp.exp(partial_exponent + beta)  # (N, L)
        # (N, C). A sum, not a matmul: torch runs this backward under the caller's autocast,
        # which would compute a matmul in bfloat16.
        per_class = xp.sum(xp.expand_dims(occupancy, axis=2) * one_hot, axis=1)
        return beta, xp.where(is_in, (probability - per_class) * scale, zeros)

    _, grads = scan(xp, step, neg_inf, (lattice_emissions, starts, partial_exponents, probabilities, at_last,
                                        before_last, in_input), reverse=True)
    return (grads, None, None, None)


# One custom-gradient function per zero_infinity (plain functions: torch.compile cannot trace
# a functools.partial inside an autograd.Function).
def _forward_keep_inf(xp, *arrays):
    return _ctc_forward(xp, *arrays, zero_infinity=False)


def _backward_keep_inf(xp, arrays, saved, upstream, needs):
    return _ctc_backward(xp, arrays, saved, upstream, needs, zero_infinity=False)


def _forward_zero_inf(xp, *arrays):
    return _ctc_forward(xp, *arrays, zero_infinity=True)


def _backward_zero_inf(xp, arrays, saved, upstream, needs):
    return _ctc_backward(xp, arrays, saved, upstream, needs, zero_infinity=True)


_CTC = {
    False: CustomGradient(_forward_keep_inf, _backward_keep_inf, "CTCLoss", residuals=True),
    True: CustomGradient(_forward_zero_inf, _backward_zero_inf, "CTCLossZeroInfinity", residuals=True),
}


def _prepare(log_probs, targets, input_lengths, target_lengths, blank, reduction):
    """Checks (torch's exception types and messages, before any compute) and the padded layout.

    Returns ``(xp, log_probs (T, N, C), ext (N, 2S+1), input_lengths, target_lengths, unbatched, bad)``;
    ``bad`` is None or, under tracing, the per-sample mask of invalid lengths/labels to poison.
    """
    check_reduction(reduction)
    xp = namespace(log_probs, targets)
    if log_probs.ndim not in (2, 3):
        raise RuntimeError(
            # torch unsqueezes a non-3-d input before checking, so it reports one dimension more
            f"Expected 3-dimensional tensor, but got {log_probs.ndim + 1}-dimensional tensor for argument #1 "
            f"'log_probs'{_WHERE}: ctc_loss expects 'log_probs' of shape (T, N, C) or (T, C)"
        )
    if not is_floating(xp, log_probs) or log_probs.dtype not in (xp.float32, xp.float64):
        raise NotImplementedError(
            f"\"ctc_loss_cpu\" not implemented for '{dtype_name(log_probs.dtype)}': ctc_loss expects float32 or "
            f"float64 'log_probs', got {log_probs.dtype}"
        )
    if not is_integer(xp, targets) and not is_floating(xp, targets):
        raise RuntimeError(f"ctc_loss: 'targets' must hold integer class indices, got {targets.dtype}")
    unbatched = log_probs.ndim == 2
    if unbatched:
        log_probs = xp.expand_dims(log_probs, axis=1)  # 1-D targets stay the (one) concatenated target
    T, N, C = shape_of(log_probs)
    if T * N * C == 0:
        raise RuntimeError(f"log_probs tensor must not be empty: ctc_loss got 'log_probs' of shape {list(shape_of(log_probs))}")
    if not 0 <= blank < C:
        raise RuntimeError(f"blank must be in label range: ctc_loss expects 0 <= blank < {C}, got blank={blank}")
    input_lengths = _lengths(xp, input_lengths, log_probs, "input_lengths")
    target_lengths = _lengths(xp, target_lengths, log_probs, "target_lengths")
    for argument, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if shape_of(lengths)[0] != N:
            raise RuntimeError(f"{argument} must be of size batch_size: ctc_loss expects {N} lengths, "
                               f"got {shape_of(lengths)[0]}")
    if targets.ndim not in (1, 2):
        raise RuntimeError(f"Expected 1 to 2 dimensions, but got {targets.ndim}-dimensional tensor for argument "
                           f"#2 'targets'{_WHERE}")
    if targets.ndim == 2 and shape_of(targets)[0] != N:
        raise RuntimeError(f"Expected tensor to have size {N} at dimension 0, but got size {shape_of(targets)[0]} "
                           f"for argument #2 'targets'{_WHERE}")
    index_dtype = default_integer_dtype(xp)
    targets = targets if targets.dtype == index_dtype else xp.astype(targets, index_dtype)

    def value_error(argument, lengths, low, high):
        def raise_error(mask):
            value = first_value(xp, lengths, mask)
            bound = f"at least {low}" if value < low else f"at most {high}"
            raise RuntimeError(f"Expected {argument} to have value {bound}, but got value {value}{_WHERE}")
        return raise_error

    bads = [
        data_check(xp, (input_lengths < 0) | (input_lengths > T),
                   raise_error=value_error("input_lengths", input_lengths, 0, T)),
        data_check(xp, target_lengths < 0, raise_error=value_error("target_lengths", target_lengths, 0, None)),
    ]
    input_lengths = xp.clip(input_lengths, min=0, max=T)
    target_lengths = xp.clip(target_lengths, min=0)
    if targets.ndim == 2:
        S = shape_of(targets)[1]

        def too_long(mask):
            raise RuntimeError(f"Expected tensor to have size at least {int(xp.max(target_lengths))} at dimension 1, "
                               f"but got size {S} for argument #2 'targets'{_WHERE}")

        bads.append(data_check(xp, target_lengths > S, raise_error=too_long))
        target_lengths = xp.clip(target_lengths, max=S)
        labels = targets
    else:
        total = shape_of(targets)[0]
        total_lengths = xp.sum(target_lengths)

        def wrong_total(mask):
            raise RuntimeError(f"Expected tensor to have size {int(total_lengths)} at dimension 0, but got size "
                               f"{total} for argument #2 'targets'{_WHERE}")

        mismatch = data_check(xp, xp.reshape(total_lengths != total, (1,)), raise_error=wrong_total)
        bads.append(None if mismatch is None else xp.broadcast_to(mismatch, (N,)))
        # The longest target: read now where possible, else bounded by the concatenation's length.
        S = int(xp.max(target_lengths)) if is_concrete(target_lengths) and N else total
        offsets = xp.cumulative_sum(target_lengths) - target_lengths
        index = xp.reshape(offsets, (N, 1)) + xp.reshape(xp.arange(S, dtype=index_dtype, device=_device(targets)), (1, S))
        if total == 0:
            labels = xp.zeros((N, S), dtype=index_dtype, device=_device(targets))
        else:
            labels = take_entries(xp, targets, xp.clip(index, min=0, max=total - 1))
    kept = xp.reshape(xp.arange(S, dtype=index_dtype, device=_device(labels)), (1, S)) < xp.reshape(target_lengths, (N, 1))
    out_of_range = kept & ((labels < 0) | (labels >= C))

    def label_error(mask):
        value = first_value(xp, labels, mask)
        raise IndexError(f"ctc_loss: target label {value} is out of bounds: expected class indices in "
                         f"[0, {C - 1}] within the first target_lengths[n] entries of 'targets'")

    bad_label = data_check(xp, out_of_range, raise_error=label_error)
    bads.append(None if bad_label is None else xp.any(bad_label, axis=1))
    labels = xp.where(kept & ~out_of_range, labels, xp.full_like(labels, blank))
    blanks = xp.full((N, S), blank, dtype=index_dtype, device=_device(labels))
    ext = xp.reshape(xp.stack([blanks, labels], axis=2), (N, 2 * S))
    ext = xp.concat([ext, xp.full((N, 1), blank, dtype=index_dtype, device=_device(labels))], axis=1)
    bad = None
    for b in bads:
        if b is not None:
            bad = b if bad is None else bad | b
    return xp, log_probs, ext, input_lengths, target_lengths, unbatched, bad


def ctc_loss(log_probs, targets, input_lengths, target_lengths, /, *, blank=0, reduction="mean",
             zero_infinity=False):
    """Connectionist temporal classification loss (Graves et al., 2006)::

        loss_n = -log sum_{pi in B^-1(y_n)} prod_{t < T_n} exp(log_probs[t, n, pi_t])

    over every alignment ``pi`` of length ``T_n = input_lengths[n]`` that collapses
    (merge repeats, drop ``blank``) to the target ``y_n`` of length
    ``target_lengths[n]``; computed with the log-space alpha recursion.

    ``log_probs``: ``(T, N, C)`` log-probabilities (``log_softmax`` output), or
    ``(T, C)`` for one sequence; float32 or float64 (torch's CPU kernel has no
    half precision). ``targets``: padded ``(N, S)`` (entries past
    ``target_lengths[n]`` are ignored) or 1-D, the targets concatenated (length
    ``sum(target_lengths)``); labels in ``[0, C)``. ``input_lengths``,
    ``target_lengths``: integer arrays of ``N`` lengths (any shape, flattened) or
    tuples of ints; ``0 <= input_lengths <= T``. An impossible alignment gives
    ``inf``; ``zero_infinity=True`` makes those losses and their gradients 0.
    ``'mean'``: ``mean_n(loss_n / max(target_lengths[n], 1))``; ``'sum'``;
    ``'none'``: shape ``(N)`` (``()`` unbatched); ``'parts'``:
    ``(sum_n loss_n / max(target_lengths[n], 1), N)``.

    The gradient is torch's (see the module docstring): exact for the logits
    behind a ``log_softmax``. Reference: ``torch.nn.functional.ctc_loss``.
    Deviations: a label outside ``[0, C)`` within a target raises IndexError
    (NaN under tracing); torch's CPU kernel reads out of bounds. A target label
    equal to ``blank`` is accepted, as in torch; where it is the last label of a
    target, torch's CPU gradient overwrites one final-frame term with the other
    instead of adding them, while this gradient adds them (the values agree).
    """
    xp, lp, ext, il, tl, unbatched, bad = _prepare(log_probs, targets, input_lengths, target_lengths, blank,
                                                   reduction)
    nll = poison(xp, _CTC[bool(zero_infinity)](xp, lp, ext, il, tl), bad)
    if reduction == "none":
        return xp.reshape(nll, ()) if unbatched else nll
    if reduction == "sum":
        return xp.sum(nll)
    per_target_label = nll / xp.astype(xp.clip(tl, min=1), nll.dtype)
    if reduction == "parts":  # the sum of the per-label losses, over N sequences
        return divide(xp, xp.sum(per_target_label), shape_of(nll)[0], reduction)
    return xp.mean(per_target_label)


def _ctc_vjp(xp, arrays, options, upstream):
    _, lp, ext, il, tl, unbatched, _ = _prepare(
        arrays["log_probs"], arrays["targets"], arrays["input_lengths"], arrays["target_lengths"],
        options["blank"], options["reduction"])
    reduction = options["reduction"]
    N = shape_of(lp)[1]
    upstream = xp.reshape(upstream, (N,)) if reduction == "none" else upstream
    if reduction in ("mean", "parts"):
        per_sample = reduction_vjp(xp, upstream, (N,), reduction) / xp.astype(xp.clip(tl, min=1), lp.dtype)
    else:
        per_sample = reduction_vjp(xp, upstream, (N,), reduction)
    zero_infinity = bool(options["zero_infinity"])
    _, saved = _ctc_forward(xp, lp, ext, il, tl, zero_infinity=zero_infinity)
    (grad, *_) = _ctc_backward(xp, (lp, ext, il, tl), saved, per_sample, (True,), zero_infinity=zero_infinity)
    return {"log_probs": xp.reshape(grad, shape_of(arrays["log_probs"]))}


register(LossSpec(
    name="ctc_loss", function=ctc_loss, vjp=_ctc_vjp, family="sequence",
    arrays=("log_probs", "targets", "input_lengths", "target_lengths"),
    options=(Option("blank", 0), Option("reduction", "mean"), Option("zero_infinity", False)),
    differentiable=("log_probs",),
    summary="connectionist temporal classification over all alignments (`blank`, `zero_infinity`)",
    reference="Graves et al., ICML 2006",
    extra={"dtypes": ("float64", "float32")},  # torch's CPU kernel: "ctc_loss_cpu" not implemented for 'Half'
    torch=TorchBinding(
        function="ctc_loss",
        signature=(("log_probs", REQUIRED), ("targets", REQUIRED), ("input_lengths", REQUIRED),
                   ("target_lengths", REQUIRED), ("blank", 0), ("reduction", "mean"), ("zero_infinity", False)),
        module="CTCLoss",
        module_signature=(("blank", 0), ("reduction", "mean"), ("zero_infinity", False)),
    ),
))
