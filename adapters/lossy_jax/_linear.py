"""``lossy_jax.linear_cross_entropy``: the chunk loop of ``lossy_core._linear`` as ``lax.scan``.

The per-chunk formula is ``lossy_core._linear.chunk`` (written once, there); the call is laid out
by ``lossy_core._linear.plan`` and reduced by ``lossy_core._linear.finish``. This module owns only
the loop and the gradient rule:

- **The loop is ``jax.lax.scan`` over row chunks.** Under ``jit`` a Python loop bounds nothing
  (XLA schedules every chunk's logits at once: 1954 MiB of scratch against 157 MiB for a scan at
  N=4096, D=1024, V=32000, large-vocab-ce.md section 5). The rows are padded to a multiple of
  the chunk with positions whose gradient scale (and, for the ``'none'`` recompute, upstream
  gradient) is 0, so every step has one shape and the padding contributes nothing; the per-row
  outputs are sliced back to N rows before the reduction.
- **The gradient is a ``jax.custom_vjp``.** For ``'mean'``/``'sum'`` the forward computes the
  gradients in the same scan as the value -- one logits matmul per chunk, ``dX_c = dZ_c @ W``
  as a scan output, ``dW += dZ_c.T @ X_c`` and ``db += sum dZ_c`` as the scan's carry -- and saves
  them; the backward multiplies them by the (scalar) cotangent: three matmuls in all (the
  logits, dX, dW), as autodiff of full logits, where a backward that recomputes the logits
  needs four. For ``'none'`` the cotangent is per position, so the backward
  recomputes in a second scan with it. With ``return_lse=True`` the lse output has a cotangent
  too: ``symbolic_zeros=True`` tells the backward when it is a symbolic zero (the one-pass
  gradients stand) and when it is real (the backward recomputes with ``upstream_lse``).
- ``symbolic_zeros=True`` also tells the forward which inputs are differentiated: the gradients
  of the others (e.g. ``linear_weight`` frozen) are not computed at all. A traced
  ``label_smoothing``/``lse_square_scale`` that is differentiated gets its exact gradient from a
  forward-mode derivative (``jax.jvp``) of the value scan, computed only then.
- Not differentiable, as in torch: integer targets (a symbolic-zero cotangent) and the class
  ``weight``: differentiating with respect to it raises RuntimeError, as torch does, rather than
  returning a gradient of 0 that is not the true one (wrap it in ``jax.lax.stop_gradient``).
  A ``custom_vjp`` supports reverse mode only: ``jax.jvp``/``jax.jacfwd`` of this loss raise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from lossy_core import LossParts
from lossy_core import _linear as _core
from lossy_core._backend import is_number

_HYPERPARAMETERS = ("label_smoothing", "lse_square_scale")


@jax.tree_util.register_static
@dataclass(frozen=True)
class _Static:
    """A hashable Python value carried through the residuals (no array leaves)."""

    value: Any


@dataclass(frozen=True)
class _Config:
    """Everything static about a call: the structural options and the hyperparameters given as
    Python numbers (the default-0 specialisation); ``traced`` names the others, in order."""

    reduction: str
    ignore_index: Any
    softcap: Any
    return_lse: bool
    chunk_size: Any
    fixed: tuple  # ((name, Python number), ...)
    traced: tuple  # names of the traced hyperparameters, in the order of ``hyper``


def chunk_bytes(linear_weight):
    """The automatic chunk's budget under XLA: one chunk's logits may take half the weight
    gradient (at least ``lossy_core._linear.CHUNK_BYTES``). The scan then needs at most about
    twice the weight gradient of scratch (the carried gradient, the chunk, dX), and the chunks are
    long enough for XLA's matmuls: at N=4096, D=1024, V=32000 float32 (512 rows), 190 MiB of
    scratch and optax's time on full logits, where 16 MiB chunks (131 rows) took ~1.2x."""
    weight_gradient = jnp.size(linear_weight) * max(4, jnp.dtype(linear_weight.dtype).itemsize)  # float32 for half
    return max(_core.CHUNK_BYTES, weight_gradient // 2)


def _plan(config, input, linear_weight, linear_bias, target, weight, hyper):
    return _core.plan(input, linear_weight, target, linear_bias=linear_bias, weight=weight,
                      reduction=config.reduction, ignore_index=config.ignore_index, softcap=config.softcap,
                      chunk_size=config.chunk_size, chunk_bytes=chunk_bytes(linear_weight),
                      **dict(config.fixed), **dict(zip(config.traced, hyper)))


def _scan(p, want=None, upstream=None, upstream_lse=None):
    """``lossy_core._linear.run`` as one ``lax.scan``: ``(terms, lse, [dX, dW, db, dtarget])``.

    ``want`` (dX, dW, db, dtarget flags) None computes the value only. ``upstream`` ``(N, P)``
    replaces ``p.scale``; ``upstream_lse`` ``(N, P)`` is the gradient of the lse output.
    """
    xp = p.xp
    rows, features = p.x.shape
    size = p.chunk
    steps = -(-rows // size)
    pad = steps * size - rows

    def split(a):
        """``(N, ...)`` -> ``(steps, chunk, ...)``; padded rows are 0 (scale 0: no contribution)."""
        if a is None:
            return None
        if pad:
            a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        return jnp.reshape(a, (steps, size, *a.shape[1:]))

    scale = p.scale if upstream is None else upstream
    kept = split(p.kept)
    target_weight = kept if p.target_weight is p.kept else split(p.target_weight)
    xs = (split(p.x), split(p.target), target_weight, kept, split(scale), split(upstream_lse))
    gradient = want is not None

    def step(carry, xs):
        x, target, target_weight, kept, scale, upstream_lse = xs
        terms, lse, grad_z, grad_q = _core.chunk(xp, p, x, target, target_weight, kept, scale, upstream_lse,
                                                 gradient)
        if not gradient:
            return carry, (terms, lse)
        grad_w, grad_b = carry
        grad_x = grad_z @ p.weight_matrix if want[0] else None
        if grad_w is not None:
            grad_w = grad_w + jnp.matrix_transpose(grad_z) @ x.astype(p.dtype)
        if grad_b is not None:
            grad_b = grad_b + jnp.sum(grad_z, axis=0)
        return (grad_w, grad_b), (terms, lse, grad_x, grad_q if want[3] else None)

    columns = p.num_classes * p.positions
    init = (None, None)
    if gradient:
        init = (jnp.zeros((columns, features), p.dtype) if want[1] else None,
                jnp.zeros((columns,), p.dtype) if want[2] and p.bias is not None else None)
    carry, ys = jax.lax.scan(step, init, xs, length=steps)

    def join(a):
        return None if a is None else jnp.reshape(a, (steps * size, *a.shape[2:]))[:rows]

    if not gradient:
        return join(ys[0]), join(ys[1]), None
    terms, lse, grad_x, grad_q = ys
    return join(terms), join(lse), [join(grad_x), carry[0], carry[1], join(grad_q)]


def _value(config, input, linear_weight, linear_bias, target, weight, hyper):
    p = _plan(config, input, linear_weight, linear_bias, target, weight, hyper)
    terms, lse, _ = _scan(p)
    return _core.finish(p.xp, p, terms, lse, config.return_lse)


def _hyper_tangents(config, values, perturbed):
    """For each traced hyperparameter: None, or (where differentiated) the forward-mode
    derivative of the outputs with respect to it (a value scan with tangents; no residuals)."""
    input, linear_weight, linear_bias, target, weight, hyper = values
    tangents = []
    for i, h in enumerate(hyper):
        if not perturbed[i]:
            tangents.append(None)
            continue

        def outputs(h_i, i=i):
            changed = tuple(h_i if j == i else other for j, other in enumerate(hyper))
            return _value(config, input, linear_weight, linear_bias, target, weight, changed)

        h = jnp.asarray(h)
        tangents.append(jax.jvp(outputs, (h,), (jnp.ones_like(h),))[1])
    return tuple(tangents)


def _numerator(value):
    """A LossParts' numerator (the part that carries gradients and tangents); anything else as is."""
    return value.numerator if isinstance(value, LossParts) else value


def _types(config):
    """The types of the configuration's values: part of the cache key, since ``2 == 2.0 == True``
    would otherwise hand a ``chunk_size=2`` call the function built (and traced) for ``2.0``."""
    return tuple(type(value) for value in dataclasses.astuple(config))


@lru_cache(maxsize=None)
def _loss(config, types):
    """The ``custom_vjp`` loss of one static configuration (``types``: see ``_types``)."""

    @jax.custom_vjp
    def loss(input, linear_weight, linear_bias, target, weight, hyper):
        return _value(config, input, linear_weight, linear_bias, target, weight, hyper)

    def forward(input, linear_weight, linear_bias, target, weight, hyper):
        values = jax.tree_util.tree_map(lambda leaf: leaf.value, (input, linear_weight, linear_bias, target,
                                                                   weight, hyper))
        flags = jax.tree_util.tree_map(lambda leaf: leaf.perturbed, (input, linear_weight, linear_bias, target,
                                                                      weight, hyper))
        if weight is not None and flags[4]:
            raise RuntimeError("The function 'linear_cross_entropy' is not differentiable with respect to argument "
                               "'weight'. This input cannot have requires_grad True. (lossy_jax.linear_cross_entropy:"
                               " the class weights are constants, as in torch; differentiate with respect to "
                               "jax.lax.stop_gradient(weight) or leave them out of the differentiated arguments)")
        p = _plan(config, *values)
        floating_target = jnp.issubdtype(values[3].dtype, jnp.floating)
        want = (flags[0], flags[1], linear_bias is not None and flags[2], p.probabilities and floating_target
                and flags[3])
        tangents = _hyper_tangents(config, values, flags[5])
        if config.reduction != "none" and any(want):  # one pass: the value and the gradients
            terms, lse, grads = _scan(p, want)
        else:  # 'none' (or nothing but a hyperparameter differentiated): recompute in the backward
            terms, lse, grads = _scan(p)
        out = _core.finish(p.xp, p, terms, lse, config.return_lse)
        return out, (values, grads, tangents, _Static(want))

    def backward(residuals, cotangent):
        values, grads, tangents, want = residuals
        want = want.value
        input, linear_weight, linear_bias, target, weight, hyper = values
        g, g_lse = cotangent if config.return_lse else (cotangent, None)
        g = _numerator(g)  # 'parts': the denominator has no gradient, its cotangent is dropped
        g = None if isinstance(g, SymbolicZero) else g
        g_lse = None if isinstance(g_lse, SymbolicZero) else g_lse
        p = _plan(config, *values)
        xp = p.xp
        if not any(want) or (g is None and g_lse is None):
            grads = [None] * 4
        elif grads is not None and g_lse is None:  # one pass: the gradients for an output gradient of 1
            factor = g.astype(p.dtype)
            grads = [None if grad is None else grad * factor for grad in grads]
        else:  # 'none', or an lse cotangent: recompute with the per-position upstream gradients
            upstream = (_core.position_upstream(xp, p, g) if g is not None
                        else jnp.zeros((p.rows, p.positions), p.dtype))
            upstream_lse = None if g_lse is None else jnp.reshape(g_lse.astype(p.dtype), (p.rows, p.positions))
            _, _, grads = _scan(p, want, upstream=upstream, upstream_lse=upstream_lse)
        out = _core.gradients_out(xp, p, grads, input, linear_weight, linear_bias, target)
        hyper_cotangents = []
        for h, tangent in zip(hyper, tangents):
            if tangent is None:
                hyper_cotangents.append(None)
                continue
            t_value, t_lse = tangent if config.return_lse else (tangent, None)
            t_value = _numerator(t_value)
            total = jnp.zeros((), jnp.result_type(h))
            if g is not None:
                total = total + jnp.sum(g * t_value).astype(total.dtype)
            if g_lse is not None:
                total = total + jnp.sum(g_lse * t_lse).astype(total.dtype)
            hyper_cotangents.append(jnp.broadcast_to(total, jnp.shape(h)))
        return (out.get("input"), out.get("linear_weight"), out.get("linear_bias"), out.get("target"), None,
                tuple(hyper_cotangents))

    loss.defvjp(forward, backward, symbolic_zeros=True)
    return loss


def linear_cross_entropy(input, linear_weight, target, /, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, lse_square_scale=0.0, softcap=None,
                         return_lse=False, chunk_size=None):
    hyperparameters = {"label_smoothing": label_smoothing, "lse_square_scale": lse_square_scale}
    fixed = tuple((name, value) for name, value in hyperparameters.items() if is_number(value))
    traced = tuple(name for name in _HYPERPARAMETERS if not is_number(hyperparameters[name]))
    config = _Config(reduction=reduction, ignore_index=ignore_index, softcap=softcap, return_lse=bool(return_lse),
                     chunk_size=chunk_size, fixed=fixed, traced=traced)
    return _loss(config, _types(config))(input, linear_weight, linear_bias, target, weight,
                         tuple(hyperparameters[name] for name in traced))


linear_cross_entropy.__doc__ = f"""``lossy_core.linear_cross_entropy`` as one ``lax.scan`` over row chunks under a
``jax.custom_vjp``, compiled with ``jax.jit``: memory is bounded under ``jit`` (one chunk's logits,
the gradients and the inputs), and ``'mean'``/``'sum'`` take the value and the gradients in one
pass (three matmuls, as autodiff of full logits; a recomputing backward needs four).

Static: ``reduction``, ``ignore_index``, ``softcap``, ``return_lse``, ``chunk_size`` (a new value
compiles anew). Traced: ``label_smoothing``, ``lse_square_scale`` (left at their default 0 as
Python numbers, a specialisation without those terms runs). Works under ``jax.grad``,
``jax.value_and_grad``, ``jax.vmap`` and inside a user's ``jit``; reverse mode only (a
``custom_vjp``: ``jax.jvp`` raises). Differentiable: ``input``, ``linear_weight``, ``linear_bias``,
probability targets, and traced ``label_smoothing``/``lse_square_scale``; differentiating the
class ``weight`` raises RuntimeError, as in torch. Under ``jit`` a class index out of range
makes the loss and the gradients NaN (``lossy_core`` on concrete arrays raises IndexError).

{__import__('inspect').getdoc(_core.linear_cross_entropy)}
"""
