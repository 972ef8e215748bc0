"""YOLOv5's focal wrapper around a ``BCEWithLogitsLoss`` (ultralytics/yolov5, utils/loss.py).

``FocalLoss(loss_fcn, gamma, alpha)`` takes the model's ``BCEWithLogitsLoss``
(torch's or lossy's), keeps its ``weight`` and ``pos_weight``, sets its
reduction to ``'none'`` and adopts the original one, as YOLOv5 does. The loss
itself is ``lossy_core.sigmoid_focal_loss`` (with ``pos_weight``): nothing is
computed here.
"""

from __future__ import annotations

import torch

from . import functional


class FocalLoss(torch.nn.Module):
    """Drop-in for YOLOv5's ``FocalLoss(loss_fcn, gamma=1.5, alpha=0.25)``::

        loss = alpha_t (1 - p_t)^gamma BCEWithLogits(pred, true; weight, pos_weight)

    with ``loss_fcn``'s ``weight``/``pos_weight`` and its original reduction,
    computed by ``lossy_core.sigmoid_focal_loss`` (log-space modulating factor:
    finite gradients for any logit and ``gamma``). ``loss_fcn`` must be a
    ``BCEWithLogitsLoss``; its ``reduction`` is set to ``'none'``, as in YOLOv5.
    """

    def __init__(self, loss_fcn, gamma=1.5, alpha=0.25):
        super().__init__()
        from . import BCEWithLogitsLoss

        if not isinstance(loss_fcn, (torch.nn.BCEWithLogitsLoss, BCEWithLogitsLoss)):
            raise TypeError(
                f"FocalLoss: expected 'loss_fcn' to be a torch.nn.BCEWithLogitsLoss or "
                f"lossy_torch.BCEWithLogitsLoss, got {type(loss_fcn).__name__}"
            )
        self.loss_fcn = loss_fcn
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = loss_fcn.reduction
        self.loss_fcn.reduction = "none"  # as YOLOv5: the wrapper reduces

    def forward(self, pred, true):
        return functional.sigmoid_focal_loss(
            pred, true, alpha=self.alpha, gamma=self.gamma,
            reduction=self.reduction if self.reduction in ("mean", "sum", "parts") else "none",
            weight=self.loss_fcn.weight, pos_weight=self.loss_fcn.pos_weight,
        )


class QFocalLoss(FocalLoss):
    """Drop-in for YOLOv5's ``QFocalLoss(loss_fcn, gamma=1.5, alpha=0.25)``::

        loss = alpha_t |true - sigmoid(pred)|^gamma BCEWithLogits(pred, true; weight, pos_weight)

    ``FocalLoss`` with the quality modulating factor (equal to it for hard targets),
    computed by ``lossy_core.sigmoid_focal_loss(..., modulation='quality')`` in log space.
    """

    def forward(self, pred, true):
        return functional.sigmoid_focal_loss(
            pred, true, alpha=self.alpha, gamma=self.gamma,
            reduction=self.reduction if self.reduction in ("mean", "sum", "parts") else "none",
            weight=self.loss_fcn.weight, pos_weight=self.loss_fcn.pos_weight, modulation="quality",
        )
