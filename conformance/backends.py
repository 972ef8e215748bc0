"""The backends under test, each turning a ``Case`` into a ``Result``.

- numpy, array_api_strict: ``lossy_core`` on that namespace's arrays; gradients
  from ``lossy_core.value_and_grad`` (the analytic vector-Jacobian products) with
  the same upstream as torch's.
- cupy (where a CUDA device exists): ``lossy_cupy.<name>`` and
  ``lossy_cupy.value_and_grad`` on CuPy arrays, the same way.
- torch: ``lossy_torch.functional`` (torch's signature), value + autograd; a core option
  torch spells otherwise is passed torch's way (``chunk_size``: ``options=``).
- jax: ``lossy_jax`` (jitted), value + ``jax.vjp`` with the same upstream.

A backend that is not installed is skipped with its reason; a case whose dtype
the backend cannot represent is skipped (counted separately).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

import lossy_core

from .cases import Case
from .reference import Result, differentiable, outputs_of, run_torch_function, upstream_for


class Unsupported(Exception):
    """The backend cannot run this case (e.g. it has no such dtype): a skip, not a failure."""


class Backend:
    """Interface: ``name``, ``gradients`` (whether ``run`` returns gradients), ``load``, ``run``."""

    def load(self) -> str | None:
        """Import what the backend needs; return None, or the reason it is unavailable."""
        raise NotImplementedError

    def run(self, case: Case) -> Result:
        raise NotImplementedError


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@dataclass
class CoreBackend(Backend):
    """lossy_core called directly on an array-API namespace's arrays."""

    name: str
    module: str  # what to import
    namespace: Callable  # () -> the array namespace
    to_numpy: Callable  # array -> numpy array
    dtypes: tuple = ("float64", "float32", "float16")  # floating dtypes it can hold
    check: Callable | None = None  # () -> reason it cannot run, or None
    gradients: bool = True
    gradient: Callable | None = None  # (case, xp, arrays, upstream) -> {name: array}
    # A module with ``<name>`` per loss and ``value_and_grad`` (an adapter such as lossy_cupy)
    # to call instead of lossy_core.
    adapter: str | None = None

    def __post_init__(self):
        if self.gradient is None and self.gradients:
            self.gradient = analytic_gradient

    @property
    def losses(self):
        return importlib.import_module(self.adapter) if self.adapter else lossy_core

    def load(self):
        try:
            importlib.import_module(self.module)
        except ImportError as error:
            return f"{self.module} is not installed ({type(error).__name__}: {error})"
        try:
            reason = self.check() if self.check else None
            if reason is None and self.adapter:
                importlib.import_module(self.adapter)
            return reason
        except Exception as error:  # CUDA runtime errors without a driver
            return f"{type(error).__name__}: {error}"

    def run(self, case):
        if case.dtype not in self.dtypes:
            raise Unsupported(f"{self.name} has no {case.dtype}")
        xp = self.namespace()
        spec = lossy_core.get(case.loss)
        arrays = {}
        for name, a in case.arrays.items():
            arrays[name] = xp.asarray(a, dtype=getattr(xp, case.dtype)) if a.dtype.kind == "f" else xp.asarray(a)
        positional = [arrays[n] for n in spec.arrays]
        keywords = {n: arrays[n] for n in spec.optional_arrays if n in arrays}
        outs = outputs_of(_quiet(getattr(self.losses, case.loss), *positional, **keywords, **case.options))
        values = [self.to_numpy(o) for o in outs]
        result = Result(values[0].astype(np.float64), str(values[0].dtype), None,
                        [(v.astype(np.float64), str(v.dtype)) for v in values[1:]])
        if self.gradient is not None:
            upstreams = tuple(xp.asarray(upstream_for(case, tuple(v.shape), k), dtype=o.dtype)
                              for k, (o, v) in enumerate(zip(outs, values)))
            # a loss returning a tuple takes a tuple of upstreams (linear_cross_entropy's return_lse)
            upstream = upstreams[0] if len(upstreams) == 1 else upstreams
            grads = self.gradient(case, xp, arrays, upstream, self.losses)
            result.grads = {}
            for name in differentiable(case):
                g = grads.get(name)
                result.grads[name] = None if g is None else (self.to_numpy(g).astype(np.float64),
                                                             str(self.to_numpy(g).dtype))
        return result


def analytic_gradient(case, xp, arrays, upstream, losses=lossy_core):
    """The analytic gradients of ``losses.value_and_grad`` (lossy_core's or an adapter's), upstream as torch's."""
    spec = lossy_core.get(case.loss)
    positional = [arrays[n] for n in spec.arrays]
    keywords = {n: arrays[n] for n in spec.optional_arrays if n in arrays}
    _, grads = _quiet(losses.value_and_grad(getattr(losses, case.loss)), *positional, **keywords,
                      upstream=upstream, **case.options)
    return grads


def _numpy_namespace():
    import array_api_compat.numpy as xp

    return xp


def _strict_namespace():
    import array_api_strict as xp

    return xp


def _torch_namespace():
    import array_api_compat.torch as xp

    return xp


def _jax_namespace():
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 must mean float64
    import jax.numpy as xp

    return xp


def _cupy_namespace():
    import array_api_compat.cupy as xp

    return xp


def _cupy_check():
    """None when CuPy sees a CUDA device, else why not."""
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, or one too old for this CuPy's CUDA runtime
        return f"no CUDA device: cupy {cupy.__version__} is installed but CUDA says {type(error).__name__}: {error}"
    if count < 1:
        return f"no CUDA device: cupy {cupy.__version__} is installed but CUDA reports 0 devices"
    return None


def _torch_spelling(fn):
    """``fn`` taking lossy's core options where torch's signature spells one differently:
    ``chunk_size=k`` is ``options=torch.nn.LinearCrossEntropyOptions(batch_chunk_size=k)`` for a
    functional without a ``chunk_size`` parameter (lossy_torch's linear_cross_entropy)."""
    import inspect

    import torch

    parameters = inspect.signature(fn).parameters
    if "chunk_size" in parameters or "options" not in parameters:
        return fn

    def spelled(*args, chunk_size=None, **kwargs):
        if chunk_size is not None:
            kwargs["options"] = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=chunk_size)
        return fn(*args, **kwargs)

    return spelled


class TorchBackend(Backend):
    name = "torch"
    gradients = True

    def load(self):
        try:
            import lossy_torch.functional  # noqa: F401
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    def run(self, case):
        import lossy_torch.functional as F

        return run_torch_function(_torch_spelling(getattr(F, lossy_core.get(case.loss).torch.function)), case)


class JaxBackend(Backend):
    name = "jax"
    gradients = True

    def load(self):
        try:
            import jax

            jax.config.update("jax_enable_x64", True)  # float64 must mean float64
            import lossy_jax  # noqa: F401
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    def run(self, case):
        import jax
        import jax.numpy as jnp
        import lossy_jax

        spec = lossy_core.get(case.loss)
        fn = getattr(lossy_jax, case.loss)
        floating = getattr(jnp, case.dtype)
        arrays = {n: jnp.asarray(a, dtype=floating) if a.dtype.kind == "f" else jnp.asarray(a)
                  for n, a in case.arrays.items()}
        diff = differentiable(case)

        def call(**overrides):
            merged = {**arrays, **overrides}
            keywords = {n: merged[n] for n in spec.optional_arrays if n in merged}
            return fn(*[merged[n] for n in spec.arrays], **keywords, **case.options)

        out = _quiet(call)
        outs = outputs_of(out)
        result = Result(np.asarray(outs[0]).astype(np.float64), str(outs[0].dtype), {},
                        [(np.asarray(o).astype(np.float64), str(o.dtype)) for o in outs[1:]])
        if diff:
            _, vjp = _quiet(jax.vjp, lambda *d: call(**dict(zip(diff, d))), *[arrays[n] for n in diff])
            upstreams = tuple(jnp.asarray(upstream_for(case, tuple(o.shape), k), dtype=o.dtype)
                              for k, o in enumerate(outs))
            upstream = upstreams[0] if len(upstreams) == 1 else type(out)(upstreams)
            for name, g in zip(diff, vjp(upstream)):
                result.grads[name] = (np.asarray(g).astype(np.float64), str(g.dtype))
        return result


def all_backends() -> dict[str, Backend]:
    return {
        "numpy": CoreBackend("numpy", "numpy", _numpy_namespace, np.asarray),
        "array_api_strict": CoreBackend("array_api_strict", "array_api_strict", _strict_namespace,
                                        lambda a: np.asarray(a), dtypes=("float64", "float32")),
        "torch": TorchBackend(),
        "jax": JaxBackend(),
        # lossy_core's analytic gradients (value_and_grad, no autodiff) on torch and jax arrays, eagerly.
        "torch-analytic": CoreBackend("torch-analytic", "torch", _torch_namespace,
                                      lambda t: t.detach().cpu().numpy()),
        "jax-analytic": CoreBackend("jax-analytic", "jax", _jax_namespace, np.asarray),
        # Device-to-host copies (.get()) happen here, in the harness, to compare with torch.
        "cupy": CoreBackend("cupy", "cupy", _cupy_namespace, lambda a: a.get(), check=_cupy_check,
                            adapter="lossy_cupy"),
    }


BACKEND_NAMES = tuple(all_backends())
