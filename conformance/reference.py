"""The reference: torch itself, run live on the case's inputs.

``run_torch_function`` calls a torch-signature function (``torch.nn.functional``
for the reference, ``lossy_torch.functional`` for the torch backend) and returns
the value and the autograd gradient of every differentiable floating array.
Non-scalar outputs are differentiated as ``sum(out * upstream)`` with a seeded
random ``upstream`` (see ``upstream_for``); scalar outputs with upstream 1.
A loss that returns a tuple (``linear_cross_entropy(..., return_lse=True)``:
the loss and the lse) has one upstream per output, and every output is compared.
A gradient torch cannot compute is recorded as ``None``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

import lossy_core

from .cases import Case, cast


@dataclass
class Result:
    value: np.ndarray  # widened exactly to float64 (bfloat16/float16/float32 -> float64)
    dtype: str  # the output's dtype name, e.g. "float32", "bfloat16"
    # name -> (gradient widened to float64, its dtype name) or None where not differentiable;
    # ``grads is None``: this backend computes no gradients.
    grads: dict | None = field(default=None)
    # The outputs after the first, for a loss that returns a tuple: [(widened to float64, dtype name)].
    more: list = field(default_factory=list)


def differentiable(case: Case) -> list[str]:
    """Names of the arrays whose gradient is checked: the spec's differentiable, floating ones."""
    spec = lossy_core.get(case.loss)
    return [n for n in spec.differentiable if n in case.arrays and case.arrays[n].dtype.kind == "f"]


def upstream_for(case: Case, shape: tuple, output: int = 0) -> np.ndarray:
    """The upstream gradient (float64 values representable in the case dtype) for an output shape;
    ``output``: which output of a loss that returns a tuple (each gets its own)."""
    if shape == ():
        return np.array(1.0)
    rng = np.random.default_rng(1000 + case.upstream_seed if output == 0 else (1000 + case.upstream_seed, output))
    return cast(rng.uniform(-1.0, 1.0, shape), case.dtype).astype(np.float64)


def outputs_of(out) -> tuple:
    """A loss's outputs as a tuple (one array, or the arrays of a tuple output)."""
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _to_numpy(t):
    import torch

    return t.detach().to(torch.float64).cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()


def run_torch_function(fn, case: Case, *, gradients: bool = True, device: str = "cpu") -> Result:
    import torch

    spec = lossy_core.get(case.loss)
    tensors = {}
    for name, array in case.arrays.items():
        t = torch.from_numpy(np.array(array, copy=True)).to(device)
        if array.dtype.kind == "f":
            t = t.to(torch_dtype(case.dtype))
        tensors[name] = t
    diff = differentiable(case) if gradients else []
    for name in diff:
        tensors[name].requires_grad_(True)
    positional = [tensors[n] for n in spec.arrays]
    keywords = {n: tensors[n] for n in spec.optional_arrays if n in tensors}
    keywords.update(case.options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div 'mean' and broadcasting warnings are expected
        out = fn(*positional, **keywords)
    outs = outputs_of(out)
    name_of = lambda t: str(t.dtype).removeprefix("torch.")  # noqa: E731
    result = Result(_to_numpy(outs[0]), name_of(outs[0]), {} if gradients else None,
                    [(_to_numpy(o), name_of(o)) for o in outs[1:]])
    if not gradients:
        return result
    upstreams = [torch.from_numpy(upstream_for(case, tuple(o.shape), k)).to(device=device, dtype=o.dtype)
                 for k, o in enumerate(outs)]
    differentiated = [(o, u) for o, u in zip(outs, upstreams) if o.requires_grad]
    for name in diff:
        grad = None
        if differentiated:
            try:
                (grad,) = torch.autograd.grad([o for o, _ in differentiated], tensors[name],
                                              grad_outputs=[u for _, u in differentiated], retain_graph=True,
                                              allow_unused=True)
            except (RuntimeError, NotImplementedError):
                grad = None  # torch cannot differentiate this argument
        result.grads[name] = None if grad is None else (_to_numpy(grad), str(grad.dtype).removeprefix("torch."))
    return result


def torch_version() -> str:
    import torch

    return torch.__version__


def reference_function(loss: str):
    """The torch-signature reference of ``loss``: its plain-torch reference if it has one
    (``conformance.plain_torch``; for a loss torch has, one that calls torch's function live
    and adds only lossy's extra options), else ``torch.nn.functional.<spec.torch.function>``."""
    import torch.nn.functional as F

    from .plain_torch import REFERENCES

    spec = lossy_core.get(loss)
    if loss in REFERENCES:
        return REFERENCES[loss]
    if spec.torch is None or not hasattr(F, spec.torch.function):
        raise NotImplementedError(f"{loss} has no torch.nn.functional counterpart and no plain-torch reference")
    return getattr(F, spec.torch.function)


def run_reference(case: Case) -> Result:
    """The reference on the case's inputs (value + gradients).

    ``torch.nn.functional.<spec.torch.function>`` where torch has the loss;
    otherwise the plain-torch reference registered in ``conformance.plain_torch``.
    """
    return run_torch_function(reference_function(case.loss), case)
