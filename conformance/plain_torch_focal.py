"""Plain-torch references for the focal family.

``sigmoid_focal_loss`` follows torchvision's definition
(``torchvision.ops.sigmoid_focal_loss``, pytorch/vision torchvision/ops/focal_loss.py,
from fvcore's RetinaNet loss; Lin et al., arXiv:1708.02002): the BCE-with-logits
term times ``(1 - p_t) ** gamma`` times ``alpha_t`` (skipped for ``alpha < 0``),
then the reduction. lossy's extensions are added the obvious way: ``weight`` and
``pos_weight`` go to ``binary_cross_entropy_with_logits``, ``alpha=None`` means no
weighting and ``normalizer`` divides the reduced result. torchvision itself is not
importable beside torch 2.13 here, so this is the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .plain_torch import reference


@reference("sigmoid_focal_loss")
def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none", *, weight=None, pos_weight=None,
                       normalizer=None, modulation="focal"):
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, weight=weight, pos_weight=pos_weight, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    if modulation == "quality":  # YOLOv5's QFocalLoss (ultralytics/yolov5 utils/loss.py): |true - p| ** gamma
        loss = ce * torch.abs(targets - p) ** gamma
    else:
        loss = ce * ((1 - p_t) ** gamma)
    if alpha is not None and alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    if normalizer is not None:
        loss = loss / normalizer
    return loss


@reference("binary_focal_loss")
def binary_focal_loss(input, target, alpha=0.25, gamma=2.0, reduction="mean", *, weight=None):
    """Lin et al.'s focal loss on probabilities: torch's ``binary_cross_entropy`` (its -100 log clamp)
    times ``alpha_t (1 - p_t) ** gamma`` (the paper's eq. (5) with torchvision's ``alpha_t``)."""
    loss = F.binary_cross_entropy(input, target, weight=weight, reduction="none")
    p_t = input * target + (1 - input) * (1 - target)
    loss = loss * (1 - p_t) ** gamma
    if alpha is not None and alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


@reference("softmax_focal_loss")
def softmax_focal_loss(input, target, weight=None, alpha=None, gamma=2.0, ignore_index=-100, reduction="mean"):
    """Lin et al.'s focal loss over a softmax (eq. (5) with ``p_t`` the softmax probability of the true
    class): each class's log-probability times ``alpha_c (1 - p_c) ** gamma``, then ``nll_loss`` (class
    indices) or ``-sum_c w_c y_c (...)`` averaged over positions (probabilities), as ``cross_entropy``."""
    class_axis = 0 if input.ndim == 1 else 1
    log_p = torch.log_softmax(input, class_axis)
    focal = (1 - log_p.exp()) ** gamma * log_p
    view = [1] * input.ndim
    view[class_axis] = -1
    if alpha is not None:
        focal = focal * (alpha.reshape(view) if isinstance(alpha, torch.Tensor) and alpha.ndim else alpha)
    if target.shape != input.shape:
        return F.nll_loss(focal, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    products = focal * target * (1 if weight is None else weight.reshape(view))
    loss = -products.sum(class_axis)
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss
