"""``value_and_grad``: a loss's value and its analytic gradients, on any array-API namespace."""

from __future__ import annotations

import functools

from ._backend import device_of, namespace, shape_of
from ._reductions import LossParts
from ._registry import REGISTRY, LossSpec
from ._validation import fmt_shape, is_floating


def _spec_of(loss) -> LossSpec:
    if isinstance(loss, LossSpec):
        return loss
    if isinstance(loss, str):
        return REGISTRY[loss] if loss in REGISTRY else _missing(loss)
    for spec in REGISTRY.values():
        if spec.function is loss:
            return spec
    return _missing(getattr(loss, "__name__", repr(loss)))


def _missing(name):
    raise KeyError(f"value_and_grad: {name!r} is not a registered lossy_core loss")


def value_and_grad(loss):
    """``value_and_grad(loss)(*arrays, upstream=None, **options) -> (value, grads)``.

    ``loss`` is a lossy_core loss (the function, its name, or its ``LossSpec``). The
    returned function takes exactly the loss's arguments plus ``upstream``, and returns
    the loss's value -- computed by the loss itself, so every check and error is the
    loss's own -- and ``grads``, a dict mapping each differentiable floating array
    argument that was passed (``input``; ``target`` where torch differentiates it) to
    its gradient, in that argument's shape and dtype::

        value, grads = lossy_core.value_and_grad(lossy_core.cross_entropy)(
            logits, labels, weight=w, label_smoothing=0.1)
        grads["input"]                      # d value / d logits

    The gradients are vector-Jacobian products written analytically beside each formula
    (``LossSpec.vjp``) in the array API, so they work on NumPy, array_api_strict, CuPy or
    any array-API namespace, and match torch autograd (including its finite gradients at
    saturated inputs). ``upstream`` is the gradient of the output: default 1 for a scalar
    output (``'mean'``, ``'sum'``); required, with the output's shape, for ``'none'``. With
    ``reduction='parts'`` the value is :class:`LossParts` and the gradients are the numerator's.
    """
    spec = _spec_of(loss)
    if spec.vjp is None and spec.value_and_vjp is None:
        raise NotImplementedError(f"{spec.name} has no analytic gradient yet")
    signature = spec.signature()

    @functools.wraps(spec.function)
    def value_and_grad_of_loss(*args, upstream=None, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        names = spec.arrays + spec.optional_arrays
        arrays = {n: bound.arguments[n] for n in names}
        options = {o.name: bound.arguments[o.name] for o in spec.options}
        xp = namespace(*(a for a in arrays.values() if a is not None))
        if spec.value_and_vjp is not None:  # one pass: the loss's work serves value and gradient
            value, grads = spec.value_and_vjp(xp, arrays, options, upstream)
        else:
            value = spec.function(*args, **kwargs)
            # 'parts': the gradient is the numerator's (the denominator has none)
            output = value.numerator if isinstance(value, LossParts) else value
            grads = spec.vjp(xp, arrays, options, _upstream_for(spec, xp, output, upstream))
        # a Python number in an array's place (gaussian_nll_loss's float ``var``) has no gradient
        wanted = [n for n in spec.differentiable
                  if hasattr(arrays.get(n), "dtype") and is_floating(xp, arrays[n])]
        return value, {n: grads[n] for n in wanted if n in grads}

    value_and_grad_of_loss.__name__ = f"value_and_grad_{spec.name}"
    return value_and_grad_of_loss


def _upstream_for(spec, xp, value, upstream):
    """The gradient of the output: 1 for a scalar output, else ``upstream`` (required, the output's shape)."""
    if upstream is None:
        if value.ndim != 0:
            raise ValueError(
                f"value_and_grad({spec.name}): the output has shape {fmt_shape(shape_of(value))}; "
                "pass 'upstream' (the gradient of the output, of that shape)"
            )
        return xp.ones((), dtype=value.dtype, device=device_of(value))
    upstream = xp.asarray(upstream, dtype=value.dtype, device=device_of(value))
    if shape_of(upstream) != shape_of(value):
        raise ValueError(
            f"value_and_grad({spec.name}): 'upstream' has shape {fmt_shape(shape_of(upstream))}, "
            f"the output {fmt_shape(shape_of(value))}"
        )
    return upstream
