"""The loss registry: one table that the adapters, the conformance cases and the
README's loss table are generated from.

A loss is added by writing its formula in a family module and registering a
``LossSpec`` beside it; ``lossy_torch``, ``lossy_jax`` and the conformance suite
pick it up from here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Option:
    """A non-array keyword argument of a core loss.

    ``traced``: a numeric hyperparameter that jax traces (changing it does not
    recompile); otherwise the option is structural and static under ``jax.jit``.
    """

    name: str
    default: Any
    traced: bool = False
    # For a traced hyperparameter: ``check(value)`` raises for a readable bad value
    # and returns the traced "bad" condition otherwise (the loss poisons itself).
    check: Callable | None = None
    # For a traced hyperparameter whose default switches a computation off (label_smoothing=0):
    # lossy_jax compiles the default, given as a Python number, as a static specialisation
    # without that computation; any other value is traced (one more compile, then none).
    specialize_default: bool = False

    def validate(self, value):
        """Run ``check`` (if any) on ``value``; the traced condition or None."""
        return None if self.check is None else self.check(value)


@dataclass(frozen=True)
class TorchBinding:
    """How the loss appears in torch: ``torch.nn.functional.<function>`` and ``torch.nn.<module>``.

    Signatures are ``(name, default)`` pairs in torch's exact positional order
    (``REQUIRED`` for no default); names in ``*_keyword_only`` come after ``*``.
    """

    function: str
    signature: tuple[tuple[str, Any], ...]
    module: str | None = None
    module_signature: tuple[tuple[str, Any], ...] = ()
    module_keyword_only: tuple[str, ...] = ()
    keyword_only: tuple[str, ...] = ()
    buffers: tuple[str, ...] = ()
    # The module's forward parameter names where torch's differ from the arrays' names
    # (``PoissonNLLLoss.forward(log_input, target)``); default: the spec's arrays.
    forward_arguments: tuple[str, ...] = ()
    # 'float32': under autocast the native loss computes and returns float32.
    # 'unsafe_on_cuda': the native loss refuses CUDA autocast (binary_cross_entropy).
    # 'none': torch's loss is a Python composite that autocast leaves alone (gaussian_nll_loss):
    # it computes in the inputs' own dtypes.
    autocast: str = "float32"
    # Warning the torch functional emits for a reduction (kl_div's 'mean').
    reduction_warnings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LossSpec:
    name: str
    function: Callable
    family: str
    arrays: tuple[str, ...]
    optional_arrays: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    differentiable: tuple[str, ...] = ("input",)
    reductions: tuple[str, ...] = ("none", "mean", "sum")
    summary: str = ""
    reference: str = ""
    torch: TorchBinding | None = None
    extra: dict = field(default_factory=dict)
    # The analytic gradient, written beside the formula:
    # ``vjp(xp, arrays, options, upstream) -> {name: gradient}``. ``arrays`` maps every
    # array argument to its value (None for an absent optional one), ``options`` every
    # option to its value; ``upstream`` is the gradient of the loss's output (its shape).
    # It returns the vector-Jacobian product for each floating argument in
    # ``differentiable``, in that argument's shape and dtype, as torch autograd gives it.
    # It is called only after the loss itself accepted the same arguments (value_and_grad).
    vjp: Callable | None = None
    # One pass for the value and the gradients, where the loss's work is shared between them:
    # ``value_and_vjp(xp, arrays, options, upstream) -> (value, {name: gradient})``; ``upstream``
    # may be None (1 for a scalar output). It validates the arguments itself, as the loss does;
    # ``value_and_grad`` uses it instead of ``function`` then ``vjp``.
    value_and_vjp: Callable | None = None

    @property
    def static_options(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options if not o.traced)

    @property
    def traced_options(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options if o.traced)

    def signature(self) -> inspect.Signature:
        """The core signature: arrays positional-only, everything else keyword-only."""
        params = [inspect.Parameter(a, inspect.Parameter.POSITIONAL_ONLY) for a in self.arrays]
        params += [
            inspect.Parameter(a, inspect.Parameter.KEYWORD_ONLY, default=None) for a in self.optional_arrays
        ]
        params += [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default) for o in self.options]
        return inspect.Signature(params)


REGISTRY: dict[str, LossSpec] = {}


def register(spec: LossSpec) -> LossSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"loss {spec.name!r} is registered twice")
    declared = inspect.signature(spec.function)
    if declared != spec.signature():
        raise TypeError(f"{spec.name}: function signature {declared} does not match its spec {spec.signature()}")
    REGISTRY[spec.name] = spec
    return spec


def losses() -> list[LossSpec]:
    """Every registered loss, in registration order."""
    return list(REGISTRY.values())


def missing_gradients() -> list[str]:
    """Names of the registered losses that have no analytic gradient (``vjp``) yet."""
    return [spec.name for spec in REGISTRY.values() if spec.vjp is None and spec.value_and_vjp is None]


def get(name: str) -> LossSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no loss named {name!r}; registered: {', '.join(REGISTRY)}") from None

