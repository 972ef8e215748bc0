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
                       normalizer=None):
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, weight=weight, pos_weight=pos_weight, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
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
