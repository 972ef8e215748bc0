"""Binding a formula to a gradient written beside it.

``custom_gradient(forward, backward)`` makes one function that, on torch, is a
``torch.autograd.Function`` (so ``torch.compile``, ``torch.func.grad`` and
``vmap`` see it), on jax a ``jax.custom_vjp``, and elsewhere plain ``forward``.
It is used where differentiating the formula would not give torch's gradient
(e.g. binary cross entropy at probabilities of exactly 0 and 1).
"""

from __future__ import annotations

import inspect
import sys

from ._backend import is_jax, is_torch

_INSTANCES: list["CustomGradient"] = []


def bind_torch():
    """Build every torch.autograd.Function now, and look up torch's CPU vector width.

    A class cannot be created while torch.compile traces (dynamo refuses
    ``__build_class__``), nor can the capability lookup be traced, so lossy_torch
    calls this on import, and a CustomGradient created after torch is imported
    builds its Function at once.
    """
    from ._primitives import torch_cpu_vector_bytes

    torch_cpu_vector_bytes()
    for instance in _INSTANCES:
        instance._torch()


def _torch_records(arrays):
    """Whether autograd records this call: grad mode is on and some argument requires grad.
    Otherwise the formula runs as is: there is no graph to record, and torch.compile cannot inline
    an autograd.Function's forward then (it passes the class as a ctx: "failed to bind arguments",
    under no_grad and for inputs that need no gradient alike)."""
    torch = sys.modules["torch"]
    return torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in arrays)


class CustomGradient:
    """``forward(xp, *arrays)`` whose vector-Jacobian product is ``backward``.

    ``backward(xp, arrays, upstream, needs)`` returns one gradient per array,
    ``None`` where ``needs[i]`` is false.

    With ``residuals=True`` the forward returns ``(output, saved)``, ``saved`` a tuple of
    arrays it computed on the way, and ``backward(xp, arrays, saved, upstream, needs)``
    receives them too: the gradient reuses the forward's work. Arguments may also be
    Python numbers (a hyperparameter): their gradient is None.

    ``torch_only=True`` marks a gradient written for speed under torch's autograd, where
    differentiating the formula is already exact: jax then differentiates the formula
    itself, which XLA fuses with the forward (saved residuals would cost a pass).
    """

    def __init__(self, forward, backward, name, residuals=False, torch_only=False):
        if not residuals:  # one binding below: the plain form is the residual form saving nothing
            plain_forward, plain_backward = forward, backward

            def forward(xp, *arrays):
                return plain_forward(xp, *arrays), ()

            def backward(xp, arrays, saved, upstream, needs):
                return plain_backward(xp, arrays, upstream, needs)

        self.forward = forward  # always ``(output, saved)``
        self.backward = backward  # always ``(xp, arrays, saved, upstream, needs)``
        self.torch_only = torch_only
        self.__name__ = name
        self._torch_function = None
        self._jax_function = None
        _INSTANCES.append(self)
        if "torch" in sys.modules:
            self._torch()

    def __call__(self, xp, *arrays):
        if is_torch(xp) and _torch_records(arrays):
            return self._torch()(*arrays)[0]
        if is_jax(xp) and not self.torch_only:
            return self._jax()(*arrays)
        return self.forward(xp, *arrays)[0]

    def _torch(self):
        if self._torch_function is None:
            import array_api_compat.torch as torch_xp
            import torch

            forward, backward = self.forward, self.backward

            class Function(torch.autograd.Function):
                generate_vmap_rule = True

                @staticmethod
                def forward(*arrays):
                    output, saved = forward(torch_xp, *arrays)
                    return (output, *saved)

                @staticmethod
                def setup_context(ctx, inputs, output):
                    ctx.mark_non_differentiable(*output[1:])
                    # The residual outputs never receive a gradient: no zero-filled tensors for them
                    # (torch would allocate and fill one per residual on every backward).
                    ctx.set_materialize_grads(False)
                    # Tensors are saved the autograd way; Python numbers (a hyperparameter) kept as is.
                    everything = (*inputs, *output[1:])
                    ctx.save_for_backward(*(x for x in everything if isinstance(x, torch.Tensor)))
                    ctx.layout = [None if isinstance(x, torch.Tensor) else x for x in everything]
                    ctx.count = len(inputs)

                @staticmethod
                def backward(ctx, upstream, *unused):
                    tensors = iter(ctx.saved_tensors)
                    everything = tuple(next(tensors) if x is None else x for x in ctx.layout)
                    arrays, saved = everything[:ctx.count], everything[ctx.count:]
                    if saved and torch.is_grad_enabled():
                        # create_graph=True (a gradient penalty, a Hessian-vector product): the saved
                        # residuals are non-differentiable outputs, so recompute them from the inputs,
                        # and the gradient is itself differentiable, as torch's losses' are.
                        _, saved = forward(torch_xp, *arrays)
                    return tuple(backward(torch_xp, arrays, saved, upstream, ctx.needs_input_grad))

            # With setup_context defined, Function.apply binds its arguments to forward's
            # signature on every call; inspect.signature of a function without a cached
            # __signature__ took 4 of the 14 us an apply costs (torch 2.13, measured).
            Function.forward.__signature__ = inspect.signature(Function.forward)
            Function.__name__ = Function.__qualname__ = self.__name__
            self._torch_function = Function.apply
        return self._torch_function

    def _jax(self):
        if self._jax_function is None:
            import jax
            import jax.numpy as jnp

            forward, backward = self.forward, self.backward

            @jax.custom_vjp
            def function(*arrays):
                return forward(jnp, *arrays)[0]

            def function_fwd(*arrays):
                output, saved = forward(jnp, *arrays)
                return output, (saved, arrays)

            def function_bwd(carried, upstream):
                saved, arrays = carried
                grads = backward(jnp, arrays, saved, upstream, (True,) * len(arrays))
                return tuple(jnp.zeros_like(a) if g is None else g for a, g in zip(arrays, grads))

            function.defvjp(function_fwd, function_bwd)
            self._jax_function = function
        return self._jax_function


def custom_gradient(backward, residuals=False, torch_only=False):
    """Decorator: ``@custom_gradient(backward)`` over ``def forward(xp, *arrays)``."""

    def wrap(forward):
        return CustomGradient(forward, backward, forward.__name__, residuals=residuals, torch_only=torch_only)

    return wrap
