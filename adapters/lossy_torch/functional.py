"""Drop-in for ``torch.nn.functional``'s losses: ``import lossy_torch.functional as F``.

Every function is generated from the ``lossy_core`` registry with torch's exact
signature; the values and gradients come from the single ``lossy_core`` formula
through torch autograd.
"""

import lossy_core as _core

from ._binding import make_functional as _make_functional

__all__ = []
for _spec in _core.losses():
    if _spec.torch is not None and _spec.extra.get("adapters") != "own":  # own: bound in ._linear
        _make_functional(_spec, globals())
        __all__.append(_spec.torch.function)
del _spec

from ._linear import linear_cross_entropy  # noqa: E402  (its chunk loop is this adapter's)

__all__.append("linear_cross_entropy")
