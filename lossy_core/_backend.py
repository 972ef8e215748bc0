"""Namespace resolution and the few facts about a backend that the formulas need.

Nothing here imports torch, jax or cupy: a framework is looked up in
``sys.modules`` only when an array of it is already in hand.
"""

from __future__ import annotations

import contextlib
import sys
import warnings

import array_api_compat


def namespace(*arrays):
    """The array-API namespace of ``arrays`` (``None`` and Python scalars skipped).

    torch tensors and jax arrays take a fast path: ``array_namespace`` is cached
    with ``functools.lru_cache``, which torch.compile warns about and traces
    through on every call.
    """
    torch = sys.modules.get("torch")
    present = []
    all_torch = torch is not None
    for a in arrays:  # a plain loop: this runs on every call, it matters for small batches
        if a is None or isinstance(a, (bool, int, float, complex)):
            continue
        present.append(a)
        all_torch = all_torch and isinstance(a, torch.Tensor)
    if not present:
        raise TypeError("expected at least one array argument, got none")
    if all_torch:
        return _torch_namespace()
    return array_api_compat.array_namespace(*present)


_TORCH_NAMESPACE = []


def _torch_namespace():
    if not _TORCH_NAMESPACE:  # imported on first use: importing it imports torch
        import array_api_compat.torch as torch_namespace

        _TORCH_NAMESPACE.append(torch_namespace)
    return _TORCH_NAMESPACE[0]


def device_of(x):
    """The device of array ``x`` (``None`` for a jax tracer): pass it as ``device=`` to every
    array a formula creates, so that results stay on the input's device (CuPy, a second
    array_api_strict device) and nothing is combined across devices."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.device  # array-api-compat's lookup runs lru_cached type checks (torch.compile warns)
    return array_api_compat.device(x)


# By module name, as array-api-compat's is_*_namespace do, without their functools.lru_cache
# (torch.compile warns about it on every trace) and its per-call cost.
_TORCH_NAMES = frozenset({"torch", "array_api_compat.torch"})
_JAX_NAMES = frozenset({"jax.numpy", "jax.experimental.array_api"})
_NUMPY_NAMES = frozenset({"numpy", "array_api_compat.numpy"})
_CUPY_NAMES = frozenset({"cupy", "array_api_compat.cupy"})


def is_torch(xp) -> bool:
    return getattr(xp, "__name__", None) in _TORCH_NAMES


def is_jax(xp) -> bool:
    return getattr(xp, "__name__", None) in _JAX_NAMES


def is_numpy(xp) -> bool:
    return getattr(xp, "__name__", None) in _NUMPY_NAMES


def is_cupy(xp) -> bool:
    return getattr(xp, "__name__", None) in _CUPY_NAMES


def is_number(value) -> bool:
    """A plain Python number (not an array): hyperparameters can branch on it."""
    return isinstance(value, (bool, int, float)) and not isinstance(value, complex)


def is_concrete(x) -> bool:
    """Whether the values of ``x`` can be read now (to raise a data-dependent error).

    False for a jax tracer, and for a torch tensor under torch.compile or a
    torch.func transform (grad, vmap): there a data-dependent check cannot raise
    and the loss poisons its result with NaN instead.
    """
    if is_number(x):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        if torch.compiler.is_compiling():
            return False
        return not torch._C._functorch.is_functorch_wrapped_tensor(x)
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.core.Tracer):
        return False
    return True


def shape_of(x) -> tuple[int, ...]:
    shape = x.shape
    if type(shape) is tuple:  # numpy, jax, cupy: already Python ints
        return shape
    if not sys.modules["torch"].compiler.is_compiling():
        return tuple(shape)  # an eager torch.Size holds Python ints
    return tuple(map(int, shape))  # symbolic sizes under torch.compile become ints


def size_of(x) -> int:
    n = 1
    for d in x.shape:
        n *= int(d)
    return n


def default_integer_dtype(xp):
    """The namespace's default integer dtype (int32 for jax without x64)."""
    try:
        return xp.__array_namespace_info__().default_dtypes()["integral"]
    except (AttributeError, KeyError):  # namespaces predating the inspection API
        return xp.int64


def dtype_name(dtype) -> str:
    """torch's capitalised name for a dtype ('Float', 'Long', ...), used in torch-compatible messages."""
    names = {
        "float16": "Half", "bfloat16": "BFloat16", "float32": "Float", "float64": "Double",
        "int8": "Char", "uint8": "Byte", "int16": "Short", "int32": "Int", "int64": "Long",
        "bool": "Bool", "complex64": "ComplexFloat", "complex128": "ComplexDouble",
    }
    text = str(dtype).rsplit(".", 1)[-1].strip("'\"()<> ")  # "<class 'numpy.int64'>" too
    return names.get(text, text)


def quiet_floating_point(xp):
    """A context silencing NumPy's divide/invalid warnings for intended log(0) and 0/0.

    torch and jax never warn there; the formulas clamp or mask those values, and a
    0/0 mean (every target ignored) is NaN by torch's definition.
    """
    if is_numpy(xp) or getattr(xp, "__name__", None) == "array_api_strict":  # NumPy underneath
        import numpy

        return numpy.errstate(divide="ignore", invalid="ignore")
    return _NO_CONTEXT


_NO_CONTEXT = contextlib.nullcontext()  # reusable, and one allocation fewer per call


def warn_user(message, stacklevel):
    """``warnings.warn(message, UserWarning)`` as seen ``stacklevel`` frames up from the caller,
    except while torch.compile traces: dynamo cannot trace a warning from outside torch (an error
    under ``fullgraph=True``); the eager call warns as torch does."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.compiler.is_compiling():
        return
    warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)
