"""Margin losses with +-1 targets: margin ranking, hinge embedding, soft margin, cosine embedding.

torch does not validate the targets: a target other than +-1 gives torch's
silent result (e.g. 0 for cosine embedding with y = 0), reproduced here.
A hinge ``max(0, z)`` is written ``where(z < 0, 0, z)`` so that its gradient at
``z = 0`` is 1, as torch's ``clamp_min`` gives.
"""

from __future__ import annotations

from ._backend import dtype_name, namespace, shape_of
from ._common import as_float, floating_result_type, gradient_like, spread_upstream, upcast
from ._primitives import log_sigmoid, softplus
from ._probabilistic import _broadcast_all, require_broadcastable
from ._reductions import check_reduction, finish, reduce
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import broadcast_shape, fmt_shape, is_floating

_LEGACY = (("size_average", None), ("reduce", None))
_REDUCTION = Option("reduction", "mean")
# torch's cosine_embedding_loss adds EPSILON = 1e-12 to each squared norm (aten/src/ATen/native/Loss.cpp),
# a float constant: 1e-12 rounded to float32 (measured on torch 2.13 CPU, float64: the input gradient of
# a zero vector against b = (1, 2, 2) is b / sqrt(EPSILON * (9 + EPSILON)) with this value, not 1e-12).
_COSINE_EPSILON = 9.999999960041972e-13


def _hinge(xp, z):
    """``max(0, z)`` with gradient 1 at ``z = 0`` (torch's clamp_min)."""
    return xp.where(z < 0, xp.zeros_like(z), z)


def _active(xp, z):
    return xp.astype(~(z < 0), z.dtype)


# -- margin ranking ----------------------------------------------------------------

def _ranking_setup(xp, input1, input2, target, margin):
    dtype = floating_result_type(xp, input1, input2, target)
    x1, x2, y = _broadcast_all(xp, *(upcast(xp, as_float(xp, a, dtype)) for a in (input1, input2, target)),
                               loss="margin_ranking_loss", names=("input1", "input2", "target"))
    difference = x1 - x2
    return difference, y, -y * difference + margin


def margin_ranking_loss(input1, input2, target, /, *, margin=0.0, reduction="mean"):
    """Margin ranking: ``loss_i = max(0, -y_i (x1_i - x2_i) + margin)``.

    The three arrays must have the same number of dims (RuntimeError) and broadcast
    together; ``y`` is meant to be +-1 and is not validated. The result has the
    promoted dtype of all three. Reference: ``torch.nn.functional.margin_ranking_loss``.
    """
    xp = namespace(input1, input2, target)
    check_reduction(reduction)
    if not input1.ndim == input2.ndim == target.ndim:
        raise RuntimeError(
            "margin_ranking_loss : All input tensors should have same dimension but got sizes: "
            f"input1: {fmt_shape(shape_of(input1))}, input2: {fmt_shape(shape_of(input2))}, "
            f"target: {fmt_shape(shape_of(target))}"
        )
    out_dtype = floating_result_type(xp, input1, input2, target)
    _, _, z = _ranking_setup(xp, input1, input2, target, margin)
    return finish(xp, reduce(xp, _hinge(xp, z), reduction), out_dtype)


def _ranking_vjp(xp, arrays, options, upstream):
    """With ``z = -y (x1 - x2) + margin`` active (``z >= 0``): d/dx1 = -y, d/dx2 = y, d/dy = -(x1 - x2)."""
    input1, input2, target = arrays["input1"], arrays["input2"], arrays["target"]
    difference, y, z = _ranking_setup(xp, input1, input2, target, options["margin"])
    scale = spread_upstream(xp, upstream, z.dtype, z.shape, options["reduction"]) * _active(xp, z)
    grads = {}
    for name, array, local in (("input1", input1, -y), ("input2", input2, y), ("target", target, -difference)):
        if is_floating(xp, array):
            grads[name] = gradient_like(xp, scale * local, array)
    return grads


# -- hinge embedding ---------------------------------------------------------------

def _hinge_embedding_setup(xp, input, target):
    x, y = _broadcast_all(xp, upcast(xp, input), target, loss="hinge_embedding_loss", names=("input", "target"))
    return x, y


def hinge_embedding_loss(input, target, /, *, margin=1.0, reduction="mean"):
    """Hinge embedding, torch's exact composition::

        loss_i = [y_i != 1] max(0, margin - x_i) + [y_i != -1] x_i

    i.e. ``x`` for ``y = 1`` and ``max(0, margin - x)`` for ``y = -1``; any other
    ``y`` (not validated) gives the sum of both, ``x + max(0, margin - x)``.
    ``input`` and ``target`` broadcast; the result has the input's dtype.
    Reference: ``torch.nn.functional.hinge_embedding_loss``.
    """
    xp = namespace(input, target)
    check_reduction(reduction)
    x, y = _hinge_embedding_setup(xp, input, target)
    zeros = xp.zeros_like(x)
    terms = xp.where(y != 1, _hinge(xp, margin - x), zeros) + xp.where(y != -1, x, zeros)
    return finish(xp, reduce(xp, terms, reduction), input.dtype)


def _hinge_embedding_vjp(xp, arrays, options, upstream):
    """d/dx = -[y != 1][margin - x >= 0] + [y != -1]; the target only selects (no gradient)."""
    input = arrays["input"]
    x, y = _hinge_embedding_setup(xp, input, arrays["target"])
    ones, zeros = xp.ones_like(x), xp.zeros_like(x)
    local = xp.where(y != 1, -_active(xp, options["margin"] - x), zeros) + xp.where(y != -1, ones, zeros)
    scale = spread_upstream(xp, upstream, x.dtype, x.shape, options["reduction"])
    return {"input": gradient_like(xp, scale * local, input)}


# -- soft margin -------------------------------------------------------------------

def _soft_margin_setup(xp, input, target):
    if not is_floating(xp, input):
        raise RuntimeError(
            f"result type Float can't be cast to the desired output type {dtype_name(input.dtype)}: "
            f"soft_margin_loss expects a floating point 'input', got {input.dtype}"
        )
    if broadcast_shape(shape_of(input), shape_of(target)) != shape_of(input):
        raise RuntimeError(
            f"output with shape {fmt_shape(shape_of(input))} doesn't match the broadcast shape: soft_margin_loss "
            f"expects 'target' ({fmt_shape(shape_of(target))}) to broadcast to the shape of 'input'"
        )
    dtype = floating_result_type(xp, input, target)
    x = upcast(xp, as_float(xp, input, dtype))
    y = upcast(xp, as_float(xp, target, dtype))
    return x, xp.broadcast_to(y, x.shape), dtype


def soft_margin_loss(input, target, /, *, reduction="mean"):
    """Soft margin (two-class logistic): ``loss_i = log(1 + exp(-y_i x_i))``, in log space.

    ``target`` broadcasts to the input's shape (a larger broadcast raises RuntimeError);
    targets are not validated (``y = 0`` gives ``log 2``). Finite for any finite
    product ``y x``, where torch's ``log1p(exp(-y x))`` overflows to inf (and a NaN
    gradient) beyond about 710 in float64: a deliberate deviation. Only the input is
    differentiable (torch refuses a target gradient).
    Reference: ``torch.nn.functional.soft_margin_loss``.
    """
    xp = namespace(input, target)
    check_reduction(reduction)
    x, y, dtype = _soft_margin_setup(xp, input, target)
    return finish(xp, reduce(xp, softplus(xp, -y * x), reduction), dtype)


def _soft_margin_vjp(xp, arrays, options, upstream):
    """d/dx = -y sigmoid(-y x), with ``sigmoid = exp(log_sigmoid)`` (finite everywhere)."""
    input = arrays["input"]
    x, y, _ = _soft_margin_setup(xp, input, arrays["target"])
    scale = spread_upstream(xp, upstream, x.dtype, x.shape, options["reduction"])
    return {"input": gradient_like(xp, scale * -y * xp.exp(log_sigmoid(xp, -y * x)), input)}


# -- cosine embedding --------------------------------------------------------------

def _cosine_setup(xp, input1, input2, target):
    """(a, b, y, cos, denominator, |a|^2 + eps, |b|^2 + eps), reduced over the feature axis."""
    axis = target.ndim
    a, b = _broadcast_all(xp, upcast(xp, input1), upcast(xp, input2), loss="cosine_embedding_loss",
                          names=("input1", "input2"))
    product = xp.sum(a * b, axis=axis)
    squared1 = xp.sum(a * a, axis=axis) + _COSINE_EPSILON
    squared2 = xp.sum(b * b, axis=axis) + _COSINE_EPSILON
    denominator = xp.sqrt(squared1 * squared2)
    cosine = product / denominator
    cosine, y = _broadcast_all(xp, cosine, target, loss="cosine_embedding_loss", names=("cosine", "target"))
    return a, b, y, cosine, denominator, squared1, squared2


def cosine_embedding_loss(input1, input2, target, /, *, margin=0.0, reduction="mean"):
    """Cosine embedding::

        loss_i = 1 - cos(a_i, b_i)             if y_i = 1
        loss_i = max(0, cos(a_i, b_i) - margin)  if y_i = -1
        loss_i = 0                             otherwise (torch does not validate y)

    with ``cos = a.b / sqrt((|a|^2 + 1e-12)(|b|^2 + 1e-12))`` over the last axis.
    Inputs ``(N, D)`` with target ``(N,)``, or ``(D,)`` with a 0-d target
    (RuntimeError otherwise). The result has the inputs' promoted dtype.
    Reference: ``torch.nn.functional.cosine_embedding_loss``.
    """
    xp = namespace(input1, input2, target)
    check_reduction(reduction)
    if target.ndim not in (0, 1):
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported: "
                           f"cosine_embedding_loss got 'target' of shape {fmt_shape(shape_of(target))}")
    expected = target.ndim + 1
    if input1.ndim != expected or input2.ndim != expected:
        raise RuntimeError(
            f"{target.ndim}D target tensor expects {expected}D input tensors, but found inputs with sizes "
            f"{fmt_shape(shape_of(input1))} and {fmt_shape(shape_of(input2))}. cosine_embedding_loss expects "
            f"'input1' and 'input2' of {expected} dims for a target of {target.ndim}"
        )
    pairs = require_broadcastable("cosine_embedding_loss", input1=input1, input2=input2)
    require_broadcastable("cosine_embedding_loss", **{"input1/input2 rows": pairs[:-1], "target": target})
    out_dtype = xp.result_type(input1, input2)
    _, _, y, cosine, *_ = _cosine_setup(xp, input1, input2, target)
    zeros = xp.zeros_like(cosine)
    terms = xp.where(y == 1, 1 - cosine, zeros) + xp.where(y == -1, _hinge(xp, cosine - margin), zeros)
    return finish(xp, reduce(xp, terms, reduction), out_dtype)


def _cosine_vjp(xp, arrays, options, upstream):
    """dL/dcos = -[y = 1] + [y = -1][cos >= margin];  dcos/da = b / D - cos a / (|a|^2 + eps), and alike for b."""
    input1, input2 = arrays["input1"], arrays["input2"]
    a, b, y, cosine, denominator, squared1, squared2 = _cosine_setup(xp, input1, input2, arrays["target"])
    ones, zeros = xp.ones_like(cosine), xp.zeros_like(cosine)
    local = xp.where(y == 1, -ones, zeros) + xp.where(y == -1, _active(xp, cosine - options["margin"]), zeros)
    scale = spread_upstream(xp, upstream, cosine.dtype, cosine.shape, options["reduction"]) * local
    axis = arrays["target"].ndim
    scale, cos = (xp.expand_dims(t, axis=axis) for t in (scale, cosine))
    denominator, squared1, squared2 = (xp.expand_dims(t, axis=axis) for t in (denominator, squared1, squared2))
    grads = {}
    if is_floating(xp, input1):
        grads["input1"] = gradient_like(xp, scale * (b / denominator - cos * a / squared1), input1)
    if is_floating(xp, input2):
        grads["input2"] = gradient_like(xp, scale * (a / denominator - cos * b / squared2), input2)
    return grads


def _margin_binding(function, module, arrays, margin):
    margin_arg = (("margin", margin),) if margin is not None else ()
    module_margin = (("margin", float(margin)),) if margin is not None else ()
    return TorchBinding(
        function=function,
        signature=(*((a, REQUIRED) for a in arrays), *margin_arg, *_LEGACY, ("reduction", "mean")),
        module=module, module_signature=(*module_margin, *_LEGACY, ("reduction", "mean")),
    )


register(LossSpec(
    name="margin_ranking_loss", function=margin_ranking_loss, vjp=_ranking_vjp, family="margin",
    arrays=("input1", "input2", "target"), options=(Option("margin", 0.0, traced=True), _REDUCTION),
    differentiable=("input1", "input2", "target"),
    summary="max(0, -y (x1 - x2) + margin), y = +-1 (not validated)",
    torch=_margin_binding("margin_ranking_loss", "MarginRankingLoss", ("input1", "input2", "target"), 0),
))
register(LossSpec(
    name="hinge_embedding_loss", function=hinge_embedding_loss, vjp=_hinge_embedding_vjp, family="margin",
    arrays=("input", "target"), options=(Option("margin", 1.0, traced=True), _REDUCTION),
    differentiable=("input",),
    summary="x for y = 1, max(0, margin - x) for y = -1 (torch's sum of both otherwise)",
    torch=_margin_binding("hinge_embedding_loss", "HingeEmbeddingLoss", ("input", "target"), 1.0),
))
register(LossSpec(
    name="soft_margin_loss", function=soft_margin_loss, vjp=_soft_margin_vjp, family="margin",
    arrays=("input", "target"), options=(_REDUCTION,), differentiable=("input",),
    summary="two-class logistic log(1 + exp(-y x)), in log space",
    torch=_margin_binding("soft_margin_loss", "SoftMarginLoss", ("input", "target"), None),
))
register(LossSpec(
    name="cosine_embedding_loss", function=cosine_embedding_loss, vjp=_cosine_vjp, family="margin",
    arrays=("input1", "input2", "target"), options=(Option("margin", 0.0, traced=True), _REDUCTION),
    differentiable=("input1", "input2"),
    summary="1 - cos for y = 1, max(0, cos - margin) for y = -1 (0 otherwise)",
    torch=_margin_binding("cosine_embedding_loss", "CosineEmbeddingLoss", ("input1", "input2", "target"), 0),
))
