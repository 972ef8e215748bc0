"""lossy for JAX: every loss compiled with ``jax.jit``.

    import lossy_jax
    loss = lossy_jax.cross_entropy(logits, labels, label_smoothing=0.1)

Signatures are ``lossy_core``'s: arrays positional, everything else keyword.
Structural options (``reduction``, ``ignore_index``, ``log_target``) are static;
numeric hyperparameters (``label_smoothing``, ``beta``, ``delta``, ``margin``,
``eps``) are traced, so changing them does not recompile. One exception saves work:
``label_smoothing`` left at its default 0 (a Python number) runs a specialisation
compiled without the smoothing term; the first non-zero value compiles the traced
version once. A callable option
(``triplet_margin_with_distance_loss``'s ``distance_function``) is static: it
is hashed by identity, so passing a new callable (e.g. a fresh ``lambda`` on each
call) compiles anew; define it once and reuse it. The functions work under ``jax.grad``,
``jax.vmap`` and inside a user's own ``jit``.

Errors: bad shapes, dtypes, reductions and (Python-number) hyperparameters
raise before compute, as in torch. A data-dependent violation -- a class index
out of range, a binary_cross_entropy probability outside [0, 1] -- cannot raise
inside compiled code: the affected loss is NaN (never a wrapped index or a
silently wrong number). ``lossy_core.<name>`` on concrete jax arrays raises
for those too.

``gaussian_nll_loss``'s ``var`` may be a Python float, as in torch: it is checked
and expanded to the input's shape before ``jit`` (a new value does not recompile).

``linear_cross_entropy`` (cross entropy of ``input @ linear_weight.T + bias`` without the
N x C logits) runs ``lossy_core``'s per-chunk formula under ``lax.scan`` inside a
``jax.custom_vjp`` (``_linear``): memory stays bounded under ``jit``, and ``'mean'``/``'sum'``
take the value and the gradients in one pass. Reverse mode only (``jax.jvp`` raises), and
differentiating its class ``weight`` raises, as in torch.
"""

from __future__ import annotations

import inspect

import jax

import lossy_core as _core
from lossy_core import LossSpec

__all__ = []


def _is_python_number(value) -> bool:
    return isinstance(value, (bool, int, float))


def _is_readable_scalar(value) -> bool:
    """A 0-d array whose value can be read now (not a tracer inside a user's jit/grad/vmap)."""
    return isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer) and value.ndim == 0


def _make(spec: LossSpec):
    jitted = jax.jit(spec.function, static_argnames=spec.static_options)
    traced = [o for o in spec.options if o.traced]
    signature = spec.signature()
    arrays = ", ".join(spec.arrays)
    keywords = list(spec.optional_arrays) + [o.name for o in spec.options]
    parameters = str(signature)[1:-1]
    # A readable value is checked now (torch raises); a Python number is passed as a
    # float so that delta=2 after delta=1.0 (int vs float weak type) does not recompile.
    checks = "".join(
        f"    if _is_number({o.name}):\n        _options[{o.name!r}].validate({o.name})\n"
        f"        {o.name} = float({o.name})\n"
        f"    elif _is_readable_scalar({o.name}):\n        _options[{o.name!r}].validate({o.name})\n"
        for o in traced
    )
    # An array argument that may be a Python number (gaussian_nll_loss's ``var``) is made an
    # array before jit by the core's own conversion (which checks it), not traced as a 0-d array.
    numbers = "".join(
        f"    if _is_number({name}):\n        {name} = _number_arrays[{name!r}](_jnp, {spec.arrays[0]}, {name})\n"
        for name in spec.extra.get("number_arrays", {})
    )
    # Options whose default switches a computation off: the default, as a Python number, runs a
    # second compiled function where it is static (no smoothing term in the compiled code).
    special = [o for o in traced if o.specialize_default]
    jitted_default = (jax.jit(spec.function, static_argnames=spec.static_options + tuple(o.name for o in special))
                      if special else None)
    arguments = f"{arrays}, {', '.join(f'{k}={k}' for k in keywords)}"
    default_branch = (
        "    if " + " and ".join(f"(_is_number({o.name}) and {o.name} == {o.default!r})" for o in special) + ":\n"
        f"        return _jitted_default({arguments})\n"
        if special else ""
    )
    source = (
        f"def {spec.name}({parameters}):\n"
        f"{numbers}"
        f"{checks}"
        f"{default_branch}"
        f"    return _jitted({arguments})\n"
    )
    scope = {"_jitted": jitted, "_jitted_default": jitted_default, "_is_number": _is_python_number,
             "_is_readable_scalar": _is_readable_scalar,
             "_options": {o.name: o for o in spec.options}, "_jnp": jax.numpy,
             "_number_arrays": spec.extra.get("number_arrays", {})}
    exec(compile(source, f"<lossy_jax.{spec.name}>", "exec"), scope)
    function = scope[spec.name]
    function.__module__ = __name__
    function.__doc__ = f"``lossy_core.{spec.name}`` compiled with ``jax.jit``.\n\n{inspect.getdoc(spec.function)}"
    function.jitted = jitted  # the compiled function, e.g. for ``jitted._cache_size()``
    function.jitted_default = jitted_default  # the specialisation for default hyperparameters, or None
    return function


for _spec in _core.losses():
    if _spec.extra.get("adapters") == "own":  # bound by hand below: the adapter owns its loop
        continue
    globals()[_spec.name] = _make(_spec)
    __all__.append(_spec.name)
del _spec


# Adaptive softmax: not a registry loss (its weights depend on ``cutoffs``), so bound by hand:
# ``lossy_core``'s functions compiled with ``cutoffs`` static.
_adaptive_loss_jit = jax.jit(_core.adaptive_log_softmax_with_loss, static_argnames=("cutoffs",))
_adaptive_log_prob_jit = jax.jit(_core.adaptive_log_prob, static_argnames=("cutoffs",))


def adaptive_log_softmax_with_loss(input, target, head_weight, tail_weights, /, *, cutoffs, head_bias=None):
    """``lossy_core.adaptive_log_softmax_with_loss`` compiled with ``jax.jit`` (``cutoffs`` static)."""
    return _adaptive_loss_jit(input, target, head_weight, tail_weights, cutoffs=tuple(cutoffs), head_bias=head_bias)


def adaptive_log_prob(input, head_weight, tail_weights, /, *, cutoffs, head_bias=None):
    """``lossy_core.adaptive_log_prob`` compiled with ``jax.jit`` (``cutoffs`` static)."""
    return _adaptive_log_prob_jit(input, head_weight, tail_weights, cutoffs=tuple(cutoffs), head_bias=head_bias)


__all__ += ["adaptive_log_softmax_with_loss", "adaptive_log_prob"]


# linear_cross_entropy: its registry spec leaves the loop over row chunks to each adapter. Here it is
# ``lax.scan`` under a ``custom_vjp`` (``_linear``), bound through ``_make`` like the generated losses
# (static structural options, traced hyperparameters checked when readable, the default-0 specialisation).
def _bind_linear_cross_entropy():
    import dataclasses

    from . import _linear

    spec = _core.REGISTRY["linear_cross_entropy"]
    function = _make(dataclasses.replace(spec, function=_linear.linear_cross_entropy))
    function.__doc__ = inspect.getdoc(_linear.linear_cross_entropy)
    return function


linear_cross_entropy = _bind_linear_cross_entropy()
__all__.append("linear_cross_entropy")


# The global mean over a named axis (shard_map / pmap / vmap) of reduction="parts".
from ._sharding import psum_mean  # noqa: E402

__all__.append("psum_mean")
