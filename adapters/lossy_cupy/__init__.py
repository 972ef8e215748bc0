"""lossy for CuPy: every lossy_core loss, and its analytic gradient, on CuPy arrays.

    import cupy, lossy_cupy
    loss = lossy_cupy.cross_entropy(logits, labels, label_smoothing=0.1)
    value, grads = lossy_cupy.value_and_grad(lossy_cupy.cross_entropy)(logits, labels)
    grads["input"]                                   # a cupy.ndarray, on logits' device

``lossy_cupy.<name>`` is generated from the registry (``lossy_core.REGISTRY``) with
``lossy_core``'s exact signature (arrays positional, everything else keyword) and
calls ``lossy_core.<name>``: the formula and its gradient are written once, in the
array API, in lossy_core; nothing is re-implemented here. CuPy has no autodiff, so
the gradients are lossy_core's analytic vector-Jacobian products
(``LossSpec.vjp``) through ``lossy_cupy.value_and_grad``.

Device rules
    Every array argument must be a ``cupy.ndarray`` (TypeError otherwise: a NumPy
    array is never copied to the device behind your back; use ``cupy.asarray``),
    and all must be on one device (ValueError otherwise, before any compute). The
    loss runs with that device current, so its value and gradients are on the
    input's device; lossy_core passes ``device=`` to every array it creates.

Host synchronisation
    The data is never copied to the host (no ``.get()``, no NumPy conversion).
    Three explicit, documented reads of a single scalar remain, as in torch on CUDA:
    the data-dependent validity checks (``lossy_core._validation.data_check``:
    ``bool(xp.any(bad))`` for a class index out of range in nll_loss /
    cross_entropy, a probability outside [0, 1] in binary_cross_entropy), which
    raise torch's error and so must read one boolean; and a hyperparameter given
    as a 0-d array (``label_smoothing``, ``beta``, ``delta``) is read once to
    check its range; and ``ctc_loss`` with concatenated (1-D) targets reads the
    longest target length, which sizes its alignment lattice (torch reads it too).
    The value of a bad entry is read only to word the error.

Kernels
    lossy_cupy defines no fused kernels (``KERNELS`` is empty): each loss runs
    lossy_core's array-API formula through CuPy's own cached elementwise and
    reduction kernels, so there is no second formula to keep in step.

Importing lossy_cupy needs CuPy (>= 13, which imports without a GPU), not a device.
"""

from __future__ import annotations

import contextlib
import inspect

import cupy

import lossy_core as _core
from lossy_core import LossSpec
from lossy_core._gradients import _spec_of

__all__ = ["value_and_grad", "KERNELS"]

# Fused CuPy kernels (ElementwiseKernel / ReductionKernel) this adapter defines: none.
KERNELS: tuple = ()

# The array type the adapter accepts (a seam for the device tests, which run the
# generated functions on array_api_strict's second device where no GPU is present).
_ARRAY_TYPE = cupy.ndarray


def _device_scope(device):
    """``with device:`` for a CuPy device (makes it current); nothing for a device that is not a context."""
    return device if hasattr(device, "__enter__") else contextlib.nullcontext()


def _placement(loss: str, arrays: dict):
    """The one device of the ``arrays`` given (``None`` entries skipped); TypeError / ValueError otherwise."""
    device, first = None, None
    for name, array in arrays.items():
        if array is None:
            continue
        if not isinstance(array, _ARRAY_TYPE):
            raise TypeError(
                f"lossy_cupy.{loss}: expected '{name}' to be a {_ARRAY_TYPE.__module__}.{_ARRAY_TYPE.__name__}, "
                f"got {type(array).__module__}.{type(array).__name__} (move it to the device explicitly, "
                "e.g. cupy.asarray(...))"
            )
        if first is None:
            device, first = array.device, name
        elif array.device != device:
            raise ValueError(
                f"lossy_cupy.{loss}: expected every array on one device; '{first}' is on {device}, "
                f"'{name}' on {array.device}"
            )
    return device


def _make(spec: LossSpec):
    names = spec.arrays + spec.optional_arrays
    keywords = list(spec.optional_arrays) + [o.name for o in spec.options]
    source = (
        f"def {spec.name}({str(spec.signature())[1:-1]}):\n"
        f"    with _scope(_placement({spec.name!r}, {{{', '.join(f'{n!r}: {n}' for n in names)}}})):\n"
        f"        return _loss({', '.join(spec.arrays)}, {', '.join(f'{k}={k}' for k in keywords)})\n"
    )
    scope = {"_loss": spec.function, "_placement": _placement, "_scope": _device_scope}
    exec(compile(source, f"<lossy_cupy.{spec.name}>", "exec"), scope)
    function = scope[spec.name]
    function.__module__ = __name__
    function.__doc__ = f"``lossy_core.{spec.name}`` on CuPy arrays, on their device.\n\n{inspect.getdoc(spec.function)}"
    function.spec = spec
    return function


def value_and_grad(loss):
    """``value_and_grad(loss)(*arrays, upstream=None, **options) -> (value, grads)`` on CuPy arrays.

    ``loss``: a ``lossy_cupy`` or ``lossy_core`` loss, its name, or its ``LossSpec``.
    As ``lossy_core.value_and_grad`` (same arguments, same ``grads`` dict of analytic
    gradients), with lossy_cupy's device rules: the arrays (and ``upstream``, when it
    is an array) are CuPy arrays on one device, where the value and gradients stay.
    """
    spec = _spec_of(getattr(loss, "spec", loss))
    core = _core.value_and_grad(spec)
    signature = spec.signature()
    names = spec.arrays + spec.optional_arrays

    def value_and_grad_of_loss(*args, upstream=None, **kwargs):
        bound = signature.bind(*args, **kwargs)
        arrays = {n: bound.arguments.get(n) for n in names}
        # a tuple output (linear_cross_entropy's return_lse) has one upstream per output
        upstreams = upstream if isinstance(upstream, tuple) else (upstream,)
        for k, u in enumerate(upstreams):
            if u is not None and not isinstance(u, (bool, int, float)):
                arrays["upstream" if len(upstreams) == 1 else f"upstream[{k}]"] = u
        with _device_scope(_placement(spec.name, arrays)):
            return core(*args, upstream=upstream, **kwargs)

    value_and_grad_of_loss.__name__ = f"value_and_grad_{spec.name}"
    value_and_grad_of_loss.__qualname__ = value_and_grad_of_loss.__name__
    value_and_grad_of_loss.__doc__ = core.__doc__
    value_and_grad_of_loss.__signature__ = inspect.signature(core)
    return value_and_grad_of_loss


for _spec in _core.losses():
    globals()[_spec.name] = _make(_spec)
    __all__.append(_spec.name)
del _spec
