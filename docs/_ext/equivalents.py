"""Hand-written data for the per-loss pages (``lossy_pages.py``), keyed by loss name.

``EQUIVALENTS[name][library] = (equivalent, how)``: the library's loss (Markdown; ``None``
when it has none) and its conventions with how to reproduce lossy's result from it, or, where
it has no such loss, from its primitives. A library missing from a loss's entry has none;
``"other"`` lists ``(library, equivalent, how)`` rows beyond the six columns of ``LIBRARIES``.
``DEVIATIONS[name]``: lossy's deliberate deviations from torch (or from the reference
implementation, for losses torch lacks) that concern that loss; the shared rules are in
``docs/guides/deviations.md``, which these bullets follow. ``PAPERS[name]``: the paper it comes
from, where there is one.

Sources: the signatures and conventions were read from optax 0.2.8, Keras 3.15 and MONAI 1.6
(installed), torchvision's ``ops/focal_loss.py``, mmdetection's ``mmdet/models/losses`` and timm's
``asymmetric_loss.py`` (source), and /work/shared/reference/loss-landscape.md. Claims marked
"checked" were computed against lossy_core in float64 (Keras and MONAI compute in float32: equal
to ~1e-7 there).
"""

from __future__ import annotations

LIBRARIES = (
    ("torch", "PyTorch"),
    ("torchvision", "torchvision"),
    ("optax", "optax"),
    ("keras", "Keras 3"),
    ("mmdet", "mmdetection"),
    ("monai", "MONAI"),
)

# Conventions that recur in the table below.
_KERAS_ROWS = ("Keras takes `(y_true, y_pred)`, the reverse of torch's order, and first averages over the last "
               "axis: its default `'sum_over_batch_size'` then equals torch's `'mean'`, its `'sum'` is torch's "
               "`'sum'` divided by the last axis' size, and `reduction=None` gives one value per row (add a "
               "trailing axis of size 1 for torch's elementwise `'none'`). `sample_weight` weights rows and the "
               "mean still divides by the number of rows.")
_MMDET_WEIGHT = ("mmdet's `weight` multiplies ℓ and `'mean'` then divides by the number of elements (torch's "
                 "functional `weight` divides by `sum(w)` here); `avg_factor=k` makes `'mean'` `sum / k`; "
                 "`loss_weight` scales the result.")
_TORCH_SAME = ("The reference lossy follows: `lossy_torch.functional` and the `lossy_torch` class are drop-ins "
               "for both (the same signatures), checked against them by the conformance suite.")
_OPTAX_NO_REDUCTION = "optax losses are unreduced: take `.mean()` or `.sum()` yourself."

EQUIVALENTS: dict[str, dict] = {
    "l1_loss": {
        "torch": ("`torch.nn.functional.l1_loss`, `torch.nn.L1Loss`", _TORCH_SAME),
        "optax": (None, "`jnp.abs(predictions - targets)` is ℓ. " + _OPTAX_NO_REDUCTION),
        "keras": ("`keras.losses.MeanAbsoluteError`", _KERAS_ROWS + " Checked: the default equals `'mean'`."),
        "mmdet": ("`mmdet.models.losses.L1Loss`, `l1_loss`", "The same ℓ. " + _MMDET_WEIGHT),
    },
    "mse_loss": {
        "torch": ("`torch.nn.functional.mse_loss`, `torch.nn.MSELoss`", _TORCH_SAME),
        "optax": ("`optax.losses.squared_error(predictions, targets)`",
                  "Elementwise ℓ, equal to `reduction='none'` (checked). `optax.losses.l2_loss` is half of it. "
                  + _OPTAX_NO_REDUCTION),
        "keras": ("`keras.losses.MeanSquaredError`", _KERAS_ROWS + " Checked: the default equals `'mean'`."),
        "mmdet": ("`mmdet.models.losses.MSELoss`, `mse_loss`", "The same ℓ. " + _MMDET_WEIGHT),
    },
    "smooth_l1_loss": {
        "torch": ("`torch.nn.functional.smooth_l1_loss`, `torch.nn.SmoothL1Loss`", _TORCH_SAME),
        "optax": (None, "`optax.losses.huber_loss(predictions, targets, delta=beta) / beta` is ℓ (checked); "
                  "`beta=0` is `jnp.abs(predictions - targets)`."),
        "keras": (None, "`keras.losses.Huber(delta=beta)` divided by `beta`, with Keras's last-axis mean (see "
                  "`huber_loss`)."),
        "mmdet": ("`mmdet.models.losses.SmoothL1Loss(beta=1.0)`, `smooth_l1_loss`",
                  "The same ℓ, but mmdet asserts `beta > 0` (torch's `beta=0` is L1). " + _MMDET_WEIGHT),
    },
    "huber_loss": {
        "torch": ("`torch.nn.functional.huber_loss`, `torch.nn.HuberLoss`", _TORCH_SAME),
        "optax": ("`optax.losses.huber_loss(predictions, targets, delta=1.0)`",
                  "Elementwise ℓ, equal to `reduction='none'` (checked). " + _OPTAX_NO_REDUCTION),
        "keras": ("`keras.losses.Huber(delta=1.0)`", _KERAS_ROWS + " Checked: the default equals `'mean'`."),
        "mmdet": (None, "`SmoothL1Loss(beta=delta)` times `delta` is Huber (`huber(delta) = delta * "
                  "smooth_l1(beta=delta)`)."),
    },
    "nll_loss": {
        "torch": ("`torch.nn.functional.nll_loss`, `torch.nn.NLLLoss`", _TORCH_SAME),
        "optax": (None, "`-jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]` is ℓ with the "
                  "class axis last (torch's is axis 1); no `weight` or `ignore_index`: multiply by `weight[labels]`, "
                  "zero the ignored positions and divide by their summed weights for torch's `'mean'`."),
        "keras": ("`keras.losses.SparseCategoricalCrossentropy()` on `exp(log_probs)`",
                  "Probabilities (clipped to [1e-7, 1 − 1e-7]), class axis last; equal for rows of "
                  "log-probabilities (checked). `ignore_class` is `ignore_index` (its mean is over the kept "
                  "targets, as torch's without `weight`); no class weights."),
    },
    "cross_entropy": {
        "torch": ("`torch.nn.functional.cross_entropy`, `torch.nn.CrossEntropyLoss`", _TORCH_SAME),
        "optax": ("`optax.losses.softmax_cross_entropy_with_integer_labels` (indices), `softmax_cross_entropy` "
                  "(probabilities)",
                  "Per position equal to `reduction='none'` (checked); the class axis is last by default: pass "
                  "`axis=1` for torch's `(N, C, d1..dk)` layout. `label_smoothing=eps` is "
                  "`softmax_cross_entropy(logits, optax.smooth_labels(one_hot, eps))` (checked). No `weight` or "
                  "`ignore_index`: mask (`where=`) and divide by the kept count. An out-of-range label gives NaN or "
                  "wraps (-1 is the last class), silently."),
        "keras": ("`keras.losses.SparseCategoricalCrossentropy(from_logits=True)` (indices), "
                  "`CategoricalCrossentropy(from_logits=True)` (probabilities)",
                  "Class axis last. `ignore_class` is `ignore_index`, averaged over the kept targets; "
                  "`CategoricalCrossentropy(label_smoothing=eps)` on one-hot targets is `label_smoothing=eps` "
                  "(checked, both); no class `weight`. Without `from_logits=True` Keras expects probabilities "
                  "(renormalised, clipped to 1e-7)."),
        "mmdet": ("`mmdet.models.losses.CrossEntropyLoss(use_sigmoid=False)`, `cross_entropy`",
                  "torch's `F.cross_entropy(..., reduction='none')` with `class_weight` as `weight`, then mmdet's "
                  "reduction: `'mean'` divides by the number of targets, ignored ones included and the class "
                  "weights left out of the denominator (newer mmdet's `avg_non_ignore=True` leaves the ignored "
                  "ones out). torch's `'mean'` is mmdet's with `avg_factor=` the summed weights of the kept targets."),
        "monai": ("`monai.losses.DiceCELoss(lambda_dice=0.0, to_onehot_y=True)`",
                  "Its CE term is torch's `CrossEntropyLoss` on `(B, C, ...)` logits and a `(B, 1, ...)` index "
                  "target: equal to `'mean'` (checked)."),
    },
    "binary_cross_entropy": {
        "torch": ("`torch.nn.functional.binary_cross_entropy`, `torch.nn.BCELoss`", _TORCH_SAME),
        "optax": (None, "optax's binary cross entropy takes logits (`sigmoid_binary_cross_entropy`); on "
                  "probabilities ℓ is `-(y * jnp.maximum(jnp.log(p), -100) + (1 - y) * jnp.maximum(jnp.log1p(-p), "
                  "-100))`."),
        "keras": ("`keras.losses.BinaryCrossentropy()` (`from_logits=False`)",
                  "Clips `p` to [1e-7, 1 − 1e-7] (a loss of at most 16.1 where torch clamps each log at −100): "
                  "equal away from 0 and 1 (checked). `label_smoothing=eps` is `y (1 − eps) + eps / 2`. "
                  + _KERAS_ROWS),
    },
    "binary_cross_entropy_with_logits": {
        "torch": ("`torch.nn.functional.binary_cross_entropy_with_logits`, `torch.nn.BCEWithLogitsLoss`",
                  _TORCH_SAME),
        "optax": ("`optax.losses.sigmoid_binary_cross_entropy(logits, labels)`",
                  "Elementwise ℓ, equal to `reduction='none'` (checked); no `weight` or `pos_weight`: "
                  "`-(pw * y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))` is ℓ with `pos_weight`."),
        "keras": ("`keras.losses.BinaryCrossentropy(from_logits=True)`",
                  "Equal (checked), stable for large logits with the JAX and torch backends (not the NumPy one). "
                  "`label_smoothing=eps` is the target `y (1 − eps) + eps / 2`; no `pos_weight`. " + _KERAS_ROWS),
        "mmdet": ("`mmdet.models.losses.CrossEntropyLoss(use_sigmoid=True)`, `binary_cross_entropy`",
                  "torch's loss with `class_weight` passed as `pos_weight`; a 1-D label of class indices is "
                  "expanded to one-hot first (an index ≥ C is background). " + _MMDET_WEIGHT),
    },
    "kl_div": {
        "torch": ("`torch.nn.functional.kl_div`, `torch.nn.KLDivLoss`", _TORCH_SAME),
        "optax": ("`optax.losses.kl_divergence(log_predictions, targets)`, `kl_divergence_with_log_targets`",
                  "Summed over the last axis: `kl_div(input, target, reduction='none').sum(-1)` (checked, both); "
                  "torch's `'batchmean'` of a 2-D input is its `.mean()`."),
        "keras": ("`keras.losses.KLDivergence()`",
                  "Takes probabilities `(y_true, y_pred)`, both clipped to [1e-7, 1]: `KLDivergence()(q, p)` is "
                  "`kl_div(log(p), q, reduction='batchmean')` for 2-D arrays (checked)."),
        "mmdet": ("`mmdet.models.losses.KnowledgeDistillationKLDivLoss(T=10)`",
                  "Distillation: per sample `kl_div(log_softmax(pred / T), softmax(soft_label / T), "
                  "reduction='none').mean(1) * T**2`."),
    },
    "poisson_nll_loss": {
        "torch": ("`torch.nn.functional.poisson_nll_loss`, `torch.nn.PoissonNLLLoss`", _TORCH_SAME),
        "keras": ("`keras.losses.Poisson()`",
                  "`y_pred − y_true log(y_pred + 1e-7)`: `log_input=False, eps=1e-7` (checked), no Stirling term. "
                  + _KERAS_ROWS),
    },
    "gaussian_nll_loss": {
        "torch": ("`torch.nn.functional.gaussian_nll_loss`, `torch.nn.GaussianNLLLoss`", _TORCH_SAME),
    },
    "margin_ranking_loss": {
        "torch": ("`torch.nn.functional.margin_ranking_loss`, `torch.nn.MarginRankingLoss`", _TORCH_SAME),
        "optax": (None, "`jnp.maximum(0, -y * (x1 - x2) + margin)` is ℓ."),
    },
    "hinge_embedding_loss": {
        "torch": ("`torch.nn.functional.hinge_embedding_loss`, `torch.nn.HingeEmbeddingLoss`", _TORCH_SAME),
        "optax": (None, "`optax.losses.hinge_loss(s, y)` is the SVM hinge `max(0, 1 − y s)`, another loss."),
        "keras": (None, "`keras.losses.Hinge` is the SVM hinge `max(0, 1 − y s)`, another loss."),
    },
    "soft_margin_loss": {
        "torch": ("`torch.nn.functional.soft_margin_loss`, `torch.nn.SoftMarginLoss`", _TORCH_SAME),
        "optax": (None, "`optax.losses.sigmoid_binary_cross_entropy(x, (y + 1) / 2)` is ℓ for `y = ±1`."),
        "keras": (None, "`BinaryCrossentropy(from_logits=True)` with `y_true = (y + 1) / 2` is ℓ for `y = ±1`, with "
                  "Keras's last-axis mean."),
    },
    "cosine_embedding_loss": {
        "torch": ("`torch.nn.functional.cosine_embedding_loss`, `torch.nn.CosineEmbeddingLoss`", _TORCH_SAME),
        "optax": ("`optax.losses.cosine_distance(a, b)` (for `y = 1`)",
                  "`1 − cos(a, b)` over the last axis: ℓ where `y = 1` (checked; lossy's ε is 1e-12 inside each "
                  "squared norm); where `y = −1`, ℓ is `jnp.maximum(0, optax.losses.cosine_similarity(a, b) - "
                  "margin)`."),
        "keras": ("`keras.losses.CosineSimilarity(axis=-1)` (for `y = 1`)",
                  "Returns −cos, averaged over the batch: ℓ's mean over targets `y = 1` is `1 + "
                  "CosineSimilarity()(b, a)` (checked)."),
    },
    "multilabel_soft_margin_loss": {
        "torch": ("`torch.nn.functional.multilabel_soft_margin_loss`, `torch.nn.MultiLabelSoftMarginLoss`",
                  _TORCH_SAME),
        "optax": (None, "`optax.losses.sigmoid_binary_cross_entropy(x, y).mean(-1)` is ℓ (checked)."),
        "keras": ("`keras.losses.BinaryCrossentropy(from_logits=True)`",
                  "Its mean over the last (class) axis is this loss: equal for `'mean'` without `weight` (checked)."),
    },
    "multilabel_margin_loss": {
        "torch": ("`torch.nn.functional.multilabel_margin_loss`, `torch.nn.MultiLabelMarginLoss`", _TORCH_SAME),
    },
    "multi_margin_loss": {
        "torch": ("`torch.nn.functional.multi_margin_loss`, `torch.nn.MultiMarginLoss`", _TORCH_SAME),
        "optax": (None, "`optax.losses.multiclass_hinge_loss(scores, labels)` is the Crammer–Singer hinge "
                  "`max_c(s_c + 1 − [c = y]) − s_y` (a max over classes, no `/ C`), not this Weston–Watkins sum "
                  "(checked: they differ)."),
        "keras": (None, "`keras.losses.CategoricalHinge` is a Crammer–Singer form too, another loss."),
    },
    "triplet_margin_loss": {
        "torch": ("`torch.nn.functional.triplet_margin_loss`, `torch.nn.TripletMarginLoss`", _TORCH_SAME),
        "optax": ("`optax.losses.triplet_margin_loss(anchors, positives, negatives, norm_degree=2, margin=1.0, "
                  "eps=1e-6)`",
                  "Per triplet, over the last axis. Its distance is `(sum((a − b)^p) + eps)^(1/p)`: no absolute "
                  "value (an odd `norm_degree` is not a norm) and `eps` outside the power, where torch's is "
                  "`||a − b + eps||_p`. Equal for `p=2, eps=0` (checked); about `eps` apart otherwise."),
        "mmdet": (None, "`mmdet.models.losses.TripletLoss` (tracking re-identification) mines the hardest positive "
                  "and negative of each anchor in a batch from identity labels: another loss."),
    },
    "triplet_margin_with_distance_loss": {
        "torch": ("`torch.nn.functional.triplet_margin_with_distance_loss`, "
                  "`torch.nn.TripletMarginWithDistanceLoss`", _TORCH_SAME),
    },
    "ctc_loss": {
        "torch": ("`torch.nn.functional.ctc_loss`, `torch.nn.CTCLoss`", _TORCH_SAME),
        "optax": ("`optax.losses.ctc_loss(logits, logit_paddings, labels, label_paddings, blank_id=0)`",
                  "Batch-major `(B, T, K)` logits (it applies `log_softmax` itself) and 0/1 paddings instead of "
                  "lengths; per sequence equal to `reduction='none'` (checked). `log_epsilon=-1e5` stands for "
                  "log 0, so an impossible alignment gives a large finite loss, not `inf`."),
        "keras": ("`keras.losses.CTC()`",
                  "`(B, T, C)` logits whose input lengths are all `T`, and `(B, S)` labels padded with 0, which is "
                  "also the blank: lossy's `blank=0`, `target_lengths = (labels != 0).sum(-1)`. Its default "
                  "reduction is the mean of the per-sequence losses, not torch's per-target-length `'mean'`: "
                  "`reduction='sum'` divided by `B`."),
    },
    "sigmoid_focal_loss": {
        "torch": (None, "torch points to torchvision (pytorch/pytorch#146034)."),
        "torchvision": ("`torchvision.ops.sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, "
                        "reduction='none')`",
                        "The same signature and defaults: `lossy_torch.functional.sigmoid_focal_loss` is a drop-in "
                        "(with keyword-only `weight`, `pos_weight`, `normalizer`, `modulation` added). Values equal "
                        "(checked in float64); gradients differ only where torchvision's are NaN."),
        "optax": ("`optax.losses.sigmoid_focal_loss(logits, labels, alpha=None, gamma=2.0)`",
                  "Elementwise, equal (checked, also at logits of ±100). optax's `alpha` defaults to None "
                  "(no balancing), lossy's and torchvision's to 0.25."),
        "keras": ("`keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0, "
                  "from_logits=True)`",
                  "Equal to `reduction='mean'` for moderate logits (checked); without `apply_class_balancing` it is "
                  "`alpha=None`. It takes the sigmoid, then the log of probabilities clipped to 1e-7, so saturated "
                  "logits (|x| > 16) differ. " + _KERAS_ROWS),
        "mmdet": ("`mmdet.models.losses.FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25)`",
                  "Takes class indices `(N,)`, `C` meaning background: it is `sigmoid_focal_loss(pred, "
                  "one_hot(labels, C + 1)[:, :C], reduction='mean')`; with `avg_factor` it is `reduction='sum', "
                  "normalizer=avg_factor` (mmdet adds float32's eps). On CUDA it runs mmcv's kernel."),
        "monai": ("`monai.losses.FocalLoss(gamma=2.0, alpha=None)` (sigmoid by default)",
                  "`(B, C, ...)` logits and a target of the same shape: elementwise equal, `alpha` None or a "
                  "number (checked). Its `weight` of shape `(C,)` applies along axis 1, lossy's along the last "
                  "axis: pass `weight=w.reshape(C, 1, ...)`."),
    },
    "binary_focal_loss": {
        "torchvision": (None, "`torchvision.ops.sigmoid_focal_loss(logit(p), y)` equals it away from `p ∈ {0, 1}` "
                        "(here each log is clamped at −100, as in `binary_cross_entropy`)."),
        "optax": (None, "`optax.losses.sigmoid_focal_loss(jnp.log(p) - jnp.log1p(-p), y, alpha=0.25)` away from "
                  "`p ∈ {0, 1}`."),
        "keras": ("`keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True)` (`from_logits=False`)",
                  "Equal away from 0 and 1 (checked; Keras clips `p` to [1e-7, 1 − 1e-7]). " + _KERAS_ROWS),
    },
    "softmax_focal_loss": {
        "torchvision": (None, "Requested (pytorch/vision#3250)."),
        "keras": ("`keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=2.0, from_logits=True)` on one-hot "
                  "targets",
                  "Class axis last. Keras's `alpha` (default 0.25) scales every class: it is lossy's number "
                  "`alpha` (checked for 1.0 and 0.25); lossy's default None is Keras's `alpha=1.0`."),
        "mmdet": (None, "`FocalLoss(use_sigmoid=False)` raises NotImplementedError."),
        "monai": ("`monai.losses.FocalLoss(use_softmax=True, gamma=2.0)`",
                  "Returns per-class terms: its `reduction='none'` summed over axis 1 is lossy's `'none'`, its "
                  "`'mean'` lossy's divided by C (checked). A number `alpha` is applied as `[1 − α, α, …, α]` "
                  "(class 0 as background): lossy's `alpha=[1 - a] + [a] * (C - 1)` (checked). `to_onehot_y=True` "
                  "takes `(B, 1, ...)` class indices."),
        "other": (("kornia", "`kornia.losses.focal_loss`",
                   "Applies a number `alpha` as `[1 − α, α, α, …]` (class 0 as background); its `'mean'` "
                   "divides by N·C·HW."),),
    },
    "quality_focal_loss": {
        "mmdet": ("`mmdet.models.losses.QualityFocalLoss(use_sigmoid=True, beta=2.0)`, `quality_focal_loss`",
                  "Takes the target as a `(label, score)` pair: build `y[n, label[n]] = score[n]` (zeros "
                  "elsewhere, all zeros for the background `label == C`); mmdet's per-sample loss sums over "
                  "classes, so its `'mean'` is lossy's `reduction='sum'` divided by N."),
    },
    "distribution_focal_loss": {
        "mmdet": ("`mmdet.models.losses.DistributionFocalLoss()`, `distribution_focal_loss`",
                  "The same loss on `(N, n + 1)` logits and `(N,)` distances (lossy also takes any leading shape)."),
    },
    "varifocal_loss": {
        "mmdet": ("`mmdet.models.losses.VarifocalLoss(use_sigmoid=True, alpha=0.75, gamma=2.0, iou_weighted=True)`",
                  "The same defaults and elementwise loss; for `avg_factor`, divide lossy's `reduction='sum'` by it."),
    },
    "asymmetric_loss": {
        "other": (("timm", "`timm.loss.AsymmetricLossMultiLabel(gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8)`",
                   "The same defaults; it returns `-loss.sum()`: lossy's `reduction='sum'`."),),
    },
    "poly1_cross_entropy": {
        "optax": ("`optax.losses.poly_loss_cross_entropy(logits, labels, epsilon=2.0)`",
                  "Labels are probabilities (one-hot for indices), class axis last; optax's default `epsilon` is "
                  "2.0, lossy's 1.0. Per sample equal, also with `optax.smooth_labels` for `label_smoothing` "
                  "(checked)."),
    },
    "linear_cross_entropy": {
        "torch": ("`torch.nn.functional.linear_cross_entropy`, `torch.nn.LinearCrossEntropyLoss` (torch 2.13)",
                  "Drop-in: lossy's extras (`lse_square_scale`, `softcap`, `return_lse`, `chunk_size`) are "
                  "keyword-only; `lossy_torch.LinearCrossEntropyLoss` has torch's constructor and parameters, so "
                  "`load_state_dict` works. The differences from torch's chunked path are in the "
                  "[large-vocabulary guide](../guides/large-vocabulary.md)."),
        "optax": (None, "`optax.losses.softmax_cross_entropy_with_integer_labels(x @ W.T + b, y)`, which "
                  "materialises the N × C logits."),
        "other": (("Liger Kernel, Cut Cross-Entropy", "their fused linear cross entropy",
                   "The option map (z-loss, softcap, returned lse) is in the "
                   "[large-vocabulary guide](../guides/large-vocabulary.md)."),),
    },
}

# Deviations shared by several losses (the wording of docs/guides/deviations.md).
_CLASS_DTYPE = ("**Class-index dtype**: torch accepts int64 and uint8 targets; lossy accepts those plus the "
                "namespace's default integer dtype (int32 in JAX without x64, where int64 arrays do not exist).")
def _tracing(what: str = "") -> str:
    """The shared tracing rule, naming the loss's own data-dependent error where given."""
    which = f" ({what})" if what else ""
    return (f"**Data-dependent errors under tracing**{which} give NaN instead of raising: `jax.jit` and "
            "`torch.compile` cannot raise on values; eager CPU calls raise torch's error.")


_TRACING = _tracing("a class index out of range")
_BROADCAST_WARNING = ("**Warnings under `torch.compile`**: the target-size broadcast warning is emitted by eager "
                      "calls, as torch does, but not while `torch.compile` traces.")
_DEPRECATED_ARGS = ("**Deprecated `size_average` / `reduce`** warn in eager calls, as torch does, but not while "
                    "`torch.compile` traces.")
_INTEGER_MARGIN = ("**Integer inputs** (int64 `input`s): torch's integer results are not reproduced or tested; "
                   "integer *targets* are (they match torch).")
_EMPTY_MARGIN = ("**Empty batch**: torch 2.13 (CPU) returns uninitialized memory for `'sum'` and `'mean'`; lossy "
                 "returns 0 and NaN, as torch's other losses do.")
_HALF_MARGIN = ("**float16/bfloat16**: torch's CPU kernel refuses half precision (its CUDA kernel accepts it); "
                "lossy computes it in float32.")
_BF16_COMPOSITE = ("**bfloat16**: torch's Python composite rounds every step to the input dtype; lossy computes half "
                   "precision in float32 and rounds once (results differ by up to ~2%).")
_FOCAL_SECOND = ("**Second derivatives** (`create_graph=True`) differ from torch autograd's of the reference "
                 "formula: they are autograd of lossy_torch's gradient formulas, outside the conformance suite.")
_FOCAL_VARIANT = ("**NaN-free where the reference is not**: the reference's direct `pow(base, gamma)` has a NaN "
                  "gradient at a zero base when `gamma < 1`; lossy's log-space form returns the finite limit, 0. "
                  "Targets outside their range raise `ValueError` where the reference computes on.")

DEVIATIONS: dict[str, tuple[str, ...]] = {
    "l1_loss": (_BROADCAST_WARNING, _DEPRECATED_ARGS),
    "mse_loss": (_BROADCAST_WARNING, _DEPRECATED_ARGS),
    "smooth_l1_loss": (
        "**`lossy_jax.smooth_l1_loss` with `beta=0` on integer inputs** raises NotImplementedError (torch: "
        "RuntimeError for `'mean'`, an integer sum for `'sum'`): `beta` is traced, so torch's integer-only "
        "`beta == 0` path cannot be chosen at trace time.",
        "**Second derivatives** differ from torch's only where `|input − target|` equals `beta` exactly.",
        _BROADCAST_WARNING, _DEPRECATED_ARGS),
    "huber_loss": (
        "**Second derivatives** differ from torch's only where `|input − target|` equals `delta` exactly (torch "
        "counts the clip as inactive there).", _BROADCAST_WARNING),
    "nll_loss": (_CLASS_DTYPE, _TRACING,
                 "**Second derivatives**: lossy returns no graph where torch's second derivative is zero (autograd "
                 "then raises unless `allow_unused`).", _DEPRECATED_ARGS),
    "cross_entropy": (
        _CLASS_DTYPE, _TRACING,
        "**A single sample** (`input` of shape `(C)`) with a target of shape `(1,)`, `label_smoothing > 0` and "
        "`reduction='none'`: torch 2.13 raises a broadcasting RuntimeError; lossy returns the 0-d loss, as torch "
        "does for a `()` target.", _DEPRECATED_ARGS),
    "binary_cross_entropy": (
        "**float16 gradient at `p = y ∈ {0, 1}`**: torch's half-precision backward divides by "
        "`max(p(1 − p), 1e-12)` where 1e-12 underflows to 0 and returns NaN; lossy computes half precision in "
        "float32 and returns torch's float32 gradient there, 0.",
        _tracing("an input outside [0, 1]"),
        "**Second derivatives** at `p ∈ {0, 1}` differ from torch's.", _DEPRECATED_ARGS),
    "binary_cross_entropy_with_logits": (_DEPRECATED_ARGS,),
    "kl_div": (
        "**`lossy_jax.kl_div` with subnormal targets**: a target below the smallest normal number counts as 0 (XLA "
        "flushes subnormals to zero), so a negative one gives 0 where torch gives NaN. Gradients are torch's.",
        "**Second derivatives**: through the input alone lossy returns no graph where torch's second derivative "
        "is zero.",
        "**Warnings under `torch.compile`**: the `reduction='mean'` warning is emitted by eager calls, as torch "
        "does, but not while `torch.compile` traces.", _DEPRECATED_ARGS),
    "poisson_nll_loss": (_DEPRECATED_ARGS,),
    "margin_ranking_loss": (_INTEGER_MARGIN, _DEPRECATED_ARGS),
    "hinge_embedding_loss": (_INTEGER_MARGIN, _DEPRECATED_ARGS),
    "soft_margin_loss": (
        "**Beyond exp's overflow** (`|y x|` above ~710 in float64, ~88 in float32): torch's `log1p(exp(-y x))` "
        "gives inf and a NaN gradient; lossy computes it in log space and returns the finite loss and gradient.",
        "**A target with `requires_grad=True`** is refused by torch (RuntimeError); lossy_torch gives it no "
        "gradient.", _DEPRECATED_ARGS),
    "cosine_embedding_loss": (_INTEGER_MARGIN, _DEPRECATED_ARGS),
    "multilabel_soft_margin_loss": (_BF16_COMPOSITE, _DEPRECATED_ARGS),
    "multilabel_margin_loss": (_EMPTY_MARGIN, _HALF_MARGIN, _tracing("an index out of range"), _DEPRECATED_ARGS),
    "multi_margin_loss": (_EMPTY_MARGIN, _HALF_MARGIN, _tracing("a class index out of range"),
                          _DEPRECATED_ARGS),
    "triplet_margin_loss": (
        "**Second derivatives** at zero distance with `eps=0` differ from torch's.",
        _tracing("`margin <= 0`"), _DEPRECATED_ARGS),
    "triplet_margin_with_distance_loss": (_BF16_COMPOSITE,),
    "ctc_loss": (
        "**A label outside `[0, C)`** within a target raises IndexError (NaN under tracing); torch's CPU kernel "
        "reads out of bounds there.",
        "**A target label equal to `blank` as its last label**: torch's CPU gradient overwrites one final-frame "
        "term with the other instead of adding them; lossy adds them (the values agree)."),
    "sigmoid_focal_loss": (
        "**Saturated logits with `gamma < 1`**: torchvision's input gradient is NaN (`(1 − p_t) ** γ` "
        "differentiated at `1 − p_t = 0`); lossy's is finite (the limit, 0). Values agree everywhere.",
        "**Argument checks** (`alpha`, `reduction`) raise before any compute, where torchvision checks "
        "`reduction` after computing the loss.", _FOCAL_SECOND),
    "binary_focal_loss": (_tracing("a probability outside [0, 1]"), _FOCAL_SECOND),
    "softmax_focal_loss": (_CLASS_DTYPE, _TRACING, _FOCAL_SECOND),
    "quality_focal_loss": (_FOCAL_VARIANT, _FOCAL_SECOND),
    "distribution_focal_loss": (
        "**A distance outside `[0, n)`** raises ValueError (NaN under tracing), where mmdet fails on an "
        "out-of-range class index.",),
    "varifocal_loss": (_FOCAL_VARIANT, _FOCAL_SECOND),
    "asymmetric_loss": (
        _FOCAL_VARIANT,
        "**`eps=0` at a saturated logit**: timm's `log(clamp(p, eps))` gives `0 · −inf = NaN`; lossy returns the "
        "finite limit.", _FOCAL_SECOND),
    "poly1_cross_entropy": (_CLASS_DTYPE, _TRACING),
    "linear_cross_entropy": (
        _CLASS_DTYPE,
        "**torch's chunked path** (`options=` with chunking) differs from its own plain path in several places; "
        "lossy follows the plain path's results and chunks every case: the table is in the "
        "[large-vocabulary guide](../guides/large-vocabulary.md)."),
}

PAPERS: dict[str, str] = {
    "mse_loss": "Least squares: Legendre (1805) and Gauss (1809).",
    "smooth_l1_loss": "R. Girshick, \"Fast R-CNN\", ICCV 2015 ([arXiv:1504.08083](https://arxiv.org/abs/1504.08083)).",
    "huber_loss": "P. J. Huber, \"Robust Estimation of a Location Parameter\", *Annals of Mathematical Statistics* "
                  "35(1), 1964.",
    "cross_entropy": "Label smoothing: C. Szegedy et al., \"Rethinking the Inception Architecture for Computer "
                     "Vision\", CVPR 2016 ([arXiv:1512.00567](https://arxiv.org/abs/1512.00567)).",
    "kl_div": "S. Kullback and R. A. Leibler, \"On Information and Sufficiency\", *Annals of Mathematical "
              "Statistics* 22(1), 1951.",
    "gaussian_nll_loss": "D. A. Nix and A. S. Weigend, \"Estimating the mean and variance of the target probability "
                         "distribution\", ICNN 1994.",
    "multi_margin_loss": "J. Weston and C. Watkins, \"Support Vector Machines for Multi-Class Pattern Recognition\", "
                         "ESANN 1999.",
    "triplet_margin_loss": "F. Schroff et al., \"FaceNet: A Unified Embedding for Face Recognition and Clustering\", "
                           "CVPR 2015 ([arXiv:1503.03832](https://arxiv.org/abs/1503.03832)); the distance swap: "
                           "V. Balntas et al., \"Learning local feature descriptors with triplets and shallow "
                           "convolutional neural networks\", BMVC 2016.",
    "triplet_margin_with_distance_loss": "As `triplet_margin_loss`: F. Schroff et al., \"FaceNet\", CVPR 2015 "
                                         "([arXiv:1503.03832](https://arxiv.org/abs/1503.03832)); the swap: "
                                         "V. Balntas et al., BMVC 2016.",
    "ctc_loss": "A. Graves et al., \"Connectionist Temporal Classification: Labelling Unsegmented Sequence Data "
                "with Recurrent Neural Networks\", ICML 2006.",
    "sigmoid_focal_loss": "T.-Y. Lin et al., \"Focal Loss for Dense Object Detection\", ICCV 2017 "
                          "([arXiv:1708.02002](https://arxiv.org/abs/1708.02002)).",
    "binary_focal_loss": "T.-Y. Lin et al., \"Focal Loss for Dense Object Detection\", ICCV 2017 "
                         "([arXiv:1708.02002](https://arxiv.org/abs/1708.02002)).",
    "softmax_focal_loss": "T.-Y. Lin et al., \"Focal Loss for Dense Object Detection\", ICCV 2017 "
                          "([arXiv:1708.02002](https://arxiv.org/abs/1708.02002)), eq. (5) over a softmax.",
    "quality_focal_loss": "X. Li et al., \"Generalized Focal Loss: Learning Qualified and Distributed Bounding Boxes "
                          "for Dense Object Detection\", NeurIPS 2020 "
                          "([arXiv:2006.04388](https://arxiv.org/abs/2006.04388)), eq. 5.",
    "distribution_focal_loss": "X. Li et al., \"Generalized Focal Loss: Learning Qualified and Distributed Bounding "
                               "Boxes for Dense Object Detection\", NeurIPS 2020 "
                               "([arXiv:2006.04388](https://arxiv.org/abs/2006.04388)), eq. 6.",
    "varifocal_loss": "H. Zhang et al., \"VarifocalNet: An IoU-aware Dense Object Detector\", CVPR 2021 "
                      "([arXiv:2008.13367](https://arxiv.org/abs/2008.13367)), eq. 2.",
    "asymmetric_loss": "T. Ridnik et al., \"Asymmetric Loss For Multi-Label Classification\", ICCV 2021 "
                       "([arXiv:2009.14119](https://arxiv.org/abs/2009.14119)).",
    "poly1_cross_entropy": "Z. Leng et al., \"PolyLoss: A Polynomial Expansion Perspective of Classification Loss "
                           "Functions\", ICLR 2022 ([arXiv:2204.12511](https://arxiv.org/abs/2204.12511)), eq. 3.",
    "linear_cross_entropy": "E. Wijmans et al., \"Cut Your Losses in Large-Vocabulary Language Models\", ICLR 2025 "
                            "([arXiv:2411.09009](https://arxiv.org/abs/2411.09009)).",
}
