"""Embedding losses on (anchor, positive, negative) triplets: torch's TripletMarginLoss and
TripletMarginWithDistanceLoss, and the pairwise distance they share.

The three arrays have the same number of dimensions and broadcast together; the
last axis holds the embedding (a 0-d array is a 1-dimensional embedding).
"""

from __future__ import annotations

import math

from ._backend import is_concrete, is_number, namespace, shape_of
from ._common import gradient_like, upcast
from ._reductions import check_reduction, finish, reduce, reduction_vjp
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import broadcast_shape, fmt_shape, is_floating, poison

_LEGACY = (("size_average", None), ("reduce", None))


def _difference(xp, x1, x2, eps):
    """``x1 - x2 + eps`` in the compute dtype, with the embedding on a last axis (0-d -> (1,))."""
    if not is_floating(xp, x1) or not is_floating(xp, x2):
        # torch: an integer difference plus the Python float eps is float32 (the default dtype)
        x1, x2 = (x if is_floating(xp, x) else xp.astype(x, xp.float32) for x in (x1, x2))
    d = upcast(xp, x1) - upcast(xp, x2) + eps
    return d if d.ndim else xp.reshape(d, (1,))


def _vector_norm(xp, d, p):
    """``||d||_p`` over the last axis, written so that autodiff gives torch's gradient:
    0 where the norm (or, for p < 1, an entry) is 0, split evenly between ties for p = inf.
    """
    if p == 0:
        return xp.sum(xp.where(d != 0, xp.ones_like(d), d * 0), axis=-1)  # d * 0: connected, gradient 0
    if p == 2 and shape_of(d)[-1] > 0:
        powered = xp.sum(d * d, axis=-1)  # no |d| needed (the default p: six ops fewer per norm)
    else:
        # |d| with gradient 0 at d = 0 under every autodiff (jax's abs has gradient 1 there; torch's 0)
        a = xp.where(d < 0, -d, xp.where(d > 0, d, d * 0))
        if p == 1 or shape_of(d)[-1] == 0:
            return xp.sum(a, axis=-1)
        if p == math.inf:
            return xp.max(a, axis=-1)
        if not p > 0:  # negative (or NaN) p
            return xp.sum(a ** p, axis=-1) ** (1 / p)
        nonzero = a > 0
        powered = xp.sum(xp.where(nonzero, xp.where(nonzero, a, xp.ones_like(a)) ** p, a * 0), axis=-1)
    positive = powered > 0
    safe = xp.where(positive, powered, xp.ones_like(powered))
    root = xp.sqrt(safe) if p == 2 else safe ** (1 / p)
    return xp.where(positive, root, powered * 0)


def _vector_norm_grad(xp, d, norm, p):
    """torch's ``norm_backward``: d||d||_p / dd (``norm`` has a kept last axis)."""
    sign = xp.sign(d)
    zero = xp.zeros_like(d)
    if p == 0:
        return zero
    if p == 1:
        return sign
    if p == math.inf:
        tied = xp.astype(xp.abs(d) == norm, d.dtype)
        return sign * tied / xp.sum(tied, axis=-1, keepdims=True)
    a = xp.abs(d)
    if p < 1:
        scaled = xp.where(a > 0, sign * xp.where(a > 0, a, xp.ones_like(a)) ** (p - 1), zero)
        return scaled * norm ** (1 - p)
    safe = xp.where(norm > 0, norm, xp.ones_like(norm))
    scaled = d if p == 2 else sign * a ** (p - 1)
    return xp.where(norm > 0, scaled / (safe if p == 2 else safe ** (p - 1)), zero)


def pairwise_distance(x1, x2, /, *, p=2.0, eps=1e-6, keepdim=False):
    """``||x1 - x2 + eps||_p`` over the last axis (``torch.nn.functional.pairwise_distance``).

    ``eps`` is added inside the norm, to every entry. ``x1`` and ``x2`` broadcast;
    a 0-d pair gives ``|x1 - x2 + eps|``. ``p`` is any real or ``inf`` (p = 0 counts
    the nonzero entries).
    """
    xp = namespace(x1, x2)
    scalar = x1.ndim == 0 and x2.ndim == 0
    norm = _vector_norm(xp, _difference(xp, x1, x2, eps), p)
    if keepdim and not scalar:
        norm = xp.expand_dims(norm, axis=-1)
    return xp.reshape(norm, ()) if scalar else norm


def _check_margin(margin):
    """torch 2.13 (both triplet losses): ``ValueError: margin must be greater than 0, got 0.0``."""
    if is_number(margin) or is_concrete(margin):
        if not float(margin) > 0:
            raise ValueError(
                f"margin must be greater than 0, got {margin}: the triplet losses expect 'margin' > 0"
            )
        return None
    return ~(margin > 0)


def _check_triplet_arrays(anchor, positive, negative):
    dims = (anchor.ndim, positive.ndim, negative.ndim)
    if not dims[0] == dims[1] == dims[2]:
        raise RuntimeError(
            "The anchor, positive, and negative tensors are expected to have the same number of dimensions, "
            f"but got: anchor {dims[0]}D, positive {dims[1]}D, and negative {dims[2]}D inputs"
        )
    shapes = [shape_of(a) for a in (anchor, positive, negative)]
    if broadcast_shape(*shapes) is None:
        raise RuntimeError(
            f"The size of tensor a must match the size of tensor b: the shapes of 'anchor' {fmt_shape(shapes[0])}, "
            f"'positive' {fmt_shape(shapes[1])} and 'negative' {fmt_shape(shapes[2])} must broadcast"
        )


def _triplet(xp, distance, anchor, positive, negative, margin, swap, reduction, bad_margin):
    d_pos = distance(anchor, positive)
    d_neg = distance(anchor, negative)
    if swap:
        d_neg = xp.minimum(d_neg, distance(positive, negative))
    z = margin + d_pos - d_neg
    hinge = xp.where(z < 0, xp.zeros_like(z), z)  # clamp_min(z, 0): NaN stays NaN, gradient 1 at z = 0
    return reduce(xp, poison(xp, hinge, bad_margin), reduction)


def _result_dtype(xp, *arrays):
    floats = [a for a in arrays if is_floating(xp, a)]
    return xp.result_type(*floats) if floats else xp.float32


def triplet_margin_loss(anchor, positive, negative, /, *, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        reduction="mean"):
    """Triplet margin loss (Balntas et al. 2016; ``torch.nn.TripletMarginLoss``)::

        loss_n = max(0, margin + d(a_n, p_n) - d(a_n, n_n)),   d(x, y) = ||x - y + eps||_p

    over the last axis (``pairwise_distance``). With ``swap``, ``d(a, n)`` is replaced
    by ``min(d(a, n), d(p, n))``. The three arrays have the same number of dimensions
    and broadcast; the per-triplet losses have the broadcast shape without its last
    axis. ``margin`` must be > 0 (a ValueError in torch 2.13; NaN under tracing).
    Reference: ``torch.nn.functional.triplet_margin_loss``.
    """
    xp = namespace(anchor, positive, negative)
    check_reduction(reduction)
    bad_margin = _check_margin(margin)
    _check_triplet_arrays(anchor, positive, negative)

    def distance(x1, x2):
        return pairwise_distance(x1, x2, p=p, eps=eps)

    value = _triplet(xp, distance, anchor, positive, negative, margin, swap, reduction, bad_margin)
    dtype = _result_dtype(xp, anchor, positive, negative)
    return finish(xp, value, dtype)


def triplet_margin_with_distance_loss(anchor, positive, negative, /, *, distance_function=None, margin=1.0,
                                      swap=False, reduction="mean"):
    """Triplet margin loss with any distance (``torch.nn.TripletMarginWithDistanceLoss``)::

        loss_n = max(0, margin + D(a_n, p_n) - D(a_n, n_n))

    ``distance_function(x1, x2)`` is any callable on the backend's arrays (a torch
    function for lossy_torch, a jax-traceable one for lossy_jax); the default
    (None) is ``pairwise_distance`` (p = 2, eps = 1e-6). ``swap`` replaces
    ``D(a, n)`` with ``min(D(a, n), D(p, n))``; ``margin`` must be > 0. The three
    arrays have the same number of dimensions.
    Gradients: autodiff (lossy_torch, lossy_jax) differentiates any callable;
    ``lossy_core.value_and_grad`` has the analytic gradient for the default
    distance only and raises NotImplementedError for a custom one.
    Reference: ``torch.nn.functional.triplet_margin_with_distance_loss``.
    """
    xp = namespace(anchor, positive, negative)
    check_reduction(reduction)
    bad_margin = _check_margin(margin)
    _check_triplet_arrays(anchor, positive, negative)
    if distance_function is None:
        distance = pairwise_distance
    elif callable(distance_function):
        distance = distance_function
    else:
        raise TypeError(
            f"'{type(distance_function).__name__}' object is not callable: triplet_margin_with_distance_loss "
            "expects 'distance_function' to be a callable (x1, x2) -> distances, or None"
        )
    value = _triplet(xp, distance, anchor, positive, negative, margin, swap, reduction, bad_margin)
    if distance_function is None:
        dtype = _result_dtype(xp, anchor, positive, negative)
        value = finish(xp, value, dtype)
    return value


# -- gradients ------------------------------------------------------------------------

def _triplet_vjp_for(xp, arrays, options, upstream, p, eps):
    """With ``G(x, y)`` the norm's gradient at ``x - y + eps`` and ``s = [hinge active]``
    (clamp_min passes the gradient at 0)::

        d/da = s (G(a, p) - c G(a, n)),  d/dp = s (-G(a, p) - c' G(p, n)),  d/dn = s (c G(a, n) + c' G(p, n))

    where ``c = 1, c' = 0`` without ``swap``, else the minimum's weights (1/2 each at a tie).
    """
    anchor, positive, negative = arrays["anchor"], arrays["positive"], arrays["negative"]
    scalar = anchor.ndim == 0

    def parts(x1, x2):
        d = _difference(xp, x1, x2, eps)
        norm = xp.expand_dims(_vector_norm(xp, d, p), axis=-1)
        return norm, _vector_norm_grad(xp, d, norm, p)

    n_pos, g_pos = parts(anchor, positive)
    n_neg, g_neg = parts(anchor, negative)
    n_eff = n_neg
    if options["swap"]:
        n_swap, g_swap = parts(positive, negative)
        c = xp.astype(n_neg < n_swap, n_neg.dtype) + 0.5 * xp.astype(n_neg == n_swap, n_neg.dtype)
        n_eff = xp.minimum(n_neg, n_swap)
    z = options["margin"] + n_pos - n_eff
    loss_shape = shape_of(z)[:-1]
    dtype = g_pos.dtype
    scale = reduction_vjp(xp, xp.astype(upstream, dtype), loss_shape, options["reduction"])
    scale = xp.expand_dims(scale, axis=-1) * xp.astype(~(z < 0), dtype)
    if options["swap"]:
        grads = (g_pos - c * g_neg, -g_pos - (1 - c) * g_swap, c * g_neg + (1 - c) * g_swap)
    else:
        grads = (g_pos - g_neg, -g_pos, g_neg)
    out = {}
    for name, grad in zip(("anchor", "positive", "negative"), grads):
        grad = scale * grad
        if scalar:
            grad = xp.reshape(grad, ())
        out[name] = gradient_like(xp, grad, arrays[name])
    return out


def _triplet_margin_vjp(xp, arrays, options, upstream):
    return _triplet_vjp_for(xp, arrays, options, upstream, options["p"], options["eps"])


def _triplet_with_distance_vjp(xp, arrays, options, upstream):
    """Analytic for the default distance (pairwise_distance, p = 2, eps = 1e-6) only."""
    if options["distance_function"] is not None:
        raise NotImplementedError(
            "value_and_grad(triplet_margin_with_distance_loss): the analytic gradient exists only for the "
            "default distance (distance_function=None); a custom distance_function is differentiated by "
            "autodiff: use lossy_torch (torch autograd) or lossy_jax (jax.grad)"
        )
    return _triplet_vjp_for(xp, arrays, options, upstream, 2.0, 1e-6)


_TRIPLET_ARRAYS = ("anchor", "positive", "negative")
register(LossSpec(
    name="triplet_margin_loss", function=triplet_margin_loss, vjp=_triplet_margin_vjp, family="embedding",
    arrays=_TRIPLET_ARRAYS,
    options=(Option("margin", 1.0, traced=True, check=_check_margin), Option("p", 2.0),
             Option("eps", 1e-6, traced=True), Option("swap", False), Option("reduction", "mean")),
    differentiable=_TRIPLET_ARRAYS,
    summary="triplet margin loss, `||a - b + eps||_p` distances (`margin`, `p`, `eps`, `swap`)",
    torch=TorchBinding(
        function="triplet_margin_loss",
        signature=(("anchor", REQUIRED), ("positive", REQUIRED), ("negative", REQUIRED), ("margin", 1.0),
                   ("p", 2), ("eps", 1e-6), ("swap", False), *_LEGACY, ("reduction", "mean")),
        module="TripletMarginLoss",
        module_signature=(("margin", 1.0), ("p", 2.0), ("eps", 1e-6), ("swap", False), *_LEGACY,
                          ("reduction", "mean")),
    ),
))
register(LossSpec(
    name="triplet_margin_with_distance_loss", function=triplet_margin_with_distance_loss,
    vjp=_triplet_with_distance_vjp, family="embedding", arrays=_TRIPLET_ARRAYS,
    options=(Option("distance_function", None), Option("margin", 1.0, traced=True, check=_check_margin),
             Option("swap", False), Option("reduction", "mean")),
    differentiable=_TRIPLET_ARRAYS,
    summary="triplet margin loss with any distance callable (default pairwise distance; `margin`, `swap`)",
    torch=TorchBinding(
        function="triplet_margin_with_distance_loss",
        signature=(("anchor", REQUIRED), ("positive", REQUIRED), ("negative", REQUIRED),
                   ("distance_function", None), ("margin", 1.0), ("swap", False), ("reduction", "mean")),
        keyword_only=("distance_function", "margin", "swap", "reduction"),
        module="TripletMarginWithDistanceLoss",
        module_signature=(("distance_function", None), ("margin", 1.0), ("swap", False), ("reduction", "mean")),
        module_keyword_only=("distance_function", "margin", "swap", "reduction"), autocast="none",
    ),
))
