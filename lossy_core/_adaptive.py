"""Adaptive softmax (Grave et al., "Efficient softmax approximation for GPUs", ICML 2017),
as torch's ``torch.nn.AdaptiveLogSoftmaxWithLoss`` computes it, from explicitly passed weights.

The classes are split by ``cutoffs`` into a shortlist ``[0, cutoffs[0])`` and clusters
``[cutoffs[i], cutoffs[i+1])`` (the last ending at ``n_classes``). The head (``head_weight``
of shape ``(cutoffs[0] + n_clusters, in_features)``, optional ``head_bias``) scores the
shortlist and one entry per cluster; cluster ``i`` scores its own classes through two
bias-free projections ``tail_weights[i] = (W_in (h_i, in_features), W_out (size_i, h_i))``::

    log p(y | x) = log_softmax(head(x))[y]                                   y in the shortlist
    log p(y | x) = log_softmax(head(x))[shortlist + i]
                   + log_softmax(W_out W_in x)[y - cutoffs[i]]               y in cluster i

Not registry losses: the number of weight arrays depends on ``cutoffs``, and the result is
torch's ``(output, loss)`` pair. Gradients come from the framework's autodiff (torch, jax).
Every cluster is evaluated for every row (masked), so the computation has static shapes
and traces under ``jax.jit``/``torch.compile``; torch evaluates each cluster on its rows only
(the same values).
"""

from __future__ import annotations

from ._backend import namespace, shape_of
from ._primitives import log_softmax, take_along_axis
from ._validation import data_check, is_integer


def _boundaries(cutoffs, n_classes):
    return [0, *cutoffs, n_classes]


def _linear(xp, x, weight, bias=None):
    out = xp.matmul(x, xp.matrix_transpose(weight))
    return out if bias is None else out + bias


def _check_weights(head_weight, tail_weights, cutoffs):
    shortlist, n_clusters = cutoffs[0], len(cutoffs) - 1
    if shape_of(head_weight)[0] != shortlist + n_clusters:
        raise ValueError(f"adaptive softmax: 'head_weight' must have {shortlist + n_clusters} rows "
                         f"(cutoffs[0] + number of clusters), got shape {list(shape_of(head_weight))}")
    if len(tail_weights) != n_clusters:
        raise ValueError(f"adaptive softmax: expected {n_clusters} (W_in, W_out) pairs in 'tail_weights', "
                         f"got {len(tail_weights)}")


def adaptive_log_prob(input, head_weight, tail_weights, /, *, cutoffs, head_bias=None):
    """``log p(y | x)`` for every class: ``(B, n_classes)`` for ``input`` ``(B, in_features)``.

    ``cutoffs`` are torch's module ``cutoffs`` (ending with ``n_classes``). Reference:
    ``torch.nn.AdaptiveLogSoftmaxWithLoss.log_prob``.
    """
    cutoffs = list(cutoffs)
    _check_weights(head_weight, tail_weights, cutoffs)
    xp = namespace(input, head_weight)
    if input.ndim != 2:  # torch 2.13's log_prob fails in its log_softmax over dim 1 for a 1-D input
        raise IndexError(f"Dimension out of range (expected to be in range of [-1, 0], but got 1): adaptive "
                         f"softmax log_prob expects 'input' of shape (B, in_features), got {list(shape_of(input))}")
    x = input
    head = log_softmax(xp, _linear(xp, x, head_weight, head_bias), axis=1)
    shortlist = cutoffs[0]
    parts = [head[:, :shortlist]]
    for i, (w_in, w_out) in enumerate(tail_weights):
        cluster = log_softmax(xp, _linear(xp, _linear(xp, x, w_in), w_out), axis=1)
        parts.append(cluster + head[:, shortlist + i: shortlist + i + 1])
    return xp.concat(parts, axis=1)


def adaptive_predict(input, head_weight, tail_weights, /, *, cutoffs, head_bias=None):
    """The most likely class per row: ``argmax(adaptive_log_prob(...))``.

    Reference: ``torch.nn.AdaptiveLogSoftmaxWithLoss.predict`` (which skips the clusters
    when the head's best entry is a shortlist class; the same class).
    """
    xp = namespace(input, head_weight)
    log_prob = adaptive_log_prob(input, head_weight, tail_weights, cutoffs=cutoffs, head_bias=head_bias)
    return xp.argmax(log_prob, axis=-1)


def adaptive_log_softmax_with_loss(input, target, head_weight, tail_weights, /, *, cutoffs, head_bias=None):
    """``(output, loss)``: ``output[b] = log p(target[b] | input[b])`` and ``loss = mean(-output)``.

    ``input`` ``(B, in_features)`` with ``target`` ``(B)``, or ``(in_features)`` with a 0-d
    ``target`` (then ``output`` is 0-d). A target outside ``[0, n_classes)`` raises
    RuntimeError (NaN under tracing). Reference: ``torch.nn.AdaptiveLogSoftmaxWithLoss.forward``.
    """
    cutoffs = list(cutoffs)
    _check_weights(head_weight, tail_weights, cutoffs)
    xp = namespace(input, target, head_weight)
    if target.ndim == 1:
        if shape_of(input)[0] != shape_of(target)[0]:
            raise RuntimeError("Input and target should have the same size in the batch dimension.")
        if input.ndim != 2:
            raise RuntimeError(f"1D target tensor expects 2D input tensors, but found inputs with size "
                               f"{list(shape_of(input))}")
    elif target.ndim == 0:
        if input.ndim != 1:
            raise RuntimeError(f"0D target tensor expects 1D input tensors, but found inputs with size "
                               f"{list(shape_of(input))}")
    else:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if not is_integer(xp, target):
        raise RuntimeError(f"adaptive softmax: expected integer class indices in 'target', got {target.dtype}")
    single = target.ndim == 0
    x = xp.expand_dims(input, axis=0) if single else input
    y = xp.reshape(target, (1,)) if single else target
    n_classes = cutoffs[-1]
    out_of_range = (y < 0) | (y >= n_classes)

    def raise_error(mask):
        raise RuntimeError(f"Target values should be in [0, {n_classes - 1}], but values in range "
                           f"[{int(xp.min(y))}, {int(xp.max(y))}] were found. ")

    bad = data_check(xp, out_of_range, raise_error=raise_error)
    y = xp.where(out_of_range, xp.zeros_like(y), y)
    head = log_softmax(xp, _linear(xp, x, head_weight, head_bias), axis=1)
    shortlist = cutoffs[0]
    head_index = y
    output = xp.zeros(shape_of(y), dtype=head.dtype, device=getattr(head, "device", None))
    bounds = _boundaries(cutoffs[:-1], n_classes)
    for i, (w_in, w_out) in enumerate(tail_weights):
        low, high = bounds[i + 1], bounds[i + 2]
        in_cluster = (y >= low) & (y < high)
        relative = xp.where(in_cluster, y - low, xp.zeros_like(y))
        cluster = log_softmax(xp, _linear(xp, _linear(xp, x, w_in), w_out), axis=1)
        picked = xp.squeeze(take_along_axis(xp, cluster, xp.expand_dims(relative, axis=1), axis=1), axis=1)
        output = xp.where(in_cluster, output + picked, output)
        head_index = xp.where(in_cluster, xp.full_like(y, shortlist + i), head_index)
    output = output + xp.squeeze(take_along_axis(xp, head, xp.expand_dims(head_index, axis=1), axis=1), axis=1)
    if bad is not None:
        output = output * xp.where(bad, xp.full_like(output, xp.nan), xp.ones_like(output))
    loss = xp.mean(-output)
    return (output[0] if single else output), loss
