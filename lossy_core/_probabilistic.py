"""Negative log-likelihoods of simple distributions: Poisson and Gaussian.

Both are pointwise over ``input``/``target`` (broadcast together silently, as
torch does) and reduce with ``'mean'`` over every element.
"""

from __future__ import annotations

import math

from ._autodiff import custom_gradient
from ._backend import is_number, namespace, quiet_floating_point, shape_of
from ._common import gradient_like, spread_upstream, upcast
from ._primitives import stop_gradient
from ._reductions import REDUCTIONS, check_reduction, finish, reduce
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import broadcast_shape, data_check, fmt_shape, is_floating, poison

_LEGACY = (("size_average", None), ("reduce", None))
_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def require_broadcastable(loss, **arrays):
    """The broadcast shape of the named arrays or shapes (torch's elementwise ops: RuntimeError when they do not)."""
    shapes = {name: shape_of(a) if hasattr(a, "shape") else tuple(a) for name, a in arrays.items()}
    shape = broadcast_shape(*shapes.values())
    if shape is None:
        given = ", ".join(f"'{name}' {fmt_shape(s)}" for name, s in shapes.items())
        raise RuntimeError(
            f"The size of tensor a must match the size of tensor b: {loss} expects arrays that broadcast "
            f"together, got {given}"
        )
    return shape


def _broadcast_all(xp, *arrays, loss, names=None):
    """Broadcast ``arrays`` together (RuntimeError naming them, ``names``, when they cannot)."""
    names = names or [f"array {i}" for i in range(len(arrays))]
    shape = require_broadcastable(loss, **dict(zip(names, arrays)))
    return [a if shape_of(a) == shape else xp.broadcast_to(a, shape) for a in arrays]


# -- Poisson -----------------------------------------------------------------------

def _stirling_backward(xp, arrays, upstream, needs):
    """torch differentiates ``masked_fill(y log y - y + log(2 pi y) / 2, y <= 1, 0)``.

    ``log y + 1 / (2y)`` where ``y > 1``; 0 where ``0 < y <= 1``; NaN where ``y <= 0``
    (torch's masked gradient 0 times ``log y = -inf`` or NaN).
    """
    (target,) = arrays
    if not needs[0]:
        return (None,)
    safe = xp.where(target > 1, target, xp.ones_like(target))
    with quiet_floating_point(xp):
        inside = xp.log(safe) + 0.5 / safe
    nan = xp.full_like(target, xp.nan)
    local = xp.where(target > 1, inside, xp.where(target > 0, xp.zeros_like(target), nan))
    return (upstream * local,)


@custom_gradient(_stirling_backward)
def _stirling_term(xp, target):
    """Stirling's ``y log y - y + log(2 pi y) / 2`` where ``y > 1``, else 0 (torch's ``full=True``)."""
    safe = xp.where(target > 1, target, xp.ones_like(target))
    term = safe * xp.log(safe) - safe + 0.5 * xp.log(2 * math.pi * safe)
    return xp.where(target > 1, term, xp.zeros_like(target))


def _poisson_terms(xp, input, target, log_input, eps):
    x, y = _broadcast_all(xp, upcast(xp, input), upcast(xp, target), loss="poisson_nll_loss",
                          names=("input", "target"))
    if log_input:
        return x, y, xp.exp(x) - y * x
    with quiet_floating_point(xp):
        return x, y, x - y * xp.log(x + eps)


def poisson_nll_loss(input, target, /, *, log_input=True, full=False, eps=1e-08, reduction="mean"):
    """Poisson negative log-likelihood::

        loss_i = exp(x_i) - y_i x_i                   (log_input=True: x is log(rate))
        loss_i = x_i - y_i log(x_i + eps)             (log_input=False: x is the rate)

    plus, with ``full=True``, Stirling's approximation of ``log(y!)``,
    ``y log y - y + log(2 pi y) / 2``, only where ``y > 1`` (torch's rule). ``input``
    and ``target`` broadcast together; targets are not validated (negative ones are
    accepted, as in torch). The target gradient with ``full=True`` is NaN where
    ``y <= 0``, as torch's. Reference: ``torch.nn.functional.poisson_nll_loss``.
    """
    xp = namespace(input, target)
    check_reduction(reduction)
    out_dtype = xp.result_type(input, target)
    _, y, terms = _poisson_terms(xp, input, target, log_input, eps)
    if full:
        terms = terms + _stirling_term(xp, y)
    return finish(xp, reduce(xp, terms, reduction), out_dtype)


def _poisson_vjp(xp, arrays, options, upstream):
    """d/dx = exp(x) - y (log_input) or 1 - y / (x + eps);  d/dy = -x or -log(x + eps), plus Stirling's."""
    input, target = arrays["input"], arrays["target"]
    x, y, _ = _poisson_terms(xp, input, target, options["log_input"], options["eps"])
    scale = spread_upstream(xp, upstream, x.dtype, x.shape, options["reduction"])
    with quiet_floating_point(xp):
        if options["log_input"]:
            d_input, d_target = xp.exp(x) - y, -x
        else:
            d_input, d_target = 1 - y / (x + options["eps"]), -xp.log(x + options["eps"])
    grads = {"input": gradient_like(xp, scale * d_input, input)}
    if is_floating(xp, target):
        grad_target = scale * d_target
        if options["full"]:
            grad_target = grad_target + _stirling_backward(xp, (y,), scale, (True,))[0]
        grads["target"] = gradient_like(xp, grad_target, target)
    return grads


register(LossSpec(
    name="poisson_nll_loss", function=poisson_nll_loss, vjp=_poisson_vjp, family="probabilistic",
    arrays=("input", "target"),
    options=(Option("log_input", True), Option("full", False), Option("eps", 1e-08, traced=True),
             Option("reduction", "mean")),
    differentiable=("input", "target"),
    summary="Poisson NLL (`log_input`; `full` adds Stirling's term where target > 1)",
    torch=TorchBinding(
        function="poisson_nll_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("log_input", True), ("full", False),
                   ("size_average", None), ("eps", 1e-08), ("reduce", None), ("reduction", "mean")),
        module="PoissonNLLLoss",
        forward_arguments=("log_input", "target"),
        module_signature=(("log_input", True), ("full", False), ("size_average", None), ("eps", 1e-08),
                          ("reduce", None), ("reduction", "mean")),
    ),
))


# -- Gaussian ----------------------------------------------------------------------

def _negative_variance(_):
    raise ValueError(
        "var has negative entry/entries: gaussian_nll_loss expects a non-negative variance in 'var'"
    )


def gaussian_var_from_number(xp, input, var):
    """A Python-number ``var``: checked, then ``var * ones_like(input)`` (torch's own step)."""
    if var < 0:
        _negative_variance(None)
    return xp.full(input.shape, float(var), dtype=input.dtype, device=getattr(input, "device", None))


def _aligned_variance(xp, input, var):
    """``var`` shaped to broadcast against ``input`` under torch's rules (ValueError otherwise).

    Accepted: the input's shape; the input's shape minus its last dim (a trailing
    axis is added); the input's shape with exactly one dim of size 1 where the input's
    differs (pytorch/pytorch#176244: two or more size-1 dims are rejected).
    """
    input_shape, var_shape = shape_of(input), shape_of(var)
    if var_shape == input_shape:
        return var
    if var_shape == input_shape[:-1]:
        return xp.expand_dims(var, axis=-1)
    if len(var_shape) == len(input_shape) and sum(v for i, v in zip(input_shape, var_shape) if i != v) == 1:
        return var
    raise ValueError(
        f"var is of incorrect size: gaussian_nll_loss expects 'var' of the shape of 'input' "
        f"({fmt_shape(input_shape)}), that shape minus its last dim, or that shape with one dim of size 1; "
        f"got {fmt_shape(var_shape)}"
    )


def _gaussian_setup(xp, input, target, var, eps):
    var = _aligned_variance(xp, input, var)
    x, y, v = _broadcast_all(xp, upcast(xp, input), upcast(xp, target), upcast(xp, var), loss="gaussian_nll_loss",
                             names=("input", "target", "var"))
    # torch clamps a clone of var under no_grad: var's gradient passes straight through the clamp
    # (``v - stop_gradient(v)`` is 0 with gradient 1); a traced eps gets d/deps where it clamps.
    below = v < eps
    clamped = xp.where(below, eps + xp.zeros_like(v), v)
    return x, y, xp.where(below, eps + (v - stop_gradient(xp, v)), v), clamped


def gaussian_nll_loss(input, target, var, /, *, full=False, eps=1e-06, reduction="mean"):
    """Gaussian negative log-likelihood with a predicted variance::

        loss_i = (log(max(var_i, eps)) + (input_i - target_i)^2 / max(var_i, eps)) / 2

    plus ``log(2 pi) / 2`` with ``full=True``. The clamp at ``eps`` has no gradient:
    ``var``'s gradient is that of the clamped value, passed straight through (torch
    clamps under ``no_grad``). ``var`` has the input's shape, the input's shape minus
    its last dim, the input's shape with one dim of size 1, or is a Python float;
    other shapes raise ValueError, as do negative entries. ``target`` broadcasts with
    the input. Reference: ``torch.nn.functional.gaussian_nll_loss`` (Nix & Weigend, 1994).
    """
    if is_number(var):
        var = gaussian_var_from_number(namespace(input, target), input, var)
    xp = namespace(input, target, var)
    bad = data_check(xp, var < 0, raise_error=_negative_variance)
    _aligned_variance(xp, input, var)
    if reduction not in REDUCTIONS:  # torch's message for this loss, before check_reduction's wording
        raise ValueError(f"{reduction} is not valid: gaussian_nll_loss expects reduction 'none', 'mean', 'sum' "
                         "or 'parts'")
    out_dtype = xp.result_type(input, target, var)
    x, y, v, _ = _gaussian_setup(xp, input, target, var, eps)
    difference = x - y
    terms = 0.5 * (xp.log(v) + difference * difference / v)
    if full:
        terms = terms + _HALF_LOG_TWO_PI
    if bad is not None:  # traced: a negative variance gives NaN
        terms = poison(xp, terms, _aligned_variance(xp, input, bad))
    return finish(xp, reduce(xp, terms, reduction), out_dtype)


def _gaussian_vjp(xp, arrays, options, upstream):
    """With ``v = max(var, eps)`` and ``d = x - y``: d/dx = d / v = -d/dy;  d/dvar = (1/v - d^2/v^2) / 2."""
    input, target, var = arrays["input"], arrays["target"], arrays["var"]
    number = is_number(var)  # a Python float: no gradient
    if number:
        var = gaussian_var_from_number(xp, input, var)
    x, y, _, v = _gaussian_setup(xp, input, target, var, options["eps"])
    scale = spread_upstream(xp, upstream, x.dtype, x.shape, options["reduction"])
    difference = x - y
    ratio = difference / v
    grads = {"input": gradient_like(xp, scale * ratio, input)}
    if is_floating(xp, target):
        grads["target"] = gradient_like(xp, -scale * ratio, target)
    if not number and is_floating(xp, var):
        grad_var = gradient_like(xp, scale * 0.5 * (1 / v - ratio * ratio), _aligned_variance(xp, input, var))
        grads["var"] = xp.reshape(grad_var, var.shape)
    return grads


register(LossSpec(
    name="gaussian_nll_loss", function=gaussian_nll_loss, vjp=_gaussian_vjp, family="probabilistic",
    arrays=("input", "target", "var"),
    options=(Option("full", False), Option("eps", 1e-06, traced=True), Option("reduction", "mean")),
    differentiable=("input", "target", "var"),
    summary="Gaussian NLL with predicted variance (`var` full, per-row, one size-1 dim or a float; `full`)",
    extra={"number_arrays": {"var": gaussian_var_from_number}},
    torch=TorchBinding(
        function="gaussian_nll_loss",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("var", REQUIRED), ("full", False),
                   ("eps", 1e-06), ("reduction", "mean")),
        module="GaussianNLLLoss",
        module_signature=(("full", False), ("eps", 1e-06), ("reduction", "mean")),
        module_keyword_only=("full",),
        autocast="none",
    ),
))
