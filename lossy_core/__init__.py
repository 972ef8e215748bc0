"""lossy_core: loss functions written once over the Python array API standard.

Every loss takes its arrays positionally and everything else by keyword, and
returns an array of the input's namespace and device::

    import numpy as np, lossy_core
    lossy_core.cross_entropy(np.array([[2.0, 0.5, -1.0]]), np.array([0]), label_smoothing=0.1)

The registry (``lossy_core.REGISTRY``) lists every loss with the metadata the
adapters (``lossy_torch``, ``lossy_jax``) and the conformance suite are built from.
``lossy_core.value_and_grad(loss)`` gives a loss's value and its analytic gradients
on any array-API namespace (NumPy, CuPy, ...).
"""

# Family modules register their losses on import; this order is the README table's.
from ._regression import huber_loss, l1_loss, mse_loss, smooth_l1_loss  # noqa: I001
from ._classification import cross_entropy, nll_loss
from ._binary import binary_cross_entropy, binary_cross_entropy_with_logits
from ._divergence import kl_div
from ._probabilistic import gaussian_nll_loss, poisson_nll_loss
from ._margin import cosine_embedding_loss, hinge_embedding_loss, margin_ranking_loss, soft_margin_loss
from ._multilabel import multi_margin_loss, multilabel_margin_loss, multilabel_soft_margin_loss
from ._embedding import pairwise_distance, triplet_margin_loss, triplet_margin_with_distance_loss
from ._sequence import ctc_loss
from ._adaptive import adaptive_log_prob, adaptive_log_softmax_with_loss, adaptive_predict
from ._focal import binary_focal_loss, class_balanced_weights, sigmoid_focal_loss, softmax_focal_loss
from ._focal_variants import distribution_focal_loss, quality_focal_loss, varifocal_loss
from ._imbalance import asymmetric_loss, poly1_cross_entropy
from ._linear import linear_cross_entropy
from ._reductions import EMPTY_POLICIES, LossParts, combine, finalize, legacy_reduction
from ._registry import REGISTRY, REQUIRED, LossSpec, Option, TorchBinding, get, losses, missing_gradients
from ._gradients import value_and_grad

__version__ = "0.1.0"

__all__ = [
    "REGISTRY", "REQUIRED", "LossSpec", "Option", "TorchBinding", "get", "losses", "legacy_reduction",
    "EMPTY_POLICIES", "LossParts", "combine", "finalize",
    "missing_gradients", "pairwise_distance", "value_and_grad",
    "adaptive_log_softmax_with_loss", "adaptive_log_prob", "adaptive_predict",
    "class_balanced_weights",
    *(spec.name for spec in losses()),
]
