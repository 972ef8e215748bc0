"""The implementations a case is timed on. Each builder returns ``{"forward": f, "forward+backward": g}``
(zero-argument callables that finish their work before returning) or None where it does not apply."""

from __future__ import annotations

import importlib.util

import numpy as np

import lossy_core

from .cases import Case

VARIANTS = (
    "torch native", "lossy_torch", "lossy_torch compiled", "torch native compiled",
    "lossy_jax", "optax", "lossy_core numpy", "lossy_cupy",
)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_variants() -> list[str]:
    out = []
    if _has("torch"):
        out += ["torch native", "lossy_torch", "lossy_torch compiled"]
    if _has("jax"):
        out.append("lossy_jax")
    if _has("optax"):
        out.append("optax")
    out.append("lossy_core numpy")
    if _has("cupy"):
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                out.append("lossy_cupy")
        except Exception:  # no driver / device
            pass
    return out


def build(name: str, case: Case):
    return _BUILDERS[name](case)


# -- torch ----------------------------------------------------------------------------

def _torch_call(function, case: Case):
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in case.arrays]
    options = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    leaf = tensors[0].clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            function(*tensors, **options)

    def forward_backward():
        leaf.grad = None
        function(leaf, *tensors[1:], **options).backward()

    return {"forward": forward, "forward+backward": forward_backward}


def _torch_function(case, lossy: bool):
    import torch.nn.functional as native

    spec = lossy_core.get(case.loss)
    if spec.torch is None:
        return None
    if lossy:
        import lossy_torch.functional as functional

        return getattr(functional, spec.torch.function)
    return getattr(native, spec.torch.function, None)


def _torch_native(case):
    function = _torch_function(case, lossy=False)
    return None if function is None else _torch_call(function, case)


def _lossy_torch(case):
    return _torch_call(_torch_function(case, lossy=True), case)


def _compiled(function):
    import torch

    # dynamo keeps its compiled graphs per code object, with a limit of 8 recompiles: every case
    # (shapes, options) and mode (grad or not) of the same loss is one more, so the benchmark
    # starts each case from empty caches.
    torch._dynamo.reset()
    return torch.compile(function, fullgraph=True, dynamic=False)


def _lossy_torch_compiled(case):
    return _torch_call(_compiled(_torch_function(case, lossy=True)), case)


def _torch_native_compiled(case):
    function = _torch_function(case, lossy=False)
    return None if function is None else _torch_call(_compiled(function), case)


# -- jax / optax ----------------------------------------------------------------------

def _jax_pair(loss_of_first):
    """jit(f) and jit(value_and_grad(f)) over the first array, the rest passed as arguments."""
    import jax

    forward = jax.jit(loss_of_first)
    both = jax.jit(jax.value_and_grad(loss_of_first))
    return forward, both


def _jax_runs(forward, both, arrays):
    import jax

    device_arrays = [jax.device_put(a) for a in arrays]
    return {
        "forward": lambda: forward(*device_arrays).block_until_ready(),
        "forward+backward": lambda: jax.block_until_ready(both(*device_arrays)),
    }


def _lossy_jax(case):
    import jax.numpy as jnp

    import lossy_jax

    function = getattr(lossy_jax, case.loss)
    options = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}

    def loss(first, *rest):
        return function(first, *rest, **options)

    return _jax_runs(*_jax_pair(loss), case.arrays)


def _optax(case):
    if case.optax is None:
        return None
    import jax.numpy as jnp
    import optax

    losses = optax.losses
    n = case.arrays[0].shape[0]
    formulas = {
        "ce": lambda x, y: jnp.mean(losses.softmax_cross_entropy_with_integer_labels(x, y)),
        "sigmoid_bce": lambda x, y: jnp.mean(losses.sigmoid_binary_cross_entropy(x, y)),
        "kl": lambda x, y: jnp.sum(losses.kl_divergence(x, y)) / n,
        "huber": lambda x, y: jnp.mean(losses.huber_loss(x, y, delta=1.0)),
        "mse": lambda x, y: jnp.mean(losses.squared_error(x, y)),
    }
    return _jax_runs(*_jax_pair(formulas[case.optax]), case.arrays)


# -- lossy_core on NumPy (and CuPy) ----------------------------------------------------

def _core_runs(xp_arrays, xp_options, case):
    function = lossy_core.get(case.loss).function
    value_and_grad = lossy_core.value_and_grad(case.loss)
    return {
        "forward": lambda: function(*xp_arrays, **xp_options),
        "forward+backward": lambda: value_and_grad(*xp_arrays, **xp_options),
    }


def _lossy_core_numpy(case):
    return _core_runs(case.arrays, case.options, case)


def _lossy_cupy(case):
    import cupy

    arrays = [cupy.asarray(a) for a in case.arrays]
    options = {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    runs = _core_runs(arrays, options, case)

    def synchronized(run):
        def call():
            run()
            cupy.cuda.Device().synchronize()
        return call

    return {mode: synchronized(run) for mode, run in runs.items()}


_BUILDERS = {
    "torch native": _torch_native,
    "lossy_torch": _lossy_torch,
    "lossy_torch compiled": _lossy_torch_compiled,
    "torch native compiled": _torch_native_compiled,
    "lossy_jax": _lossy_jax,
    "optax": _optax,
    "lossy_core numpy": _lossy_core_numpy,
    "lossy_cupy": _lossy_cupy,
}
