"""Divergences between distributions: Kullback-Leibler."""

from __future__ import annotations

from ._backend import dtype_name, namespace, quiet_floating_point, shape_of
from ._common import broadcast_pair, upcast
from ._primitives import xlogy
from ._reductions import KL_REDUCTIONS, check_reduction, reduce
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import is_floating


def kl_div(input, target, /, *, reduction="mean", log_target=False):
    """Pointwise Kullback-Leibler divergence with log-probabilities as ``input``::

        loss_i = target_i (log target_i - input_i)          (0 where target_i = 0)
        loss_i = exp(target_i) (target_i - input_i)         (log_target=True)

    ``input`` and ``target`` broadcast together. ``'batchmean'`` divides the sum
    by ``input.shape[0]`` (the sum itself for a 0-d input) and equals the
    mathematical KL divergence; ``'mean'`` divides by every element (torch warns
    about it). Reference: ``torch.nn.functional.kl_div`` (Kullback & Leibler, 1951).
    """
    xp = namespace(input, target)
    check_reduction(reduction, KL_REDUCTIONS)
    for name, x in (("input", input), ("target", target)):
        if not is_floating(xp, x):
            raise RuntimeError(
                f"kl_div: Integral inputs not supported: expected a floating point '{name}', "
                f"got {dtype_name(x.dtype)}"
            )
    out_dtype = xp.result_type(input, target)
    input_b, target_b = broadcast_pair(xp, input, target, loss="kl_div", warn=False)
    log_q, p = upcast(xp, input_b), upcast(xp, target_b)
    if log_target:
        terms = xp.exp(p) * (p - log_q)
    else:
        terms = xlogy(xp, p, p) - p * log_q
    if reduction == "batchmean":
        total = xp.sum(terms)
        with quiet_floating_point(xp):  # an empty batch is 0/0 = NaN, as in torch
            value = total / shape_of(input)[0] if input.ndim != 0 else total
    else:
        value = reduce(xp, terms, reduction)
    return value if value.dtype == out_dtype else xp.astype(value, out_dtype)


register(LossSpec(
    name="kl_div", function=kl_div, family="divergence", arrays=("input", "target"),
    options=(Option("reduction", "mean"), Option("log_target", False)), differentiable=("input", "target"),
    reductions=KL_REDUCTIONS,
    summary="Kullback-Leibler divergence from log-probabilities (`batchmean`, `log_target`)",
    torch=TorchBinding(
        function="kl_div",
        signature=(("input", REQUIRED), ("target", REQUIRED), ("size_average", None), ("reduce", None),
                   ("reduction", "mean"), ("log_target", False)),
        module="KLDivLoss",
        module_signature=(("size_average", None), ("reduce", None), ("reduction", "mean"), ("log_target", False)),
        reduction_warnings=((
            "mean",
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
        ),),
    ),
))
