"""``lossy_torch.functional.linear_cross_entropy`` and ``lossy_torch.LinearCrossEntropyLoss``.

torch 2.13's signatures, computed by ``lossy_core._linear``'s chunk formula in a loop this adapter
owns, inside a ``torch.autograd.Function`` that keeps only what the caller needs:

- ``'mean'``/``'sum'``: one pass. The forward computes the loss and, in the same loop, the
  gradients of the arguments that require them (the gradient of the output is a scalar, so they
  are the gradients for 1, scaled later). The backward scales them in place and hands them over,
  so the peak of forward+backward is the gradients plus one chunk of logits (torch's chunked path
  also allocates and zero-fills a gradient for each of its op's three unused outputs: twice that).
  A second backward (``retain_graph=True``) recomputes them from the inputs.
- ``'none'``, and an ``lse`` output that receives a gradient: the backward runs the loop again
  with the per-position gradients (torch's chunked path recomputes for 'none' too).
- Under ``torch.compile`` and ``torch.func`` transforms the same formula runs as a plain custom
  gradient (residuals saved the autograd way, scaled out of place): both work, where torch's own
  chunked path fails ``torch.func.grad`` and ``fullgraph=True``.

Every option is chunked, including those torch's chunked path sends back to its reference path
(label smoothing, probability targets, K-dimensional weights, non-int64 targets).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.loss import _WeightedLoss

from lossy_core import LossParts
from lossy_core._linear import (
    chunk_rows, finish, gradients_out, linear_cross_entropy as _core_linear_cross_entropy, plan, position_upstream,
    run,
)

_HALF = (torch.float16, torch.bfloat16)


def chunk_size_of(options, num_rows, in_features, num_classes):
    """Rows per chunk for a ``LinearCrossEntropyOptions`` (or any object with its fields), or None
    for lossy's automatic byte budget.

    ``batch_chunk_size`` wins; ``chunking_method="aspect_ratio[:k]"`` is torch's rule
    (``next_pow2(ceil(N / ceil(C / D))) // k``, so a user reproducing torch's chunks gets them);
    ``"auto"`` and None take lossy's byte budget (torch's ``"auto"`` on CPU float32 is a
    CUDA-tuned ``aspect_ratio:2``: 64-row chunks at N=4096, D=1024, V=32000, 1.7x its best time).
    ``acc_policy`` is accepted and has no effect: half precision always accumulates in float32
    (torch's ``auto``; its explicit policies accumulate in the input dtype unless ``acc_dtype``).
    """
    if options is None:
        return None
    for field in ("batch_chunk_size", "chunking_method", "acc_policy", "acc_dtype"):
        if not hasattr(options, field):
            raise TypeError(f"linear_cross_entropy: 'options' must be a LinearCrossEntropyOptions (or have its "
                            f"fields), got {type(options).__name__} without '{field}'")
    method = options.chunking_method
    explicit = options.batch_chunk_size
    if method is None or method == "auto":
        return None if explicit is None else max(1, min(int(explicit), max(num_rows, 1)))
    factor = int(method.split(":", 1)[1]) if ":" in method else 1
    target = -(-num_rows // -(-num_classes // in_features))
    rows = max(1, min((1 << max(target - 1, 0).bit_length()) // factor, num_rows))
    if explicit is not None and explicit != rows:  # torch's _adjust refuses the conflict the same way
        raise ValueError(f"batch_chunk_size (={explicit}) and chunking_method ('{method}') give different chunk "
                         f"sizes ({explicit} vs {rows}); pass only one.")
    return rows


def _check_acc_dtype(options, dtype):
    acc_dtype = getattr(options, "acc_dtype", None)
    if acc_dtype is None or acc_dtype == dtype or (dtype in _HALF and acc_dtype == torch.float32):
        return
    raise RuntimeError(f"linear_cross_entropy supports float32 acc_dtype with float16/bfloat16 inputs, but got "
                       f"{acc_dtype} acc_dtype and {dtype} inputs.")


def _requires_grad(tensor):
    return isinstance(tensor, torch.Tensor) and tensor.requires_grad


# -- the custom gradient under torch.compile and torch.func: residuals saved the autograd way --

def _forward(xp, input, linear_weight, target, linear_bias, weight, config):
    """``(output, saved)``: the loss (and lse) with, for a scalar reduction, the gradients for an
    output gradient of 1 as residuals."""
    options, needs = config
    p = plan(input, linear_weight, target, linear_bias=linear_bias, weight=weight, **options)
    one_pass = p.reduction != "none"
    terms, lse, grads = run(p, gradients=needs if one_pass else (False,) * 4)
    output = _split_parts(*finish(xp, p, terms, lse, True))
    saved = tuple(g for g in grads if g is not None) if one_pass else ()
    return output, saved


def _split_parts(loss, lse):
    """``(loss, lse, denominator)``: a Function's outputs are tensors, so 'parts' hands its
    numerator (which has the gradient) and its denominator (which has none) over separately;
    the denominator is a 0-d zero for the other reductions."""
    if isinstance(loss, LossParts):
        return loss.numerator, lse, loss.denominator
    return loss, lse, loss.new_zeros(())


def _backward(xp, arrays, saved, upstream):
    input, linear_weight, target, linear_bias, weight, config = arrays
    options, wanted = config
    upstream_loss, upstream_lse = upstream
    p = plan(input, linear_weight, target, linear_bias=linear_bias, weight=weight, **options)
    if saved and upstream_lse is None:
        grads = iter(g * upstream_loss for g in saved)
        grads = [next(grads) if w else None for w in wanted]
    else:
        grads = _recompute(p, wanted, upstream_loss, upstream_lse)
    out = gradients_out(xp, p, grads, input, linear_weight, linear_bias, target)
    return (out.get("input"), out.get("linear_weight"), out.get("target"), out.get("linear_bias"), None, None)


def _recompute(p, wanted, upstream_loss, upstream_lse):
    xp = p.xp
    if upstream_loss is None:
        upstream_loss = xp.zeros(p.output_shape if p.reduction == "none" else (), dtype=p.dtype, device=p.x.device)
    if upstream_lse is not None:
        upstream_lse = xp.reshape(upstream_lse.to(p.dtype), (p.rows, p.positions))
    _, _, grads = run(p, gradients=wanted, upstream=position_upstream(xp, p, upstream_loss),
                      upstream_lse=upstream_lse)
    return grads


class _TracedFunction(torch.autograd.Function):
    """The loss as a plain custom gradient, for ``torch.compile`` and ``torch.func``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, linear_weight, target, linear_bias, weight, config):
        (loss, lse, denominator), saved = _forward(_torch_xp(), input, linear_weight, target, linear_bias, weight,
                                                   config)
        return (loss, lse, denominator, *saved)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(*output[2:])
        ctx.set_materialize_grads(False)
        tensors = [t for t in inputs[:5]]
        ctx.layout = [t is not None for t in tensors]
        ctx.save_for_backward(*(t for t in tensors if t is not None), *output[3:])
        ctx.config = inputs[5]

    @staticmethod
    def backward(ctx, upstream_loss, upstream_lse, *unused):
        saved = iter(ctx.saved_tensors)
        arrays = [next(saved) if present else None for present in ctx.layout]
        residuals = tuple(saved)
        return _backward(_torch_xp(), (*arrays, ctx.config), residuals, (upstream_loss, upstream_lse))


# -- eager autograd: the residual gradients are scaled in place and handed over ------------

class _EagerFunction(torch.autograd.Function):
    """The loss for eager autograd. The residual gradients live on ``ctx`` (not
    ``save_for_backward``) so the first backward can scale them in place and give them away:
    ``AccumulateGrad`` then keeps the very tensor (no copy), and nothing else holds it."""

    @staticmethod
    def forward(ctx, input, linear_weight, target, linear_bias, weight, config):
        options, needs = config
        p = plan(input, linear_weight, target, linear_bias=linear_bias, weight=weight, **options)
        xp = p.xp
        one_pass = p.reduction != "none"
        terms, lse, grads = run(p, gradients=needs if one_pass else (False,) * 4)
        loss, lse, denominator = _split_parts(*finish(xp, p, terms, lse, True))
        # The plan is rebuilt if a backward recomputes: kept, it would hold a float32 copy of a
        # half-precision weight between forward and backward.
        ctx.config = config
        ctx.arguments = (input, linear_weight, target, linear_bias, weight)
        ctx.grads = gradients_out(xp, p, grads, input, linear_weight, linear_bias, target) if one_pass else None
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(denominator)
        return loss, lse, denominator

    @staticmethod
    def backward(ctx, upstream_loss, upstream_lse, upstream_denominator):
        input, linear_weight, target, linear_bias, weight = ctx.arguments
        grads, ctx.grads = ctx.grads, None  # taken once; a second backward recomputes
        if grads is not None and upstream_lse is None and upstream_loss is not None:
            for name in grads:
                grads[name].mul_(upstream_loss)
        else:
            options, needs = ctx.config
            p = plan(input, linear_weight, target, linear_bias=linear_bias, weight=weight, **options)
            grads = gradients_out(p.xp, p, _recompute(p, needs, upstream_loss, upstream_lse),
                                  input, linear_weight, linear_bias, target)
        return (grads.pop("input", None), grads.pop("linear_weight", None), grads.pop("target", None),
                grads.pop("linear_bias", None), None, None)


_TORCH_XP = []


def _torch_xp():
    if not _TORCH_XP:
        import array_api_compat.torch as torch_xp

        _TORCH_XP.append(torch_xp)
    return _TORCH_XP[0]


def _traced(tensors):
    return torch.compiler.is_compiling() or any(
        isinstance(t, torch.Tensor) and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, options=None, lse_square_scale=0.0, softcap=None,
                         return_lse=False):
    """Drop-in for ``torch.nn.functional.linear_cross_entropy`` (torch 2.13), computed a chunk of rows
    at a time by ``lossy_core.linear_cross_entropy``; never the ``(N, C)`` logits.

    The values and gradients are torch's reference path (``options=None``) for every option: class
    weights, bias, ``ignore_index`` (all ignored: NaN loss and zero gradients), label smoothing,
    probability targets, K-dimensional ``linear_weight``. ``options`` (a
    ``torch.nn.LinearCrossEntropyOptions``, or an object with its fields) only sets the chunk
    (see ``chunk_size_of``); without it lossy chunks anyway, by a byte budget
    (``lossy_core._linear.CHUNK_BYTES``). Differences from torch's chunked path, which lossy does
    not follow: all-ignored batches give zero gradients (not NaN), out-of-range targets raise
    IndexError (not RuntimeError), ``torch.func.grad`` and ``torch.compile(fullgraph=True)`` work,
    and a second backward works. The class ``weight`` is not differentiable (RuntimeError if it
    requires grad, as torch's reference path raises for class-index targets).

    lossy's options, keyword-only after torch's: ``lse_square_scale`` (z-loss),
    ``softcap``, ``return_lse`` (returns ``(loss, lse)``); see ``lossy_core.linear_cross_entropy``.
    """
    in_features = input.shape[-1] if input.ndim else 0
    rows = input.shape[0] if input.ndim == 2 else 1
    num_classes = linear_weight.shape[0] if linear_weight.ndim else 0
    positions = math.prod(linear_weight.shape[1:-1]) if linear_weight.ndim > 2 else 1
    chunk_size = chunk_size_of(options, rows, max(in_features, 1), num_classes * positions)
    if options is not None:
        _check_acc_dtype(options, input.dtype)
    core_options = dict(reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
                        lse_square_scale=lse_square_scale, softcap=softcap, chunk_size=chunk_size)
    if _requires_grad(weight) and torch.is_grad_enabled():
        raise RuntimeError("The function 'linear_cross_entropy' is not differentiable with respect to argument "
                           "'weight'. This input cannot have requires_grad True.")
    differentiable = (input, linear_weight, linear_bias, target)  # the order of run()'s gradients
    needs = tuple(_requires_grad(t) for t in differentiable)
    if not (torch.is_grad_enabled() and any(needs)):
        return _core_linear_cross_entropy(input, linear_weight, target, linear_bias=linear_bias, weight=weight,
                                          return_lse=return_lse, **core_options)
    config = (core_options, needs)
    function = _TracedFunction if _traced(differentiable) else _EagerFunction
    loss, lse, denominator = function.apply(input, linear_weight, target, linear_bias, weight, config)[:3]
    if reduction == "parts":
        loss = LossParts(loss, denominator)
    return (loss, lse) if return_lse else loss


class LinearCrossEntropyLoss(_WeightedLoss):
    """Drop-in for ``torch.nn.LinearCrossEntropyLoss`` (torch 2.13): the same constructor,
    parameters (``self.linear``, a ``Linear(in_features, C * prod(out_features), bias)``, stored flat
    and reshaped in ``forward``) and initialisation, so ``load_state_dict`` from torch's module
    works; computed by ``lossy_torch.functional.linear_cross_entropy``. lossy's extras
    (``lse_square_scale``, ``softcap``, ``return_lse``) are keyword-only after torch's arguments.
    """

    __constants__ = ["num_classes", "out_features", "reduction", "ignore_index", "label_smoothing"]

    def __init__(self, in_features, num_classes, *, out_features=(), bias=False, device=None, dtype=None,
                 reduction="mean", weight=None, ignore_index=None, label_smoothing=0.0, options=None,
                 lse_square_scale=0.0, softcap=None, return_lse=False):
        if weight is not None and weight.shape != (num_classes,):
            raise RuntimeError(f"expected weight shape to be {(num_classes,)}, got {tuple(weight.shape)}")
        if label_smoothing < 0 or label_smoothing > 1.0:
            raise RuntimeError(f"expected label_smoothing to be in range [0, 1], got {label_smoothing}")
        super().__init__(weight=weight, size_average=None, reduce=None, reduction=reduction)
        self.num_classes = num_classes
        self.out_features = tuple(out_features)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.linear = nn.Linear(in_features, math.prod(out_features, start=num_classes), bias=bias, device=device,
                                dtype=dtype)
        self.options = options
        self.lse_square_scale = lse_square_scale
        self.softcap = softcap
        self.return_lse = return_lse

    def forward(self, input, target):
        linear_weight = self.linear.weight.reshape((self.num_classes, *self.out_features, self.linear.in_features))
        bias = self.linear.bias
        linear_bias = None if bias is None else bias.reshape((self.num_classes, *self.out_features))
        return linear_cross_entropy(
            input, linear_weight, target, linear_bias=linear_bias, weight=self.weight, reduction=self.reduction,
            ignore_index=self.ignore_index, label_smoothing=self.label_smoothing, options=self.options,
            lse_square_scale=self.lse_square_scale, softcap=self.softcap, return_lse=self.return_lse,
        )

    def extra_repr(self) -> str:
        extras = "".join(f", {name}={getattr(self, name)!r}" for name, default in
                         (("lse_square_scale", 0.0), ("softcap", None), ("return_lse", False))
                         if getattr(self, name) != default)  # lossy's options, only when set
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
                f"reduction={self.reduction}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}, options={self.options}{extras}")
