"""Plain-torch references for losses torch does not have, and for options it lacks.

Short, readable torch code written from the paper or from the reference
library's definition (torchvision, mmdet, timm), each citing its source. A
reference takes the same arguments as ``lossy_torch.functional.<name>``
(torch-style signature) and is differentiated by torch autograd. Register one
with ``@reference("loss_name")``; ``conformance.reference.run_reference`` uses it
for a loss whose ``torch.nn.functional`` has no function of that name, and for a
loss that torch has but whose lossy extras it lacks (``linear_cross_entropy``'s
z-loss and softcap): such a reference calls torch's function, live, whenever the
case uses none of the extras.
"""

from __future__ import annotations

from typing import Callable

REFERENCES: dict[str, Callable] = {}


def reference(name: str):
    def register(function):
        if name in REFERENCES:
            raise ValueError(f"plain-torch reference for {name!r} defined twice")
        REFERENCES[name] = function
        return function

    return register


# Family modules register their references on import (at the end: they import ``reference``).
from . import plain_torch_focal  # noqa: E402,F401
from . import plain_torch_focal_variants  # noqa: E402,F401
from . import plain_torch_linear  # noqa: E402,F401
