"""Divergences between distributions: Kullback-Leibler."""

from __future__ import annotations

from ._backend import dtype_name, namespace, quiet_floating_point, shape_of
from ._common import as_float, broadcast_pair, gradient_like, upcast
from ._primitives import xlogx
from ._reductions import KL_REDUCTIONS, check_reduction, divide, finish, reduce, reduction_vjp
from ._registry import REQUIRED, LossSpec, Option, TorchBinding, register
from ._validation import is_floating


def kl_div(input, target, /, *, reduction="mean", log_target=False):
    """Pointwise Kullback-Leibler divergence with log-probabilities as ``input``::

        loss_i = target_i (log target_i - input_i)          (0 where target_i = 0)
        loss_i = exp(target_i) (target_i - input_i)         (log_target=True)

    ``input`` and ``target`` broadcast together. ``'batchmean'`` divides the sum
    by ``input.shape[0]`` (the sum itself for a 0-d input) and equals the
    mathematical KL divergence; ``'mean'`` divides by every element (torch warns
    about it). ``'parts'`` is ``(sum, input.shape[0])``, the parts of ``'batchmean'`` (of the KL
    divergence per sample), not of ``'mean'``. Reference: ``torch.nn.functional.kl_div`` (Kullback & Leibler, 1951).
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
        terms = xlogx(xp, p) - p * log_q
    if reduction in ("batchmean", "parts"):
        # 'parts' is batchmean's: the KL divergence per sample, the mean worth accumulating.
        total = xp.sum(terms)
        value = divide(xp, total, shape_of(input)[0] if input.ndim != 0 else 1, reduction)
    else:
        value = reduce(xp, terms, reduction)
    return finish(xp, value, out_dtype)


def _kl_div_vjp(xp, arrays, options, upstream):
    """LossSpec.vjp of kl_div. With ``log q = input`` and ``p = target``::

        d/d input = -p,            d/d target = log p + 1 - input     (torch: NaN at p = 0, the
        d/d input = -exp(p),       d/d target = exp(p) (p - input + 1)  gradient of xlogy(p, p))

    the second line for ``log_target=True``.
    """
    input, target = arrays["input"], arrays["target"]
    input_b, target_b = broadcast_pair(xp, input, target, loss="kl_div", warn=False)
    log_q, p = upcast(xp, input_b), upcast(xp, target_b)
    reduction = options["reduction"]
    upstream = upcast(xp, as_float(xp, upstream, log_q.dtype))
    if reduction == "batchmean":
        scale = upstream / shape_of(input)[0] if input.ndim != 0 and shape_of(input)[0] else upstream
        scale = xp.broadcast_to(scale, log_q.shape)
    else:
        scale = reduction_vjp(xp, upstream, log_q.shape, reduction)
    with quiet_floating_point(xp):
        if options["log_target"]:
            d_input = -xp.exp(p)
            d_target = xp.exp(p) * (p - log_q + 1)
        else:
            d_input = -p
            # torch differentiates xlogy(p, p): log(p) where p != 0 (0 at p = 0), plus p / p.
            d_target = xp.where(p == 0, xp.zeros_like(p), xp.log(p)) + p / p - log_q
    return {"input": gradient_like(xp, scale * d_input, input), "target": gradient_like(xp, scale * d_target, target)}


register(LossSpec(
    name="kl_div", function=kl_div, vjp=_kl_div_vjp, family="divergence", arrays=("input", "target"),
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
