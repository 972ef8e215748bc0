"""Plain-torch reference for ``linear_cross_entropy``: torch's own function, plus lossy's extras.

Without lossy's extras this *is* torch: ``torch.nn.functional.linear_cross_entropy(...,
options=None)`` (torch 2.13's reference path), run live. ``chunk_size`` only says how many rows
lossy computes at a time; the value does not depend on it, so it is dropped here.

lossy's extras have no torch counterpart; they are written out as ``lossy_core.linear_cross_entropy``'s
docstring defines them, on explicit logits ``z = input @ linear_weight.T + linear_bias`` reshaped to
``(N, C, d1..dK)``:

- ``softcap=c``: Gemma 2's final-logit soft-capping, ``z <- c * tanh(z / c)`` (Gemma Team, "Gemma 2:
  Improving Open Language Models at a Practical Size", 2024, section 2, "Logit soft-capping"), then
  torch's ``cross_entropy`` of the capped logits with every torch option;
- ``lse_square_scale=s``: PaLM's auxiliary z-loss ``s * log^2 Z`` (Chowdhery et al., "PaLM: Scaling
  Language Modeling with Pathways", 2022, section 5, ``z_loss = 1e-4 * log^2 Z``), per position
  weighted like its cross-entropy term (``w[y]``, 0 where ``y == ignore_index``; 1 for class
  probabilities) and reduced with cross_entropy's denominator (``sum w[y]`` over the kept targets
  for ``'mean'``; ``N * d1..dK`` for probabilities);
- ``return_lse=True``: also the per-position ``logsumexp`` of the (capped) logits over C, in the
  compute dtype (float32 for float16/bfloat16 inputs), as Cut Cross-Entropy's ``return_lse``
  (Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", ICLR 2025).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .plain_torch import reference


@reference("linear_cross_entropy")
def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, lse_square_scale=0.0, softcap=None,
                         return_lse=False, chunk_size=None):
    torch_options = dict(linear_bias=linear_bias, weight=weight, reduction=reduction, ignore_index=ignore_index,
                         label_smoothing=label_smoothing)
    if softcap is None and lse_square_scale == 0 and not return_lse:
        return F.linear_cross_entropy(input, linear_weight, target, **torch_options)  # torch itself
    num_classes, out_features = linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    matrix = linear_weight.reshape(-1, linear_weight.shape[-1])
    z = F.linear(input, matrix, None if linear_bias is None else linear_bias.reshape(-1))
    z = z.reshape(*input.shape[:-1], num_classes, *out_features)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    class_dim = 0 if input.ndim == 1 else 1
    index = ignore_index if ignore_index is not None else -100
    probabilities = target.shape == z.shape
    if softcap is None:
        loss = F.linear_cross_entropy(input, linear_weight, target, **torch_options)
    else:
        loss = F.cross_entropy(z, target, weight=weight, reduction=reduction, label_smoothing=label_smoothing,
                               **({} if probabilities else {"ignore_index": index}))
    half = z.dtype in (torch.float16, torch.bfloat16)
    lse = torch.logsumexp(z.float() if half else z, dim=class_dim)
    if lse_square_scale != 0:
        if probabilities:
            term_weight = torch.ones_like(lse)
        else:
            kept = target != index
            safe = torch.where(kept, target, torch.zeros_like(target)).long()
            class_weight = torch.ones(num_classes, dtype=lse.dtype) if weight is None else weight.to(lse.dtype)
            term_weight = class_weight[safe] * kept
        if reduction == "mean":  # every target ignored: 0/0 -- the loss is NaN already (torch's cross
            # entropy), and, as there, the gradient is 0: the weights are constants, divided first
            total = term_weight.sum()
            term_weight = term_weight / total if total != 0 else term_weight
        z_loss = term_weight * lse * lse
        if reduction != "none":
            z_loss = z_loss.sum()
        loss = loss + (lse_square_scale * z_loss).to(loss.dtype)
    return (loss, lse) if return_lse else loss
