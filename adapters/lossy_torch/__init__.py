"""lossy for PyTorch: ``lossy_torch.functional`` and ``torch.nn``-compatible loss modules.

    import lossy_torch
    import lossy_torch.functional as F

    loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
    criterion = lossy_torch.CrossEntropyLoss(weight=class_weights)
    loss = lossy_torch.distributed.global_mean(F.cross_entropy(logits, labels, reduction="parts"))

Each loss has torch's exact signature and semantics; the formula is
``lossy_core``'s, differentiated by torch autograd, and compiles under
``torch.compile(fullgraph=True)``.
"""

import lossy_core as _core
from lossy_core._autodiff import bind_torch as _bind_torch

from . import distributed, functional
from ._adaptive import AdaptiveLogSoftmaxWithLoss
from ._linear import LinearCrossEntropyLoss
from ._binding import LossModule, make_module as _make_module

__all__ = ["distributed", "functional", "LossModule", "AdaptiveLogSoftmaxWithLoss", "LinearCrossEntropyLoss"]
for _spec in _core.losses():
    if _spec.torch is not None and _spec.torch.module is not None and _spec.extra.get("adapters") != "own":
        _make_module(_spec, globals())
        __all__.append(_spec.torch.module)
del _spec
from ._yolo import FocalLoss, QFocalLoss  # noqa: E402  (YOLOv5's wrappers; need the generated BCEWithLogitsLoss)

__all__ += ["FocalLoss", "QFocalLoss"]
_bind_torch()  # custom-gradient Functions must exist before torch.compile traces a loss
