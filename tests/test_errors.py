"""Every error torch raises for the nine losses and linear_cross_entropy, and the warnings it emits.

Each row of ``CASES`` builds bad arguments (the loss's positional arrays as NumPy
arrays, and plain options).
The test first calls ``torch.nn.functional`` live and asserts that torch really
raises, recording its exception type -- so the table cannot drift from torch.
Then lossy must raise the *same* exception type, with a message that names the
offending argument, through:

- ``lossy_core`` on every ``xp`` backend (eager arrays: data checks can raise),
- ``lossy_torch.functional`` (torch's signature),
- ``lossy_jax`` (jitted) for the static rows: shapes, dtypes, reduction and
  Python-number hyperparameters. Data-dependent rows give NaN there instead
  (documented in ``lossy_jax``), which is checked too.

Documented deviation: lossy accepts the namespace's default integer dtype as a
class-index dtype (int32 under jax without x64). Every backend here has int64
as its default integer dtype (the conftest enables jax x64), so int32 is
rejected everywhere, as by torch.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lossy_core  # noqa: E402
import lossy_torch.functional as LF  # noqa: E402

f64 = np.float64
f32 = np.float32
i64 = np.int64


def _logits(*shape, dtype=f64):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _probs(*shape, dtype=f64):
    return np.random.default_rng(1).uniform(0.05, 0.95, shape).astype(dtype)


def _index(*values, dtype=i64):
    return np.array(values, dtype=dtype)


@dataclass(frozen=True)
class Case:
    id: str
    loss: str
    build: Callable[[], tuple[np.ndarray, np.ndarray, dict]]
    argument: str  # the argument the message must name
    static: bool = True  # False: the check reads values (cannot raise under jax.jit)
    text: str = ""  # extra text that both torch's and lossy's messages contain
    jax: bool = True  # False: lossy_jax traces the hyperparameter this error depends on
    xfail: str = ""  # a known deviation from torch, still to fix in lossy: the reason (strict xfail)


def _args(*arrays, **options):
    """The loss's positional arrays (input, target; input, linear_weight, target) and its options."""
    return lambda: (arrays, options)


CLASS_LOSSES = ("cross_entropy", "nll_loss")
POINTWISE = ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss")
ALL_LOSSES = tuple(spec.name for spec in lossy_core.losses())

CASES: list[Case] = []
for _loss in CLASS_LOSSES:
    CASES += [
        # target dtype: torch accepts int64 and uint8 only (loss-landscape.md 2b/2c).
        Case(f"{_loss}-target-int32", _loss, _args(_logits(3, 4), _index(0, 1, 2, dtype=np.int32)), "target",
             text="expected target dtype to be Long or Byte"),
        Case(f"{_loss}-target-int16", _loss, _args(_logits(3, 4), _index(0, 1, 2, dtype=np.int16)), "target",
             text="expected target dtype to be Long or Byte"),
        Case(f"{_loss}-target-bool", _loss, _args(_logits(3, 4), _index(0, 1, 1, dtype=np.bool_)), "target",
             text="expected target dtype to be Long or Byte"),
        Case(f"{_loss}-target-float", _loss, _args(_logits(3, 4), _index(0, 1, 2, dtype=f64)), "target"),
        # class index out of range (data-dependent): torch raises IndexError "Target 4 is out of bounds."
        Case(f"{_loss}-target-too-large", _loss, _args(_logits(3, 4), _index(0, 4, 2)), "target",
             static=False, text="out of bounds"),
        Case(f"{_loss}-target-negative", _loss, _args(_logits(3, 4), _index(0, -1, 2)), "target",
             static=False, text="out of bounds"),
        Case(f"{_loss}-target-negative-not-ignore", _loss,
             _args(_logits(3, 4), _index(0, -100, 2), ignore_index=-1), "target", static=False,
             text="out of bounds"),
        Case(f"{_loss}-target-too-large-spatial", _loss,
             _args(_logits(2, 3, 2), np.array([[0, 1], [3, 2]], dtype=i64)), "target", static=False,
             text="out of bounds"),
        Case(f"{_loss}-batch-mismatch", _loss, _args(_logits(4, 3), _index(0, 1, 2)), "target",
             text="Expected input batch_size (4) to match target batch_size (3)"),
        Case(f"{_loss}-target-N1", _loss, _args(_logits(2, 3), np.zeros((2, 1), dtype=i64)), "target",
             text="0D or 1D target tensor expected, multi-target not supported"),
        Case(f"{_loss}-spatial-3d", _loss, _args(_logits(2, 3, 4), np.zeros((2, 5), dtype=i64)), "target"),
        Case(f"{_loss}-spatial-4d", _loss, _args(_logits(2, 3, 4, 5), np.zeros((2, 4, 6), dtype=i64)), "target"),
        Case(f"{_loss}-weight-size", _loss, _args(_logits(2, 3), _index(0, 1), weight=np.ones(4)), "weight",
             text="weight tensor should be defined either for all 3 classes or no classes"),
        Case(f"{_loss}-weight-2d", _loss, _args(_logits(2, 3), _index(0, 1), weight=np.ones((1, 3))), "weight"),
        Case(f"{_loss}-weight-dtype", _loss, _args(_logits(2, 3), _index(0, 1), weight=np.ones(3, dtype=f32)),
             "weight"),
        Case(f"{_loss}-1d-input-target-2", _loss, _args(_logits(3), _index(0, 1)), "target",
             text="For 1D input, 1D target must have size 1"),
        Case(f"{_loss}-reduction-avg", _loss, _args(_logits(2, 3), _index(0, 1), reduction="avg"), "reduction",
             text="avg is not a valid value for reduction"),
        Case(f"{_loss}-reduction-batchmean", _loss, _args(_logits(2, 3), _index(0, 1), reduction="batchmean"),
             "reduction"),
    ]
CASES += [
    Case("nll_loss-0d-input", "nll_loss", _args(np.array(1.0), np.array(0, dtype=i64)), "input",
         text="Expected 1 or more dimensions (got 0)"),
    # torch's cross_entropy on a 0-d input: a 0-d integer target reads as an (integer) probability
    # target (RuntimeError), anything else fails on the missing class axis (IndexError).
    Case("cross_entropy-0d-input-0d-int-target", "cross_entropy", _args(np.array(1.0), np.array(0, dtype=i64)),
         "target"),
    Case("cross_entropy-0d-input-0d-float-target", "cross_entropy", _args(np.array(1.0), np.array(0.5)),
         "input"),
    Case("cross_entropy-0d-input-1d-target", "cross_entropy", _args(np.array(1.0), _index(0)), "input"),
    Case("cross_entropy-probability-target-int", "cross_entropy",
         _args(_logits(2, 3), np.array([[0, 1, 0], [1, 0, 0]], dtype=i64)), "target",
         text="Expected floating point type for target with class probabilities, got Long"),
    Case("cross_entropy-probability-target-ignore-index", "cross_entropy",
         _args(_logits(2, 3), _probs(2, 3), ignore_index=0), "ignore_index",
         text="ignore_index is not supported for floating point target"),
    Case("cross_entropy-label-smoothing-1.5", "cross_entropy", _args(_logits(2, 3), _index(0, 1), label_smoothing=1.5),
         "label_smoothing", text="label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    Case("cross_entropy-label-smoothing-1.5-probability", "cross_entropy",
         _args(_logits(2, 3), _probs(2, 3), label_smoothing=1.5), "label_smoothing",
         text="label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    Case("cross_entropy-probability-weight-size", "cross_entropy",
         _args(_logits(2, 3), _probs(2, 3), weight=np.ones(4)), "weight"),
    # binary_cross_entropy
    Case("bce-input-above-1", "binary_cross_entropy", _args(np.array([0.5, 1.5]), np.array([0.5, 0.5])), "input",
         static=False, text="all elements of input should be between 0 and 1"),
    Case("bce-input-negative", "binary_cross_entropy", _args(np.array([-0.1, 0.5]), np.array([0.5, 0.5])), "input",
         static=False, text="all elements of input should be between 0 and 1"),
    Case("bce-input-nan", "binary_cross_entropy", _args(np.array([np.nan, 0.5]), np.array([0.5, 0.5])), "input",
         static=False, text="all elements of input should be between 0 and 1"),
    Case("bce-target-above-1", "binary_cross_entropy", _args(np.array([0.5, 0.5]), np.array([0.5, 1.5])), "target",
         static=False, text="all elements of target should be between 0 and 1"),
    Case("bce-target-nan", "binary_cross_entropy", _args(np.array([0.5, 0.5]), np.array([0.5, np.nan])), "target",
         static=False, text="all elements of target should be between 0 and 1"),
    Case("bce-shape-mismatch", "binary_cross_entropy", _args(_probs(4, 1), _probs(4)), "target",
         text="that is different to the input size"),
    Case("bce-target-dtype", "binary_cross_entropy", _args(_probs(4), _probs(4, dtype=f32)), "target"),
    Case("bce-target-int", "binary_cross_entropy", _args(_probs(4), np.ones(4, dtype=i64)), "target"),
    Case("bce-input-int-target-float", "binary_cross_entropy", _args(np.ones(2, dtype=i64), np.ones(2)), "target"),
    Case("bce-integer", "binary_cross_entropy", _args(np.ones(2, dtype=i64), np.ones(2, dtype=i64)), "input",
         text='"binary_cross_entropy" not implemented for \'Long\''),
    Case("bce-weight-broadcast", "binary_cross_entropy", _args(_probs(4, 2), _probs(4, 2), weight=np.ones(3)),
         "weight"),
    # binary_cross_entropy_with_logits
    Case("bcel-shape-mismatch", "binary_cross_entropy_with_logits", _args(_logits(4, 1), _probs(4)), "target",
         text="must be the same as input size"),
    Case("bcel-target-int", "binary_cross_entropy_with_logits", _args(_logits(4, 2), np.ones((4, 2), dtype=i64)),
         "target"),
    Case("bcel-input-int", "binary_cross_entropy_with_logits", _args(np.ones((4, 2), dtype=i64), _probs(4, 2)),
         "input"),
    Case("bcel-pos-weight-broadcast", "binary_cross_entropy_with_logits",
         _args(_logits(4, 2), _probs(4, 2), pos_weight=np.ones(3)), "pos_weight"),
    Case("bcel-pos-weight-4d", "binary_cross_entropy_with_logits",
         _args(_logits(2, 3, 4, 5), _probs(2, 3, 4, 5), pos_weight=np.ones(3)), "pos_weight"),
    Case("bcel-weight-broadcast", "binary_cross_entropy_with_logits",
         _args(_logits(4, 2), _probs(4, 2), weight=np.ones(3)), "weight"),
    # regression
    Case("smooth_l1-beta-negative", "smooth_l1_loss", _args(_logits(3), _logits(3), beta=-0.5), "beta",
         text="smooth_l1_loss does not support negative values for beta."),
    Case("huber-delta-zero", "huber_loss", _args(_logits(3), _logits(3), delta=0.0), "delta",
         text="huber_loss does not support non-positive values for delta."),
    Case("huber-delta-negative", "huber_loss", _args(_logits(3), _logits(3), delta=-1.0), "delta",
         text="huber_loss does not support non-positive values for delta."),
    Case("l1-integer-mean", "l1_loss", _args(np.ones(3, dtype=i64), np.zeros(3, dtype=i64)), "input",
         text="mean(): could not infer output dtype"),
    Case("kl_div-integer-input", "kl_div", _args(np.ones(3, dtype=i64), _probs(3)), "input",
         text="kl_div: Integral inputs not supported"),
    Case("kl_div-integer-target", "kl_div", _args(_logits(3), np.ones(3, dtype=i64)), "target",
         text="kl_div: Integral inputs not supported"),
    Case("kl_div-not-broadcastable", "kl_div", _args(_logits(2, 3), _probs(2, 4)), "target"),
    Case("kl_div-reduction-avg", "kl_div", _args(_logits(2, 3), _probs(2, 3), reduction="avg"), "reduction"),
]
# linear_cross_entropy: every check of lossy_core._linear.plan that torch's reference path
# (F.linear_cross_entropy, options=None) also has, in plan's order.
_LCE = "linear_cross_entropy"
_X, _W, _T = _logits(3, 4), _logits(5, 4), _index(0, 1, 4)
_WK = _logits(5, 2, 4)  # K-dimensional: (C, d1, D)
_P = np.full((3, 5), 0.2)
CASES += [
    Case("lce-input-0d", _LCE, _args(np.array(1.0), _W, _index(0)), "input",
         text="expected input with dimensionality 1 or 2, got 0"),
    Case("lce-input-3d", _LCE, _args(_logits(2, 3, 4), _W, _index(0, 1)), "input",
         text="expected input with dimensionality 1 or 2, got 3"),
    Case("lce-weight-1d", _LCE, _args(_X, _logits(4), _T), "linear_weight",
         text="expected linear_weight with dimensionality at least 2, got 1"),
    Case("lce-in-features", _LCE, _args(_X, _logits(5, 3), _T), "linear_weight",
         text="expected equal input and linear_weight last dimensions (in_features), got 4 and 3, respectively"),
    Case("lce-bias-shape", _LCE, _args(_X, _W, _T, linear_bias=_logits(4)), "linear_bias",
         text="expected linear_bias shape (5,), got (4,)"),
    Case("lce-bias-shape-kdim", _LCE, _args(_X, _WK, np.zeros((3, 2), dtype=i64), linear_bias=_logits(5)),
         "linear_bias", text="expected linear_bias shape (5, 2), got (5,)"),
    Case("lce-kdim-unbatched", _LCE, _args(_logits(4), _WK, _index(0)), "input",
         text="K-dimensional loss defined by linear_weight shape (5, 2, 4) requires batched input, (N, 4), got "
              "unbatched input with shape (4,)"),
    Case("lce-weight-dtype", _LCE, _args(_X, _logits(5, 4, dtype=f32), _T), "linear_weight",
         text="expected m1 and m2 to have the same dtype, but got: double != float"),
    Case("lce-input-float32-weight-float64", _LCE, _args(_logits(3, 4, dtype=f32), _W, _T), "linear_weight",
         text="expected m1 and m2 to have the same dtype, but got: float != double"),
    Case("lce-input-int-weight-float", _LCE, _args(np.ones((3, 4), dtype=i64), _W, _T), "input"),
    Case("lce-input-int-weight-int", _LCE, _args(np.ones((3, 4), dtype=i64), np.ones((5, 4), dtype=i64), _T),
         "input"),
    Case("lce-bias-dtype", _LCE, _args(_X, _W, _T, linear_bias=_logits(5, dtype=f32)), "linear_bias",
         text="self and mat2 must have the same dtype, but got Float and Double"),
    Case("lce-class-weight-dtype", _LCE, _args(_X, _W, _T, weight=np.ones(5, dtype=f32)), "weight",
         text="expected scalar type Double but found Float"),
    Case("lce-class-weight-size", _LCE, _args(_X, _W, _T, weight=np.ones(4)), "weight",
         text="weight tensor should be defined either for all 5 classes or no classes"),
    Case("lce-class-weight-2d", _LCE, _args(_X, _W, _T, weight=np.ones((1, 5))), "weight",
         text="weight tensor should be defined either for all 5 classes or no classes"),
    Case("lce-probability-ignore-index", _LCE, _args(_X, _W, _P, ignore_index=0), "ignore_index",
         text="ignore_index cannot be specified when target contains probabilities"),
    Case("lce-probability-ignore-index-default-value", _LCE, _args(_X, _W, _P, ignore_index=-100), "ignore_index",
         text="ignore_index cannot be specified when target contains probabilities"),
    Case("lce-probability-target-int", _LCE, _args(_X, _W, np.zeros((3, 5), dtype=i64)), "target",
         text="Expected floating point type for target with class probabilities, got Long"),
    Case("lce-probability-target-int-kdim", _LCE, _args(_X, _WK, np.zeros((3, 5, 2), dtype=i64)), "target",
         text="Expected floating point type for target with class probabilities, got Long"),
    Case("lce-target-int32", _LCE, _args(_X, _W, _index(0, 1, 2, dtype=np.int32)), "target",
         text="expected target dtype to be Long or Byte, but got Int"),
    Case("lce-target-float", _LCE, _args(_X, _W, _index(0, 1, 2, dtype=f64)), "target",
         text="expected target dtype to be Long or Byte, but got Double"),
    Case("lce-target-bool", _LCE, _args(_X, _W, _index(0, 1, 1, dtype=np.bool_)), "target",
         text="expected target dtype to be Long or Byte, but got Bool"),
    Case("lce-target-N1", _LCE, _args(_X, _W, np.zeros((3, 1), dtype=i64)), "target",
         text="0D or 1D target tensor expected, multi-target not supported"),
    Case("lce-target-N1-type", _LCE, _args(_X, _W, np.zeros((3, 2), dtype=i64)), "target"),
    Case("lce-target-kdim-shape", _LCE, _args(_X, _WK, np.zeros((3, 3), dtype=i64)), "target",
         text="Expected target size [3, 2], got [3, 3]"),
    Case("lce-target-kdim-1d", _LCE, _args(_X, _WK, _index(0, 1, 2)), "target",
         text="Expected target size [3, 2], got [3]"),
    Case("lce-unbatched-target-2d", _LCE, _args(_logits(4), _W, np.zeros((1, 1), dtype=i64)), "target",
         text="0D or 1D target tensor expected, multi-target not supported"),
    Case("lce-unbatched-target-2", _LCE, _args(_logits(4), _W, _index(0, 1)), "target",
         text="For 1D input, 1D target must have size 1"),
    Case("lce-batch-mismatch", _LCE, _args(_logits(4, 4), _W, _T), "target",
         text="Expected input batch_size (4) to match target batch_size (3)"),
    Case("lce-batch-mismatch-kdim", _LCE, _args(_logits(4, 4), _WK, np.zeros((3, 2), dtype=i64)), "target",
         text="Expected input batch_size (4) to match target batch_size (3)"),
    Case("lce-batched-0d-target", _LCE, _args(_X, _W, np.array(1)), "target",
         text="Expected input batch_size (3) to match target batch_size (0)"),
    Case("lce-target-too-large", _LCE, _args(_X, _W, _index(0, 5, 1)), "target", static=False,
         text="Target 5 is out of bounds."),
    Case("lce-target-negative", _LCE, _args(_X, _W, _index(0, -1, 1)), "target", static=False,
         text="Target -1 is out of bounds."),
    Case("lce-target-negative-not-ignore", _LCE, _args(_X, _W, _index(0, -100, 1), ignore_index=2), "target",
         static=False, text="Target -100 is out of bounds."),
    Case("lce-target-too-large-kdim", _LCE, _args(_X, _WK, np.array([[0, 1], [5, 2], [1, 1]], dtype=i64)), "target",
         static=False, text="Target 5 is out of bounds."),
    Case("lce-reduction-avg", _LCE, _args(_X, _W, _T, reduction="avg"), "reduction",
         text="avg is not a valid value for reduction"),
    Case("lce-reduction-batchmean", _LCE, _args(_X, _W, _T, reduction="batchmean"), "reduction",
         text="batchmean is not a valid value for reduction"),
    Case("lce-label-smoothing-1.5", _LCE, _args(_X, _W, _T, label_smoothing=1.5), "label_smoothing",
         text="label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    Case("lce-label-smoothing-1.5-probability", _LCE, _args(_X, _W, _P, label_smoothing=1.5), "label_smoothing",
         text="label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
]
for _loss in ("l1_loss", "mse_loss", "huber_loss"):
    CASES.append(Case(f"{_loss}-weight-shape", _loss, _args(_logits(2, 3), _logits(2, 3), weight=np.ones(3)),
                      "weight", text="Weights and input must have the same size"))
for _loss in ("mse_loss", "smooth_l1_loss", "huber_loss"):
    CASES.append(Case(f"{_loss}-integer", _loss, _args(np.ones(3, dtype=i64), np.zeros(3, dtype=i64)), "input",
                      text="not implemented for 'Long'"))
CASES.append(Case("smooth_l1_loss-integer-beta0", "smooth_l1_loss",
                  _args(np.ones(3, dtype=i64), np.zeros(3, dtype=i64), beta=0.0), "input",
                  # torch's beta == 0 runs l1_loss (RuntimeError for int 'mean'); lossy_jax traces beta,
                  # so it cannot branch on its value and raises NotImplementedError: documented deviation.
                  jax=False))
for _loss in POINTWISE:
    CASES.append(Case(f"{_loss}-not-broadcastable", _loss, _args(_logits(2, 3), _logits(2, 4)), "target"))
    CASES.append(Case(f"{_loss}-reduction-avg", _loss, _args(_logits(3), _logits(3), reduction="avg"), "reduction",
                      text="avg is not a valid value for reduction"))
    CASES.append(Case(f"{_loss}-reduction-batchmean", _loss, _args(_logits(3), _logits(3), reduction="batchmean"),
                      "reduction"))
for _loss in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
    CASES.append(Case(f"{_loss}-reduction-avg", _loss, _args(_probs(3), _probs(3), reduction="avg"), "reduction"))
    CASES.append(Case(f"{_loss}-reduction-batchmean", _loss, _args(_probs(3), _probs(3), reduction="batchmean"),
                      "reduction"))


def _to_torch(value):
    return torch.from_numpy(np.array(value, copy=True)) if isinstance(value, np.ndarray) else value


def _convert(case, to):
    arrays, options = case.build()
    return [to(a) for a in arrays], {k: to(v) for k, v in options.items()}


def _torch_error(case):
    """Run torch live: it must raise; return the exception."""
    arrays, options = _convert(case, _to_torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            getattr(F, lossy_core.get(case.loss).torch.function)(*arrays, **options)
    return info.value


def _check_same_error(case, call):
    expected = _torch_error(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            call()
    got = info.value
    assert type(got) is type(expected), (
        f"torch raised {type(expected).__name__}: {expected}\nlossy raised {type(got).__name__}: {got}"
    )
    message = str(got)
    assert re.search(rf"\b{re.escape(case.argument)}\b", message), (
        f"message does not name '{case.argument}': {message}"
    )
    if case.text:
        assert case.text in str(expected), f"the table's text is not in torch's message: {expected}"
        assert case.text in message, f"torch's wording {case.text!r} missing from: {message}"


def _params(cases):
    """pytest params of ``cases``: a row with a known deviation still to fix is a strict xfail."""
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
            for c in cases]


@pytest.mark.parametrize("case", _params(CASES))
def test_core_raises_like_torch(case, xp):
    arrays, options = _convert(case, lambda v: xp.asarray(v) if isinstance(v, np.ndarray) else v)
    _check_same_error(case, lambda: getattr(lossy_core, case.loss)(*arrays, **options))


@pytest.mark.parametrize("case", _params(CASES))
def test_lossy_torch_raises_like_torch(case):
    arrays, options = _convert(case, _to_torch)
    function = getattr(LF, lossy_core.get(case.loss).torch.function)
    _check_same_error(case, lambda: function(*arrays, **options))


_JAX_STATIC = [c for c in CASES if c.static and c.jax]


@pytest.mark.parametrize("case", _params(_JAX_STATIC))
def test_lossy_jax_raises_like_torch(case):
    jnp = pytest.importorskip("jax.numpy")
    import lossy_jax

    arrays, options = _convert(case, lambda v: jnp.asarray(v) if isinstance(v, np.ndarray) else v)
    _check_same_error(case, lambda: getattr(lossy_jax, case.loss)(*arrays, **options))


@pytest.mark.parametrize("case", _params([c for c in CASES if not c.static]))
def test_lossy_jax_data_errors_give_nan(case):
    """Under jit a data-dependent violation cannot raise: the loss is NaN (lossy_jax docstring)."""
    jnp = pytest.importorskip("jax.numpy")
    import lossy_jax

    _torch_error(case)  # torch raises for this input
    arrays, options = _convert(case, lambda v: jnp.asarray(v) if isinstance(v, np.ndarray) else v)
    for reduction in ("mean", "sum"):
        value = getattr(lossy_jax, case.loss)(*arrays, **{**options, "reduction": reduction})
        assert bool(jnp.isnan(value)), f"{reduction}: expected NaN, got {value}"


# -- lossy-only checks (torch has no such option) -----------------------------------

_LOSSY_ONLY = [
    ("lse_square_scale", -0.1), ("softcap", 0.0), ("softcap", -2.0), ("softcap", "30"),
    ("chunk_size", 0), ("chunk_size", -4), ("chunk_size", 2.0), ("chunk_size", True),
]


def _lossy_only_check(call, argument, value):
    """ValueError naming the argument and the value given."""
    with pytest.raises(ValueError) as info:
        call(**{argument: value})
    message = str(info.value)
    assert re.search(rf"\b{argument}\b", message) and repr(value) in message, message


@pytest.mark.parametrize("argument,value", _LOSSY_ONLY)
def test_linear_cross_entropy_lossy_only_checks(argument, value, xp):
    arrays = [xp.asarray(a) for a in (_X, _W, _T)]
    _lossy_only_check(lambda **o: lossy_core.linear_cross_entropy(*arrays, **o), argument, value)


# lossy_torch has torch's signature: its chunk is torch's options.batch_chunk_size, which
# torch.nn.LinearCrossEntropyOptions validates itself; lossy's other extras are keyword-only.
@pytest.mark.parametrize("argument,value", [(a, v) for a, v in _LOSSY_ONLY if a != "chunk_size"])
def test_linear_cross_entropy_lossy_only_checks_lossy_torch(argument, value):
    arrays = [_to_torch(a) for a in (_X, _W, _T)]
    _lossy_only_check(lambda **o: LF.linear_cross_entropy(*arrays, **o), argument, value)


@pytest.mark.parametrize("argument,value", _LOSSY_ONLY)
def test_linear_cross_entropy_lossy_only_checks_lossy_jax(argument, value):
    jnp = pytest.importorskip("jax.numpy")
    import lossy_jax

    arrays = [jnp.asarray(a) for a in (_X, _W, _T)]
    _lossy_only_check(lambda **o: lossy_jax.linear_cross_entropy(*arrays, **o), argument, value)


# -- things torch accepts -------------------------------------------------------------

def test_negative_label_smoothing_is_accepted(xp):
    """torch accepts label_smoothing < 0 (it smooths only when > 0): no error, the plain loss."""
    logits, target = _logits(3, 4), _index(0, 3, 1)
    expected = F.cross_entropy(_to_torch(logits), _to_torch(target), label_smoothing=-0.1)
    plain = F.cross_entropy(_to_torch(logits), _to_torch(target))
    assert float(expected) == float(plain)
    got = lossy_core.cross_entropy(xp.asarray(logits), xp.asarray(target), label_smoothing=-0.1)
    assert float(got) == pytest.approx(float(expected), rel=1e-12)
    got = LF.cross_entropy(_to_torch(logits), _to_torch(target), label_smoothing=-0.1)
    assert float(got) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_l1_integer_sum_and_none_work(reduction, xp):
    """torch: l1_loss on int64 works for 'sum'/'none' and returns int64 (only 'mean' raises)."""
    a, b = np.array([3, -2, 7], dtype=i64), np.array([1, 1, 1], dtype=i64)
    expected = F.l1_loss(_to_torch(a), _to_torch(b), reduction=reduction)
    assert expected.dtype == torch.int64
    got = lossy_core.l1_loss(xp.asarray(a), xp.asarray(b), reduction=reduction)
    assert xp.isdtype(got.dtype, "integral")
    np.testing.assert_array_equal(np.asarray(got.tolist() if hasattr(got, "tolist") else got), expected.numpy())
    got = LF.l1_loss(_to_torch(a), _to_torch(b), reduction=reduction)
    assert got.dtype == torch.int64 and torch.equal(got, expected)


def test_uint8_target_is_accepted(xp):
    """torch accepts uint8 ('Byte') class indices."""
    logits, target = _logits(3, 4), _index(0, 3, 1, dtype=np.uint8)
    expected = F.cross_entropy(_to_torch(logits), _to_torch(target))
    got = lossy_core.cross_entropy(xp.asarray(logits), xp.asarray(target))
    assert float(got) == pytest.approx(float(expected), rel=1e-12)


# -- warnings -----------------------------------------------------------------------

@pytest.mark.parametrize("loss", POINTWISE)
def test_pointwise_target_size_warning(loss, xp):
    input, target = _logits(3, 2), _logits(2)
    with pytest.warns(UserWarning, match="Using a target size"):
        getattr(F, loss)(_to_torch(input), _to_torch(target))
    with pytest.warns(UserWarning, match="Using a target size"):
        getattr(lossy_core, loss)(xp.asarray(input), xp.asarray(target))
    with pytest.warns(UserWarning, match="Using a target size"):
        getattr(LF, loss)(_to_torch(input), _to_torch(target))


@pytest.mark.parametrize("loss", POINTWISE)
def test_no_warning_for_equal_shapes(loss):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(LF, loss)(_to_torch(_logits(3, 2)), _to_torch(_logits(3, 2)))


def test_kl_div_mean_warning():
    input, target = _to_torch(np.log(_probs(2, 3))), _to_torch(_probs(2, 3))
    match = "'mean' will be changed to behave the same as 'batchmean'"
    with pytest.warns(UserWarning, match=match):
        F.kl_div(input, target, reduction="mean")
    with pytest.warns(UserWarning, match=match):
        LF.kl_div(input, target, reduction="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LF.kl_div(input, target, reduction="batchmean")


_LEGACY_LOSSES = [s for s in lossy_core.losses() if "size_average" in dict(s.torch.signature)]


def _legacy_arguments(spec):
    if spec.family == "classification":
        input = _logits(4, 3)
        if spec.name == "nll_loss":
            input = input - np.log(np.exp(input).sum(1, keepdims=True))
        return input, _index(0, 2, 1, 0)
    if spec.family == "binary" or spec.name == "kl_div":
        return _probs(4, 3), _probs(4, 3)
    if spec.name == "margin_ranking_loss":
        return _logits(4, 3), _probs(4, 3), np.sign(_logits(4, 3))
    if spec.name == "cosine_embedding_loss":
        return _logits(4, 3), _probs(4, 3), np.sign(_logits(4))
    if spec.family == "margin":
        return _logits(4, 3), np.sign(_probs(4, 3) - 0.5)
    if spec.name == "multilabel_soft_margin_loss":
        return _logits(4, 3), _probs(4, 3)
    if spec.name == "multilabel_margin_loss":
        return _logits(2, 3), np.array([[2, 0, -1], [1, -1, 0]], dtype=i64)
    if spec.name == "multi_margin_loss":
        return _logits(4, 3), _index(0, 2, 1, 0)
    if spec.family == "embedding":
        return _logits(4, 3), _probs(4, 3), _logits(4, 3)[::-1]
    return _logits(4, 3), _logits(4, 3)


@pytest.mark.parametrize("spec", _LEGACY_LOSSES, ids=[s.name for s in _LEGACY_LOSSES])
@pytest.mark.parametrize("size_average,reduce,reduction", [
    (True, None, "mean"), (False, None, "sum"), (None, False, "none"), (False, True, "sum"),
])
def test_deprecated_size_average_reduce(spec, size_average, reduce, reduction):
    arrays = [_to_torch(np.ascontiguousarray(a)) for a in _legacy_arguments(spec)]
    message = re.escape(f"size_average and reduce args will be deprecated, please use reduction='{reduction}'")
    name = spec.torch.function
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = getattr(F, name)(*arrays, size_average=size_average, reduce=reduce, reduction="avg")
    with pytest.warns(UserWarning, match=message):
        getattr(F, name)(*arrays, size_average=size_average, reduce=reduce)
    with pytest.warns(UserWarning, match=message):
        got = getattr(LF, name)(*arrays, size_average=size_average, reduce=reduce, reduction="avg")
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


# -- validation happens before compute ---------------------------------------------

class _ComputeReached(AssertionError):
    pass


def _tripwire(name):
    def fail(*args, **kwargs):
        raise _ComputeReached(f"compute ({name}) ran before validation")
    return fail


# The compute entry points of the formulas, patched where the family modules look them up.
_COMPUTE = {
    "lossy_core._primitives": ("logsumexp", "log_softmax", "log_softmax_picks", "log_sigmoid", "softplus",
                               "xlogx", "take_along_axis", "one_hot", "class_axis_view"),
    "lossy_core._classification": ("log_softmax", "log_softmax_picks", "take_along_axis", "class_axis_view",
                                   "mean", "reduce_weighted", "_class_terms"),
    "lossy_core._binary": ("log_sigmoid", "_clamped_bce_terms", "reduce"),
    "lossy_core._divergence": ("xlogx", "reduce"),
    "lossy_core._regression": ("_huber_terms", "reduce", "reduce_weighted", "_weighted_reduce"),
    "lossy_core._linear": ("run", "chunk", "_logits", "take_along_axis", "take_entries", "add_at_index",
                           "exp_in_place", "accumulate_product", "finish"),
}


@pytest.mark.parametrize("case", _params([c for c in CASES if c.static]))
def test_static_validation_before_compute(case, monkeypatch):
    """With every compute entry point of the formulas replaced by a tripwire, a static error
    still surfaces with torch's exception type: validation ran before any compute."""
    import importlib

    import array_api_compat.numpy as xnp

    for module_name, names in _COMPUTE.items():
        module = importlib.import_module(module_name)
        for name in names:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, _tripwire(f"{module_name}.{name}"))
    # The numpy namespace's elementwise math is compute too.
    for name in ("exp", "log", "log1p", "logaddexp", "abs", "sum", "where", "take_along_axis", "clip"):
        monkeypatch.setattr(xnp, name, _tripwire(f"xp.{name}"))
    arrays, options = _convert(case, lambda v: xnp.asarray(v) if isinstance(v, np.ndarray) else v)
    _check_same_error(case, lambda: getattr(lossy_core, case.loss)(*arrays, **options))


@pytest.mark.parametrize("case", _params([c for c in CASES if not c.static]))
def test_data_validation_before_compute(case, monkeypatch):
    """Data-dependent checks read the values, but still run before the loss's formula."""
    import importlib

    import array_api_compat.numpy as xnp

    for module_name, names in _COMPUTE.items():
        module = importlib.import_module(module_name)
        for name in names:
            if name.startswith("_class_terms"):
                continue  # holds the index check itself; its gather is patched through take_along_axis
            if hasattr(module, name):
                monkeypatch.setattr(module, name, _tripwire(f"{module_name}.{name}"))
    for name in ("exp", "log", "log1p", "logaddexp"):
        monkeypatch.setattr(xnp, name, _tripwire(f"xp.{name}"))
    arrays, options = _convert(case, lambda v: xnp.asarray(v) if isinstance(v, np.ndarray) else v)
    _check_same_error(case, lambda: getattr(lossy_core, case.loss)(*arrays, **options))


def test_tripwire_is_live(monkeypatch):
    """The tripwire really fires on a valid call (so the two tests above can fail)."""
    import lossy_core._classification as classification

    monkeypatch.setattr(classification, "log_softmax_picks", _tripwire("log_softmax_picks"))
    import array_api_compat.numpy as xnp

    with pytest.raises(_ComputeReached):
        lossy_core.cross_entropy(xnp.asarray(_logits(2, 3)), xnp.asarray(_index(0, 1)))
    import lossy_core._linear as linear

    monkeypatch.setattr(linear, "chunk", _tripwire("chunk"))
    with pytest.raises(_ComputeReached):
        lossy_core.linear_cross_entropy(xnp.asarray(_X), xnp.asarray(_W), xnp.asarray(_T))
