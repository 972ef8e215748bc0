"""The mean of a loss over every shard of a named axis: ``psum_mean(parts, axis_name)``.

A token (or target, or element) mean over the global batch is::

    L = sum over shards s of numerator_s  /  sum over shards s of denominator_s

where ``(numerator_s, denominator_s)`` is shard s's ``reduction="parts"``
(:class:`lossy_core.LossParts`: the summed loss and torch's ``'mean'`` denominator, e.g. the
count of non-ignored targets). Averaging each shard's own ``'mean'`` with ``lax.pmean``
instead gives ``(x_1/n_1 + x_2/n_2) / 2``, which is not ``(x_1 + x_2) / (n_1 + n_2)`` once the
shards hold different numbers of valid targets (padding, ``ignore_index``, packed sequences):
a shard with 2 valid tokens then weighs as much as a shard with 8, and a shard with none
makes the whole mean NaN (its 0/0). ``pmean`` is right only where every shard has the same
denominator. This is the bug behind transformers' gradient-accumulation fix
(huggingface/transformers PR #34191, ``num_items_in_batch``), and the reason flax's examples
``psum`` a loss sum and a weight sum separately for their metrics.

``psum_mean`` is for code that runs per shard with a named axis: ``jax.shard_map``,
``jax.pmap``, ``jax.vmap(..., axis_name=...)``. It ``psum``\\ s the numerator and the
(``stop_gradient``-ed) denominator over ``axis_name`` and divides once with
:func:`lossy_core.finalize`, so every shard gets the global value.

Under plain ``jax.jit`` with sharded arrays (``NamedSharding``, GSPMD), no ``psum_mean`` is
needed: the program is written for the global batch and the compiler inserts the collectives,
so ``lossy_core.finalize(loss(..., reduction="parts"))``, or just ``reduction="mean"``, is
already the global mean, value and gradient.

The torch counterpart is :func:`lossy_torch.distributed.global_mean`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from lossy_core import LossParts, finalize
from lossy_core._reductions import check_empty_policy

__all__ = ["psum_mean"]


def _check_axis_name(axis_name):
    if isinstance(axis_name, str):
        return
    if isinstance(axis_name, tuple) and axis_name and all(isinstance(a, str) for a in axis_name):
        return
    if isinstance(axis_name, tuple):
        got = "()" if not axis_name else f"tuple of ({', '.join(type(a).__name__ for a in axis_name)})"
    else:
        got = type(axis_name).__name__
    raise TypeError(f"axis_name must be a str or a non-empty tuple of str (the mapped axes), got {got}")


def psum_mean(parts, axis_name, *, empty="nan"):
    """``psum(numerator) / psum(denominator)`` over ``axis_name``: the global mean, on every shard.

    That is ``finalize(LossParts(lax.psum(numerator, axis_name),
    lax.psum(lax.stop_gradient(denominator), axis_name)), empty=empty)``, computed with one
    ``psum`` of the stacked pair.

    Args:
        parts: a :class:`lossy_core.LossParts` (or any ``(numerator, denominator)`` pair of
            ``jax.Array``), e.g. ``lossy_jax.cross_entropy(..., reduction="parts")`` on this
            shard's rows, or the :func:`lossy_core.combine` of its micro-batches. The gradient
            flows through the numerator; the denominator's, if any, is ignored
            (``stop_gradient``).
        axis_name: the mapped axis to reduce over, a name bound by ``jax.shard_map`` (a mesh
            axis), ``jax.pmap`` or ``jax.vmap(axis_name=...)``, or a tuple of such names. Outside
            any of them ``lax.psum`` raises ``NameError: unbound axis name``.
        empty: the value where the *global* denominator is 0 (``'nan'``, ``'zero'``,
            ``'clamp1'``; see :func:`lossy_core.finalize`). A shard whose own denominator is 0
            needs no policy: its numerator (0) and its count (0) are simply added.

    Returns:
        The global mean, a 0-d array, the same on every shard (invariant over ``axis_name``,
        so ``shard_map``'s ``out_specs=P()`` accepts it).

    Gradient. With ``D`` the global denominator, ``d L / d numerator_s = 1 / D`` for every
    shard s (the denominator has none), so the one-device gradient is the sum over the shards
    of ``(1 / D) d numerator_s``: each shard holds its own share of it. How the shares are
    added depends on the transformation:

    - ``jax.shard_map`` (default ``check_vma=True``): with respect to per-shard (varying)
      parameters, each shard's gradient is its share (``psum``'s transpose hands every shard
      its cotangent unchanged), so ``lax.psum`` of the gradients is the one-device gradient.
      ``jax.grad`` taken outside the ``shard_map``, or inside it with respect to replicated
      (``P()``, unvarying) parameters, already is (JAX inserts that ``psum``).
    - ``jax.pmap``, and ``shard_map(..., check_vma=False)``: ``psum``'s transpose there is
      ``psum`` (each device's output cotangent is summed over the devices), so each device's
      gradient is W times its share (W the axis size). ``lax.pmean`` of the gradients, the
      usual ``pmap`` training step, is the one-device gradient; ``psum`` of them is W times it.
    - ``jax.vmap(..., axis_name=...)``: ``jax.grad`` taken outside the ``vmap`` of any one
      example's result is the gradient of ``finalize(combine(per-example parts))``.
    """
    if not isinstance(parts, tuple) or len(parts) != 2:
        raise TypeError(
            "parts must be a (numerator, denominator) pair such as lossy_core.LossParts "
            f"(reduction='parts'), got {type(parts).__name__}"
        )
    check_empty_policy(empty)
    _check_axis_name(axis_name)
    numerator, denominator = parts
    for name, value in (("numerator", numerator), ("denominator", denominator)):
        if not isinstance(value, jax.Array):  # tracers (jit, grad, shard_map, pmap, vmap) are too
            raise TypeError(f"parts.{name} must be a jax.Array, got {type(value).__name__}")

    denominator = lax.stop_gradient(denominator).astype(numerator.dtype)
    numerator, denominator = jnp.broadcast_arrays(numerator, denominator)
    # One collective for both; the denominator has no gradient, so only the numerator's flows.
    total = lax.psum(jnp.stack([numerator, denominator]), axis_name)
    return finalize(LossParts(total[0], total[1]), empty=empty)
