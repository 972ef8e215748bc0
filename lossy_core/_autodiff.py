"""Binding a formula to a gradient written beside it.

``custom_gradient(forward, backward)`` makes one function that, on torch, is a
``torch.autograd.Function`` (so ``torch.compile``, ``torch.func.grad`` and
``vmap`` see it), on jax a ``jax.custom_vjp``, and elsewhere plain ``forward``.
It is used where differentiating the formula would not give torch's gradient
(e.g. binary cross entropy at probabilities of exactly 0 and 1).
"""

from __future__ import annotations

import sys

from ._backend import is_jax, is_torch

_INSTANCES: list["CustomGradient"] = []


def bind_torch():
    """Build every torch.autograd.Function now.

    A class cannot be created while torch.compile traces (dynamo refuses
    ``__build_class__``), so lossy_torch calls this on import, and a
    CustomGradient created after torch is imported builds its Function at once.
    """
    for instance in _INSTANCES:
        instance._torch()


class CustomGradient:
    """``forward(xp, *arrays)`` whose vector-Jacobian product is ``backward``.

    ``backward(xp, arrays, upstream, needs)`` returns one gradient per array,
    ``None`` where ``needs[i]`` is false.
    """

    def __init__(self, forward, backward, name):
        self.forward = forward
        self.backward = backward
        self.__name__ = name
        self._torch_function = None
        self._jax_function = None
        _INSTANCES.append(self)
        if "torch" in sys.modules:
            self._torch()

    def __call__(self, xp, *arrays):
        if is_torch(xp):
            return self._torch()(*arrays)
        if is_jax(xp):
            return self._jax()(*arrays)
        return self.forward(xp, *arrays)

    def _torch(self):
        if self._torch_function is None:
            import array_api_compat.torch as torch_xp
            import torch

            forward, backward = self.forward, self.backward

            class Function(torch.autograd.Function):
                generate_vmap_rule = True

                @staticmethod
                def forward(*arrays):
                    return forward(torch_xp, *arrays)

                @staticmethod
                def setup_context(ctx, inputs, output):
                    ctx.save_for_backward(*inputs)

                @staticmethod
                def backward(ctx, upstream):
                    return tuple(backward(torch_xp, ctx.saved_tensors, upstream, ctx.needs_input_grad))

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
                return forward(jnp, *arrays)

            def function_fwd(*arrays):
                return forward(jnp, *arrays), arrays

            def function_bwd(arrays, upstream):
                grads = backward(jnp, arrays, upstream, (True,) * len(arrays))
                return tuple(jnp.zeros_like(a) if g is None else g for a, g in zip(arrays, grads))

            function.defvjp(function_fwd, function_bwd)
            self._jax_function = function
        return self._jax_function


def custom_gradient(backward):
    """Decorator: ``@custom_gradient(backward)`` over ``def forward(xp, *arrays)``."""

    def wrap(forward):
        return CustomGradient(forward, backward, forward.__name__)

    return wrap
