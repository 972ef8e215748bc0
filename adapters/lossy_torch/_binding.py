"""Generating torch's functional and module API from the loss registry.

Each ``lossy_torch.functional.<name>`` is generated with torch's exact
signature (positional order, defaults, deprecated ``size_average``/``reduce``)
and each ``lossy_torch.<ClassName>`` with torch.nn's exact constructor, so
neither needs writing by hand: adding a loss to the registry adds both. They
bind the ``lossy_core`` formula; nothing here computes a loss.
"""

from __future__ import annotations

import inspect

import torch
from torch.nn.modules.loss import _Loss

from lossy_core import REQUIRED, LossSpec, legacy_reduction
from lossy_core._backend import warn_user

_UNSAFE_AUTOCAST = (
    "{name} is unsafe to autocast: under CUDA autocast, pass logits to "
    "binary_cross_entropy_with_logits (BCEWithLogitsLoss) instead, or disable autocast for this loss."
)


# torch's own check of every device's autocast state (private; absent in some versions, then skipped).
_ANY_AUTOCAST = getattr(torch._C, "_is_any_autocast_enabled", None)


def _autocast_device(tensors):
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor):
            device_type = tensor.device.type
            return device_type if torch.is_autocast_enabled(device_type) else None
    return None


def call(spec: LossSpec, arrays, options, reduction_warnings=True):
    """Run the core formula for torch tensors, with torch's autocast behaviour.

    ``reduction_warnings=False`` when the reduction came from the deprecated
    ``size_average``/``reduce``: torch then emits only the deprecation warning
    (``F.kl_div(size_average=True)`` does not add its 'mean' warning).

    Under autocast the native losses compute and return float32 (they are on
    autocast's float32 list), so floating inputs are cast to float32 and the
    formula runs with autocast disabled.
    """
    # lossy_core's warn_user: not while torch.compile traces (dynamo cannot trace warnings.warn from
    # outside torch; fullgraph=True would fail); the eager call warns as torch does.
    if reduction_warnings and spec.torch.reduction_warnings:
        for reduction, message in spec.torch.reduction_warnings:
            if options.get("reduction") == reduction:
                warn_user(message, stacklevel=3)
    # Fast path, the common case: no autocast anywhere (one cheap check; it matters for small batches).
    if _ANY_AUTOCAST is not None and not torch.compiler.is_compiling() and not _ANY_AUTOCAST():
        return spec.function(*arrays, **options)
    tensors = list(arrays) + [options[name] for name in spec.optional_arrays]
    device_type = _autocast_device(tensors)
    # 'none': torch's composite runs its ops under autocast as they come; so does the formula.
    if device_type is None or spec.torch.autocast == "none":
        return spec.function(*arrays, **options)
    if spec.torch.autocast == "unsafe_on_cuda" and device_type == "cuda":
        raise RuntimeError(_UNSAFE_AUTOCAST.format(name=spec.torch.function))

    def to_float32(x):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            return x.float()
        return x

    options = dict(options)
    for name in spec.optional_arrays:
        options[name] = to_float32(options[name])
    with torch.autocast(device_type, enabled=False):
        return spec.function(*(to_float32(a) for a in arrays), **options)


def _parameter_list(signature, keyword_only=()):
    parts = []
    star = False
    for name, default in signature:
        if name in keyword_only and not star:
            parts.append("*")
            star = True
        parts.append(name if default is REQUIRED else f"{name}={default!r}")
    return ", ".join(parts)


def _option_names(spec):
    return list(spec.optional_arrays) + [o.name for o in spec.options]


def make_functional(spec: LossSpec, namespace: dict):
    """``torch.nn.functional.<name>`` for ``spec``, with torch's exact signature."""
    binding = spec.torch
    names = [name for name, _ in binding.signature]
    has_legacy = "size_average" in names
    legacy = (
        "    if size_average is not None or reduce is not None:\n"
        "        reduction = _legacy_reduction(size_average, reduce)\n"
        "        return _call(_spec, ({arrays},), {{{options}}}, False)\n"
        if has_legacy else ""
    )
    options = ", ".join(f"{n!r}: {n}" for n in _option_names(spec))
    legacy = legacy.format(arrays=", ".join(spec.arrays), options=options)
    source = (
        f"def {binding.function}({_parameter_list(binding.signature, binding.keyword_only)}):\n"
        f"{legacy}"
        f"    return _call(_spec, ({', '.join(spec.arrays)},), {{{options}}})\n"
    )
    scope = {"_call": call, "_spec": spec, "_legacy_reduction": legacy_reduction}
    exec(compile(source, f"<lossy_torch.functional.{binding.function}>", "exec"), scope)
    function = scope[binding.function]
    function.__module__ = namespace.get("__name__", "lossy_torch.functional")
    function.__qualname__ = binding.function
    function.__doc__ = (
        f"Drop-in for ``torch.nn.functional.{binding.function}``, computed by "
        f"``lossy_core.{spec.name}``.\n\n{inspect.getdoc(spec.function)}"
    )
    namespace[binding.function] = function
    return function


class LossModule(_Loss):
    """Base of the generated loss modules (a ``torch.nn.modules.loss._Loss``)."""

    _spec: LossSpec
    _options: tuple[str, ...] = ()

    def forward(self, *arrays):
        spec = self._spec
        options = {name: getattr(self, name) for name in _option_names(spec)}
        return call(spec, arrays, options)

    def extra_repr(self) -> str:
        parts = []
        defaults = dict(self._spec.torch.module_signature)
        for name in _option_names(self._spec):
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                parts.append(f"{name}=tensor(shape={list(value.shape)}, dtype={value.dtype})")
            elif name in defaults and value != defaults[name]:
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)


def make_module(spec: LossSpec, namespace: dict):
    """``torch.nn.<ClassName>`` for ``spec``, with torch.nn's exact constructor."""
    binding = spec.torch
    names = [name for name, _ in binding.module_signature]
    legacy_args = (
        "size_average=size_average, reduce=reduce, " if "size_average" in names else ""
    )
    lines = [
        f"def __init__(self, {_parameter_list(binding.module_signature, binding.module_keyword_only)}):",
        f"    _Loss.__init__(self, {legacy_args}reduction=reduction)",
    ]
    for name in _option_names(spec):
        if name == "reduction":
            continue
        if name in binding.buffers:
            lines.append(f"    self.register_buffer({name!r}, {name})")
        elif name in names:
            lines.append(f"    self.{name} = {name}")
        else:  # a functional-only argument (l1/mse/huber weight): absent from the module, as in torch
            lines.append(f"    self.{name} = None")
    source = "\n".join(lines) + "\n"
    scope = {"_Loss": _Loss}
    exec(compile(source, f"<lossy_torch.{binding.module}.__init__>", "exec"), scope)
    forward_names = ", ".join(binding.forward_arguments or spec.arrays)
    forward_source = f"def forward(self, {forward_names}):\n    return LossModule.forward(self, {forward_names})\n"
    exec(compile(forward_source, f"<lossy_torch.{binding.module}.forward>", "exec"), {"LossModule": LossModule}, scope)
    cls = type(binding.module, (LossModule,), {
        "__init__": scope["__init__"],
        "forward": scope["forward"],
        "_spec": spec,
        "__module__": namespace.get("__name__", "lossy_torch"),
        "__doc__": (
            f"Drop-in for ``torch.nn.{binding.module}``, computed by ``lossy_core.{spec.name}``.\n\n"
            f"{inspect.getdoc(spec.function)}"
        ),
    })
    cls.__init__.__qualname__ = f"{binding.module}.__init__"
    cls.forward.__qualname__ = f"{binding.module}.forward"
    namespace[binding.module] = cls
    return cls
