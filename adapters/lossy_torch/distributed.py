"""The mean of a loss over every rank of a data-parallel job: ``global_mean(parts)``.

A token (or target, or element) mean over the global batch is::

    L = sum over ranks r of numerator_r  /  sum over ranks r of denominator_r

where ``(numerator_r, denominator_r)`` is rank r's ``reduction="parts"``
(:class:`lossy_core.LossParts`: the summed loss and torch's ``'mean'`` denominator, e.g. the
count of non-ignored targets). Averaging each rank's own ``'mean'`` instead gives
``(x_1/n_1 + x_2/n_2) / 2``, which is not ``(x_1 + x_2) / (n_1 + n_2)`` once the ranks
hold different numbers of valid targets (padding, ``ignore_index``, packed sequences): a
rank with 2 valid tokens then weighs as much as a rank with 8. This is the bug behind
transformers' gradient-accumulation fix (huggingface/transformers PR #34191,
``num_items_in_batch``) and the reason torchmetrics' ``MeanMetric`` all-reduces a weighted
sum and a weight separately.

``global_mean`` all-reduces (SUM) the numerator *with autograd* and the denominator
without, then divides once with :func:`lossy_core.finalize`. Every rank gets the global
value (so it can be logged as is), and the gradient is that of one process holding the
concatenated batch once the data-parallel wrapper has reduced the gradients:

- ``grad_reduction="avg"`` (default): DistributedDataParallel, FSDP with its default
  average. The all-reduce's backward sums the W ranks' cotangents, so each rank's local
  gradient is W times its share of the global gradient; the wrapper's average over W
  divides that back.
- ``grad_reduction="sum"``: gradients are summed across ranks, not averaged (FSDP2's
  ``set_force_sum_reduction_for_comms(True)`` or ``set_gradient_divide_factor(1)``,
  torchtitan, Megatron-LM's per-token loss, a hand-written ``all_reduce(SUM)`` of the
  gradients). The numerator's gradient is divided by W; the value is unchanged.

It is a collective: every rank of ``group`` calls it, in the same order, and backpropagates
through its result (the backward all-reduces the cotangents), as every rank does under DDP.

Without ``torch.distributed`` (not built, or no process group initialised) it is a single
process: ``global_mean(parts) == lossy_core.finalize(parts)``.

Nothing is read back to the host (no ``.item()``), so it neither synchronises a CUDA
stream nor breaks CUDA-graph capture, and the collectives are torch's functional ones
(``torch.distributed._functional_collectives``), which torch.compile traces.
"""

from __future__ import annotations

import torch

from lossy_core import LossParts, finalize
from lossy_core._reductions import check_empty_policy

__all__ = ["global_mean", "GRAD_REDUCTIONS"]

# How the data-parallel wrapper reduces the gradients across ranks.
GRAD_REDUCTIONS = ("avg", "sum")


class _ScaleGrad(torch.autograd.Function):
    """Identity forward, gradient times ``scale`` backward.

    The forward value stays bit-exact (also for inf/NaN numerators, which the usual
    ``x.detach() + (x - x.detach()) * s`` turns into NaN), and only the gradient path
    changes.
    """

    @staticmethod
    def forward(x, scale):
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.scale = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def _distributed_ready() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def _process_group(group):
    """``group`` as a ProcessGroup: None is the default (world) group; a 1-D DeviceMesh, or
    ``(mesh, dim)``, is that mesh dimension's group."""
    dist = torch.distributed
    if group is None:
        return dist.group.WORLD
    if isinstance(group, dist.ProcessGroup):
        return group
    if isinstance(group, tuple) and len(group) == 2:
        mesh, dim = group
        if hasattr(mesh, "get_group"):
            return mesh.get_group(dim)
    elif hasattr(group, "get_group") and hasattr(group, "ndim"):  # a DeviceMesh
        if group.ndim != 1:
            raise ValueError(f"group: a DeviceMesh must be 1-D (or pass (mesh, dim)), got {group.ndim}-D")
        return group.get_group()
    raise TypeError(
        "group must be None, a torch.distributed.ProcessGroup, a 1-D DeviceMesh or (DeviceMesh, dim), "
        f"got {type(group).__name__}"
    )


def global_mean(parts, group=None, *, empty="nan", grad_reduction="avg"):
    """``sum(numerators) / sum(denominators)`` over the ranks of ``group``, on every rank.

    Args:
        parts: a :class:`lossy_core.LossParts` (or any ``(numerator, denominator)`` pair of
            tensors), e.g. ``lossy_torch.functional.cross_entropy(..., reduction="parts")`` or
            the :func:`lossy_core.combine` of a step's micro-batches. The numerator carries the
            autograd graph; the denominator's gradient, if any, is ignored.
        group: the data-parallel ranks: None (the default group), a ProcessGroup, a 1-D
            DeviceMesh or ``(mesh, dim)``.
        empty: the value where the *global* denominator is 0 (``'nan'``, ``'zero'``,
            ``'clamp1'``; see :func:`lossy_core.finalize`). A rank whose own denominator is 0
            needs no policy: its numerator (0) is simply added.
        grad_reduction: ``'avg'`` where the gradients are averaged across ranks (DDP, FSDP's
            default), ``'sum'`` where they are summed (see the module docstring).

    Returns:
        The global mean, a 0-d tensor, the same on every rank. Without an initialised
        process group: ``lossy_core.finalize(parts, empty=empty)``.
    """
    check_empty_policy(empty)
    if not isinstance(grad_reduction, str) or grad_reduction not in GRAD_REDUCTIONS:
        raise ValueError(
            f"grad_reduction must be one of {', '.join(repr(g) for g in GRAD_REDUCTIONS)}, got {grad_reduction!r}"
        )
    if not isinstance(parts, tuple) or len(parts) != 2:
        raise TypeError(
            "parts must be a (numerator, denominator) pair such as lossy_core.LossParts "
            f"(reduction='parts'), got {type(parts).__name__}"
        )
    numerator, denominator = parts
    for name, value in (("numerator", numerator), ("denominator", denominator)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"parts.{name} must be a torch.Tensor, got {type(value).__name__}")

    if not _distributed_ready():
        return finalize(LossParts(numerator, denominator), empty=empty)

    from torch.distributed import _functional_collectives as funcol

    pg = _process_group(group)
    if grad_reduction == "sum":
        # The all-reduce's backward gives each rank W x its share of the gradient (the sum of
        # every rank's cotangent); a summing gradient reduction then needs 1/W of it. Scale the
        # gradient path only, so that the value is untouched.
        numerator = _ScaleGrad.apply(numerator, 1.0 / torch.distributed.get_world_size(pg))
    denominator = denominator.detach().to(device=numerator.device, dtype=numerator.dtype)
    numerator, denominator = torch.broadcast_tensors(numerator, denominator)
    # One collective for both: the stacked denominator is detached, so the gradient reaches
    # the numerator only. "sum" is the reduction whose backward torch registers (an all-reduce
    # of the cotangents); wait_tensor returns a plain tensor, waited on, on the autograd graph.
    total = funcol.wait_tensor(funcol.all_reduce(torch.stack([numerator, denominator]), "sum", pg))
    return finalize(LossParts(total[0], total[1].detach()), empty=empty)

