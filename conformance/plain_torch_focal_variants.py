"""Plain-torch references for the focal variants and the class-imbalance losses.

Written from each paper and its reference library's definition (read, not copied),
in the library's own direct form (sigmoid, pow, clamp), so that lossy's log-space
formulas are checked against the straightforward computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .plain_torch import reference


def _weighted(loss, weight, reduction):
    if weight is not None:
        loss = loss * weight
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


@reference("quality_focal_loss")
def quality_focal_loss(input, target, *, weight=None, beta=2.0, reduction="mean"):
    """Li et al. 2020 (arXiv:2006.04388) eq. 5; mmdet ``quality_focal_loss`` with a dense score target:
    ``BCEWithLogits(x, y) |y - sigmoid(x)|^beta`` (mmdet's negatives: ``y = 0``, factor ``sigmoid(x)^beta``)."""
    factor = (target - input.sigmoid()).abs().pow(beta)
    return _weighted(F.binary_cross_entropy_with_logits(input, target, reduction="none") * factor, weight, reduction)


@reference("distribution_focal_loss")
def distribution_focal_loss(input, target, *, weight=None, reduction="mean"):
    """Li et al. 2020 eq. 6; mmdet ``distribution_focal_loss``: cross entropy to the left and right bins,
    weighted by the distance to the other one."""
    bins = input.shape[-1]
    logits = input.reshape(-1, bins)
    label = target.reshape(-1)
    left = label.long()
    right = left + 1
    loss = (F.cross_entropy(logits, left, reduction="none") * (right.to(label.dtype) - label)
            + F.cross_entropy(logits, right, reduction="none") * (label - left.to(label.dtype)))
    return _weighted(loss.reshape(target.shape), weight, reduction)


@reference("varifocal_loss")
def varifocal_loss(input, target, *, weight=None, alpha=0.75, gamma=2.0, iou_weighted=True, reduction="mean"):
    """Zhang et al. 2021 (arXiv:2008.13367) eq. 2; mmdet ``varifocal_loss`` (use_sigmoid)."""
    positive = (target > 0.0).to(input.dtype)
    negative = alpha * (input.sigmoid() - target).abs().pow(gamma) * (target <= 0.0).to(input.dtype)
    focal_weight = (target * positive if iou_weighted else positive) + negative
    return _weighted(F.binary_cross_entropy_with_logits(input, target, reduction="none") * focal_weight,
                     weight, reduction)


@reference("asymmetric_loss")
def asymmetric_loss(input, target, *, weight=None, gamma_neg=4.0, gamma_pos=1.0, clip=0.05, eps=1e-8,
                    reduction="mean"):
    """Ridnik et al. 2021 (arXiv:2009.14119); timm ``AsymmetricLossMultiLabel`` (half precision computed in
    float32 as timm does, the per-element loss before timm's ``-sum``), cast back to the input dtype."""
    dtype = torch.promote_types(input.dtype, torch.float32)
    x, y = input.to(dtype), target.to(dtype)
    x_sigmoid = torch.sigmoid(x)
    xs_pos, xs_neg = x_sigmoid, 1 - x_sigmoid
    if clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    loss = y * torch.log(xs_pos.clamp(min=eps)) + (1 - y) * torch.log(xs_neg.clamp(min=eps))
    pt = xs_pos * y + xs_neg * (1 - y)
    loss = -loss * torch.pow(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
    return _weighted(loss, weight, reduction).to(input.dtype)


@reference("poly1_cross_entropy")
def poly1_cross_entropy(input, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                        epsilon=1.0):
    """Leng et al. 2022 (arXiv:2204.12511) eq. 3, as optax ``poly_loss_cross_entropy``: cross entropy plus
    ``epsilon * sum_c w_c q_c (1 - p_c)`` with the smoothed target distribution ``q``, reduced as torch's
    cross_entropy (index targets: the ignored ones dropped, 'mean' over ``sum w[y]``)."""
    ce = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                         label_smoothing=label_smoothing)
    axis = 0 if input.dim() == 1 else 1
    classes = input.shape[axis]
    probabilities = input.softmax(axis)
    shape = [1] * input.dim()
    shape[axis] = classes
    w = torch.ones(shape, dtype=input.dtype) if weight is None else weight.reshape(shape)
    if target.shape == input.shape:
        q = target * (1 - label_smoothing) + label_smoothing / classes
        poly = (w * q * (1 - probabilities)).sum(axis)
        return ce + epsilon * {"none": poly, "sum": poly.sum(), "mean": poly.mean()}[reduction]
    kept = target != ignore_index
    safe = torch.where(kept, target, torch.zeros_like(target)).long()
    q = F.one_hot(safe, classes).movedim(-1, axis).to(input.dtype) * (1 - label_smoothing) + label_smoothing / classes
    q = q * kept.unsqueeze(axis).to(input.dtype)
    poly = (w * q * (1 - probabilities)).sum(axis)
    denominator = (w.reshape(-1)[safe] * kept.to(input.dtype)).sum()
    # every target ignored: 'mean' is NaN with a zero gradient, as torch's cross_entropy
    mean = poly.sum() / denominator if kept.any() else poly.sum() + float("nan")
    return ce + epsilon * {"none": poly, "sum": poly.sum(), "mean": mean}[reduction]
