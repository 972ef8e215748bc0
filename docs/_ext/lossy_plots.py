"""The documentation's plots, drawn at build time by matplotlib from lossy itself.

Every curve is computed by ``lossy_core`` on NumPy float64 arrays: the value with
``reduction="none"``, the gradient with ``lossy_core.value_and_grad(loss)(...,
reduction="none", upstream=np.ones(...))``, so a plot shows what the library computes,
not a formula copied beside it.

Interface (used by ``lossy_pages.py``)::

    LOSS_PLOTS[loss_name] -> [(plot_id, caption), ...]   # losses with a meaningful 1-D curve
    render(outdir, conformance_json=None, benchmark_json=None) -> {plot_id: path}
    captions(conformance_json=None, benchmark_json=None) -> {plot_id: caption}   # every id, incl. the two below

``render`` writes ``<outdir>/<plot_id>.png`` for every plot id of ``LOSS_PLOTS``
(one id may be listed under two losses, e.g. ``l1_loss-mse_loss``: it is drawn once)
plus ``parity-heatmap`` (from a conformance report, ``python -m conformance --out DIR``
writes ``DIR/conformance.json``; a placeholder that says how to make one otherwise) and
``performance-scaling`` (from a benchmark run's ``benchmarks.json``, its ``"sweep"``
key; otherwise a copy of the committed ``docs/performance-scaling.png``).
``build_figure(plot_id, ...)`` returns the matplotlib figure of one plot (the tests read
the plotted lines from it). Output is deterministic: fixed figure sizes and style, no
randomness, no timestamp or software version in the PNG.

Losses left out, where no 1-D curve says anything a plotted one does not already:
ctc_loss and adaptive_log_softmax_with_loss (sequence/tree structure),
linear_cross_entropy (its curve against the target logit is cross_entropy's),
nll_loss (linear in the picked log-probability), multilabel_soft_margin_loss (the mean of
binary_cross_entropy_with_logits terms), multilabel_margin_loss (multi_margin_loss's hinge
per target), triplet_margin_with_distance_loss (triplet_margin_loss with another distance)
and distribution_focal_loss (a loss over a discretised distribution, not one score).
"""

from __future__ import annotations

import functools
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, the same pixels everywhere
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import lossy_core  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMMITTED_SCALING = REPO / "docs" / "performance-scaling.png"
EXTRA_PLOTS = ("parity-heatmap", "performance-scaling")

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in grey.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.titlesize": 12,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "legend.framealpha": 0.9,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "svg.hashsalt": "lossy",
}
CURVE_SIZE = (9.0, 3.6)  # inches, every loss plot: two panels side by side
DPI = 110
PNG_METADATA = {"Software": None}  # no version string: the same bytes across matplotlib releases

GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)


# ---------------------------------------------------------------------------------------------
# Evaluating lossy


def _value_and_grad(loss: str, *arrays, wrt: str = "input", **options):
    """lossy_core's unreduced value and its gradient with respect to ``wrt``, as float64 arrays."""
    shape = np.shape(lossy_core.get(loss).function(*arrays, reduction="none", **options))  # the output's
    value, grads = lossy_core.value_and_grad(loss)(*arrays, reduction="none", upstream=np.ones(shape), **options)
    return np.asarray(value, dtype=np.float64), np.asarray(grads[wrt], dtype=np.float64)


def _logit(p):
    return np.log(p) - np.log1p(-p)


P_T = np.linspace(0.01, 0.99, 393)  # probabilities: the ends kept off 0 and 1, where -log p is unbounded


def _row_logits(p_t, classes=5):
    """(N, C) rows whose class 0 has softmax probability ``p_t``, the others equal logits 0."""
    rows = np.zeros((p_t.size, classes))
    rows[:, 0] = np.log((classes - 1) * p_t / (1 - p_t))
    return rows


# ---------------------------------------------------------------------------------------------
# Curve plots: data first (what the tests check), drawing second


@dataclass
class Curve:
    label: str
    x: np.ndarray
    loss: np.ndarray
    grad: np.ndarray
    style: dict = field(default_factory=dict)


@dataclass
class CurvePlot:
    plot_id: str
    losses: tuple  # the loss names whose pages show it
    title: str
    caption: str
    xlabel: str
    grad_label: str
    curves: list
    loss_label: str = "loss ℓ"
    # a gradient like -1/p: a linear axis would flatten every other curve; asinh is linear near 0 and
    # logarithmic beyond, without symlog's kink at the switch
    grad_asinh: bool = False
    legend_loc: str = "upper right"
    legend_panel: int = 0  # 0: the loss panel, 1: the gradient panel (where it covers nothing)
    marks: tuple = ()  # (x, text): vertical reference lines
    loss_ylim: tuple | None = None
    xlim: tuple | None = None  # default: the data's range
    loss_headroom: float = 1.0  # the loss axis's top over the highest curve: room for the legend
    # piecewise-constant gradients that coincide (hinges): earlier curves drawn wider, so none hides another
    overlapping: bool = False


def _focal_sigmoid():
    x = _logit(P_T)
    curves = [Curve(f"γ = {g:g}" + (" (BCE with logits)" if g == 0 else ""), P_T,
                    *_value_and_grad("sigmoid_focal_loss", x, np.ones_like(x), wrt="inputs", alpha=None, gamma=g))
              for g in GAMMAS]
    return CurvePlot(
        "sigmoid_focal_loss-gamma", ("sigmoid_focal_loss",), "sigmoid_focal_loss across γ (target 1, alpha=None)",
        "sigmoid_focal_loss of a positive (target 1, alpha=None) against p_t = sigmoid(x), for γ = 0, 0.5, 1, 2, 5, "
        "as in figure 1 of the Focal Loss paper (Lin et al. 2017); γ = 0 is binary_cross_entropy_with_logits. "
        "Right: the gradient with respect to the logit x.",
        "$p_t$ = sigmoid(x), probability of the true class", "∂ℓ/∂x (logit)", curves)


def _focal_binary():
    curves = [Curve(f"γ = {g:g}" + (" (BCE)" if g == 0 else ""), P_T,
                    *_value_and_grad("binary_focal_loss", P_T, np.ones_like(P_T), alpha=None, gamma=g))
              for g in GAMMAS]
    return CurvePlot(
        "binary_focal_loss-gamma", ("binary_focal_loss",), "binary_focal_loss across γ (target 1, alpha=None)",
        "binary_focal_loss of a positive (target 1, alpha=None) against the input probability p = p_t, for "
        "γ = 0, 0.5, 1, 2, 5; γ = 0 is binary_cross_entropy. Right: the gradient with respect to the probability "
        "(-1/p at γ = 0; asinh axis: linear near 0, logarithmic beyond).",
        "$p_t$ = p, input probability of the true class", "∂ℓ/∂p (probability)", curves, grad_asinh=True)


def _focal_softmax():
    rows = _row_logits(P_T)
    target = np.zeros(P_T.size, dtype=np.int64)
    curves = []
    for g in GAMMAS:
        value, grad = _value_and_grad("softmax_focal_loss", rows, target, gamma=g)
        curves.append(Curve(f"γ = {g:g}" + (" (cross entropy)" if g == 0 else ""), P_T, value, grad[:, 0]))
    return CurvePlot(
        "softmax_focal_loss-gamma", ("softmax_focal_loss",), "softmax_focal_loss across γ (5 classes, alpha=None)",
        "softmax_focal_loss of one row of 5 logits (the true class's logit varied, the other four 0) against "
        "p_t = softmax(x)[y], for γ = 0, 0.5, 1, 2, 5; γ = 0 is cross_entropy. Right: the gradient with respect "
        "to the true class's logit.",
        "$p_t$ = softmax(x)[y], probability of the true class", "∂ℓ/∂x[y] (true-class logit)", curves)


QUALITY_TARGET = 0.6


def _quality_focal():
    x = _logit(P_T)
    target = np.full_like(x, QUALITY_TARGET)
    curves = [Curve(f"β = {b:g}" + (" (BCE with logits)" if b == 0 else ""), P_T,
                    *_value_and_grad("quality_focal_loss", x, target, beta=b)) for b in GAMMAS]
    return CurvePlot(
        "quality_focal_loss-beta", ("quality_focal_loss",),
        f"quality_focal_loss across β (quality target y = {QUALITY_TARGET:g})",
        f"quality_focal_loss against the predicted score σ = sigmoid(x) for a soft quality target y = "
        f"{QUALITY_TARGET:g} (the IoU of a positive), for β = 0, 0.5, 1, 2, 5 (Li et al. 2020); β = 0 is "
        "binary_cross_entropy_with_logits, whose minimum at σ = y is the target's entropy, not 0. "
        "Right: the gradient with respect to the logit x; for β < 1 it is unbounded at σ = y (|y - σ|^β has an "
        "infinite slope there while the BCE factor does not vanish), so the spike's height is the grid's.",
        "σ = sigmoid(x), predicted score", "∂ℓ/∂x (logit)", curves, legend_loc="upper left", legend_panel=1,
        marks=((QUALITY_TARGET, f"y = {QUALITY_TARGET:g}"),))


def _varifocal():
    x = _logit(P_T)
    curves = []
    for q, color in ((1.0, PALETTE[6]), (0.6, "#777777")):
        curves.append(Curve(f"positive, q = {q:g} (q·BCE, not focused)", P_T,
                            *_value_and_grad("varifocal_loss", x, np.full_like(x, q)), {"color": color}))
    for g, color in zip((0.0, 1.0, 2.0, 5.0), PALETTE):
        curves.append(Curve(f"negative, γ = {g:g}", P_T,
                            *_value_and_grad("varifocal_loss", x, np.zeros_like(x), gamma=g),
                            {"color": color, "linestyle": "--"}))
    return CurvePlot(
        "varifocal_loss-gamma", ("varifocal_loss",), "varifocal_loss: positives, and negatives across γ (alpha=0.75)",
        "varifocal_loss against the predicted score p = sigmoid(x) (Zhang et al. 2021): positives with IoU target "
        "q = 1 and q = 0.6 are weighted by q and not focused (solid); negatives (q = 0) are scaled by alpha·p^γ, "
        "for γ = 0, 1, 2, 5 with alpha = 0.75 (dashed). Right: the gradient with respect to the logit x.",
        "p = sigmoid(x), predicted score", "∂ℓ/∂x (logit)", curves, legend_loc="upper center")


def _asymmetric():
    x = _logit(P_T)
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    settings = (
        ("positive, γ+ = 0", ones, {"gamma_pos": 0.0}, PALETTE[6], "-"),
        ("positive, γ+ = 1 (default)", ones, {"gamma_pos": 1.0}, PALETTE[0], "-"),
        ("negative, γ− = 0, clip = 0", zeros, {"gamma_neg": 0.0, "clip": 0.0}, "#777777", "--"),
        ("negative, γ− = 4, clip = 0", zeros, {"gamma_neg": 4.0, "clip": 0.0}, PALETTE[1], "--"),
        ("negative, γ− = 4, clip = 0.05 (default)", zeros, {"gamma_neg": 4.0, "clip": 0.05}, PALETTE[4], "--"),
    )
    curves = [Curve(label, P_T, *_value_and_grad("asymmetric_loss", x, target, **opts),
                    {"color": color, "linestyle": ls}) for label, target, opts, color, ls in settings]
    return CurvePlot(
        "asymmetric_loss-branches", ("asymmetric_loss",), "asymmetric_loss: positive and negative branches (γ+, γ−, clip)",
        "asymmetric_loss against the predicted probability p = sigmoid(x) (Ridnik et al. 2021): the positive branch "
        "(target 1, solid) at γ+ = 0 and 1, the negative branch (target 0, dashed) at γ− = 0 and 4, without and "
        "with the probability shift clip = 0.05, which zeroes the loss of negatives with p ≤ clip. "
        "γ+ = γ− = 0, clip = 0 is binary_cross_entropy_with_logits. Right: the gradient with respect to the logit x.",
        "p = sigmoid(x), predicted probability", "∂ℓ/∂x (logit)", curves, legend_loc="upper center")


def _poly1():
    rows = _row_logits(P_T)
    target = np.zeros(P_T.size, dtype=np.int64)
    curves = []
    for eps in (-1.0, 0.0, 1.0, 2.0, 5.0):
        value, grad = _value_and_grad("poly1_cross_entropy", rows, target, epsilon=eps)
        curves.append(Curve(f"ε = {eps:g}" + (" (cross entropy)" if eps == 0 else ""), P_T, value, grad[:, 0]))
    return CurvePlot(
        "poly1_cross_entropy-epsilon", ("poly1_cross_entropy",), "poly1_cross_entropy across ε (5 classes)",
        "poly1_cross_entropy, -log p_t + ε (1 - p_t) (Leng et al. 2022), of one row of 5 logits (the true class's "
        "logit varied, the other four 0) against p_t, for ε = -1, 0, 1, 2, 5; ε = 0 is cross_entropy. Right: the "
        "gradient with respect to the true class's logit.",
        "$p_t$ = softmax(x)[y], probability of the true class", "∂ℓ/∂x[y] (true-class logit)", curves)


def _cross_entropy():
    rows = _row_logits(P_T)
    target = np.zeros(P_T.size, dtype=np.int64)
    curves = []
    for s in (0.0, 0.1, 0.2, 0.4):
        value, grad = _value_and_grad("cross_entropy", rows, target, label_smoothing=s)
        curves.append(Curve(f"label_smoothing = {s:g}", P_T, value, grad[:, 0]))
    return CurvePlot(
        "cross_entropy-label_smoothing", ("cross_entropy",), "cross_entropy across label_smoothing (5 classes)",
        "cross_entropy of one row of 5 logits (the true class's logit varied, the other four 0) against p_t, for "
        "label_smoothing = 0, 0.1, 0.2, 0.4: with smoothing s the minimum moves from p_t = 1 to p_t = 1 - s + s/5. "
        "Right: the gradient with respect to the true class's logit (p_t - (1 - s + s/5)).",
        "$p_t$ = softmax(x)[y], probability of the true class", "∂ℓ/∂x[y] (true-class logit)", curves)


DIFF = np.linspace(-3.0, 3.0, 601)  # input - target; includes 0 and the kinks at +-0.5, 1, 2


def _huber():
    zeros = np.zeros_like(DIFF)
    curves = [Curve(f"δ = {d:g}", DIFF, *_value_and_grad("huber_loss", DIFF, zeros, delta=d)) for d in (0.5, 1.0, 2.0)]
    return CurvePlot(
        "huber_loss-delta", ("huber_loss",), "huber_loss across δ",
        "huber_loss against the difference input - target, for δ = 0.5, 1, 2: quadratic (½ d²) within δ, linear "
        "(δ (|d| - ½ δ)) beyond. Right: the gradient with respect to the input, clipped at ±δ.",
        "input − target", "∂ℓ/∂input", curves, legend_loc="upper center")


def _smooth_l1():
    zeros = np.zeros_like(DIFF)
    curves = [Curve(f"β = {b:g}" + (" (l1_loss)" if b == 0 else ""), DIFF,
                    *_value_and_grad("smooth_l1_loss", DIFF, zeros, beta=b)) for b in (0.0, 0.5, 1.0, 2.0)]
    return CurvePlot(
        "smooth_l1_loss-beta", ("smooth_l1_loss",), "smooth_l1_loss across β",
        "smooth_l1_loss against the difference input - target, for β = 0, 0.5, 1, 2: ½ d²/β within β, |d| - ½ β "
        "beyond; β = 0 is l1_loss, and smooth_l1_loss with β is huber_loss with δ = β divided by β. Right: the "
        "gradient with respect to the input, clipped at ±1.",
        "input − target", "∂ℓ/∂input", curves, legend_loc="upper center")


def _l1_mse():
    zeros = np.zeros_like(DIFF)
    curves = [Curve("l1_loss", DIFF, *_value_and_grad("l1_loss", DIFF, zeros)),
              Curve("mse_loss", DIFF, *_value_and_grad("mse_loss", DIFF, zeros))]
    return CurvePlot(
        "l1_loss-mse_loss", ("l1_loss", "mse_loss"), "l1_loss and mse_loss",
        "l1_loss (|d|) and mse_loss (d²) against the difference d = input - target. Right: their gradients with "
        "respect to the input, sign(d) (0 at d = 0, as torch) and 2d.",
        "input − target", "∂ℓ/∂input", curves, legend_loc="upper center")


def _bce():
    curves = [Curve(f"target {y:g}", P_T, *_value_and_grad("binary_cross_entropy", P_T, np.full_like(P_T, y)))
              for y in (1.0, 0.7, 0.0)]
    return CurvePlot(
        "binary_cross_entropy-target", ("binary_cross_entropy",), "binary_cross_entropy across the target (on probabilities)",
        "binary_cross_entropy against the input probability p, for targets 1, 0.7 (soft) and 0; each log is clamped "
        "at -100, as torch's, which only shows for p within e^-100 of 0 or 1. Right: the gradient with respect to "
        "p, (p - y) / (p (1 - p)) (asinh axis: linear near 0, logarithmic beyond). On logits, see binary_cross_entropy_with_logits.",
        "p, input probability", "∂ℓ/∂p (probability)", curves, grad_asinh=True, legend_loc="upper center")


LOGITS = np.linspace(-6.0, 6.0, 481)


def _bce_logits():
    curves = [Curve(f"target {y:g}", LOGITS,
                    *_value_and_grad("binary_cross_entropy_with_logits", LOGITS, np.full_like(LOGITS, y)))
              for y in (1.0, 0.7, 0.0)]
    curves.append(Curve("target 1, pos_weight = 3", LOGITS, *_value_and_grad(
        "binary_cross_entropy_with_logits", LOGITS, np.ones_like(LOGITS), pos_weight=np.array(3.0)),
        {"linestyle": "--", "color": PALETTE[0]}))
    return CurvePlot(
        "binary_cross_entropy_with_logits-target", ("binary_cross_entropy_with_logits",),
        "binary_cross_entropy_with_logits across the target and pos_weight",
        "binary_cross_entropy_with_logits against the logit x, for targets 1, 0.7 and 0, and target 1 with "
        "pos_weight = 3 (dashed); computed in log space, so it is exact for any logit, unlike "
        "binary_cross_entropy(sigmoid(x)). Right: the gradient with respect to the logit, sigmoid(x) - y for "
        "pos_weight 1.",
        "x, logit", "∂ℓ/∂x (logit)", curves, legend_loc="upper center")


def _kl():
    z = _logit(P_T)
    log_q = np.stack([-np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)], axis=1)  # log_softmax([z, 0])
    q = P_T
    curves = []
    for t in (0.1, 0.5, 0.8):
        target = np.tile([t, 1 - t], (P_T.size, 1))
        value, grad = _value_and_grad("kl_div", log_q, target)
        # chain rule through log q = log_softmax([z, 0]): d log q0/dz = 1 - q, d log q1/dz = -q
        curves.append(Curve(f"target t = {t:g}", q, value.sum(axis=1), grad[:, 0] * (1 - q) - grad[:, 1] * q))
    return CurvePlot(
        "kl_div-target", ("kl_div",), "kl_div of two classes across the target t",
        "kl_div of a two-class distribution: KL(t ‖ q), the unreduced terms summed over the two classes (what "
        "reduction='batchmean' gives per row), against the predicted probability q, for targets t = 0.1, 0.5, 0.8; "
        "its minimum, 0, is at q = t. Right: the gradient with respect to the logit z of q = sigmoid(z), lossy's "
        "gradient with respect to the log-probabilities chained through log_softmax([z, 0]) (q - t).",
        "q, predicted probability of class 0", "∂ℓ/∂z (logit of q)", curves, legend_loc="upper center")


def _gaussian_nll():
    zeros = np.zeros_like(DIFF)
    curves = [Curve(f"var = {v:g}", DIFF, *_value_and_grad("gaussian_nll_loss", DIFF, zeros, np.full_like(DIFF, v)))
              for v in (0.25, 1.0, 4.0)]
    return CurvePlot(
        "gaussian_nll_loss-var", ("gaussian_nll_loss",), "gaussian_nll_loss across the predicted variance",
        "gaussian_nll_loss, ½ (log var + d²/var), against the difference d = input - target, for var = 0.25, 1, 4 "
        "(full=False). Right: the gradient with respect to the input, d/var.",
        "input − target", "∂ℓ/∂input", curves, legend_loc="upper center")


def _poisson_nll():
    x = np.linspace(-3.0, 2.5, 441)
    curves = [Curve(f"target y = {y:g}", x, *_value_and_grad("poisson_nll_loss", x, np.full_like(x, y)))
              for y in (0.0, 1.0, 3.0)]
    return CurvePlot(
        "poisson_nll_loss-target", ("poisson_nll_loss",), "poisson_nll_loss across the target count (log_input=True)",
        "poisson_nll_loss with log_input=True, exp(x) - y x, against the log-rate x, for target counts y = 0, 1, 3 "
        "(full=False); its minimum is at x = log y. Right: the gradient with respect to x, exp(x) - y.",
        "x = log(rate), input", "∂ℓ/∂x", curves, legend_loc="upper center")


def _hinge_embedding():
    x = np.linspace(-0.5, 3.0, 351)
    curves = [Curve("y = +1 (ℓ = x)", x, *_value_and_grad("hinge_embedding_loss", x, np.ones_like(x)),
                    {"color": PALETTE[6]})]
    for m in (0.5, 1.0, 2.0):
        curves.append(Curve(f"y = −1, margin = {m:g}", x,
                            *_value_and_grad("hinge_embedding_loss", x, -np.ones_like(x), margin=m),
                            {"linestyle": "--"}))
    return CurvePlot(
        "hinge_embedding_loss-margin", ("hinge_embedding_loss",), "hinge_embedding_loss across margin",
        "hinge_embedding_loss against the input x (typically a distance): x for y = +1, max(0, margin - x) for "
        "y = -1, with margin = 0.5, 1, 2. Right: the gradient with respect to the input.",
        "x, input (a distance)", "∂ℓ/∂x", curves, legend_loc="upper center", loss_headroom=1.4,
        overlapping=True)


def _margin_ranking():
    d = np.linspace(-2.0, 2.0, 401)
    curves = [Curve(f"margin = {m:g}", d, *_value_and_grad("margin_ranking_loss", d, np.zeros_like(d),
                                                           np.ones_like(d), wrt="input1", margin=m))
              for m in (0.0, 0.5, 1.0)]
    return CurvePlot(
        "margin_ranking_loss-margin", ("margin_ranking_loss",), "margin_ranking_loss across margin (y = 1)",
        "margin_ranking_loss, max(0, -y (x1 - x2) + margin), against x1 - x2 for y = 1 (x1 should rank higher), "
        "with margin = 0, 0.5, 1. Right: the gradient with respect to x1 (that of x2 is its negative).",
        "x1 − x2", "∂ℓ/∂x1", curves, overlapping=True)


def _soft_margin():
    x = np.linspace(-5.0, 5.0, 401)
    curves = [Curve(f"y = {y:+g}", x, *_value_and_grad("soft_margin_loss", x, np.full_like(x, y)))
              for y in (1.0, -1.0)]
    return CurvePlot(
        "soft_margin_loss-target", ("soft_margin_loss",), "soft_margin_loss for y = +1 and y = −1",
        "soft_margin_loss, log(1 + exp(-y x)), against the input x for y = +1 and y = -1 (mirror images: the loss "
        "depends on the margin y x only). Right: the gradient with respect to the input, -y sigmoid(-y x).",
        "x, input", "∂ℓ/∂x", curves, legend_loc="upper center")


def _cosine_embedding():
    c = np.linspace(-0.995, 0.995, 399)
    s = np.sqrt(1 - c**2)
    a = np.tile([1.0, 0.0], (c.size, 1))
    b = np.stack([c, s], axis=1)
    settings = (("y = +1 (ℓ = 1 − cos)", 1.0, 0.0, {"color": PALETTE[6]}),
                ("y = −1, margin = 0", -1.0, 0.0, {"linestyle": "--", "color": PALETTE[0]}),
                ("y = −1, margin = 0.5", -1.0, 0.5, {"linestyle": "--", "color": PALETTE[1]}),
                ("y = −1, margin = −0.5", -1.0, -0.5, {"linestyle": "--", "color": PALETTE[2]}))
    curves = []
    for label, y, m, style in settings:
        value, grad_b = _value_and_grad("cosine_embedding_loss", a, b, np.full(c.size, y), wrt="input2", margin=m)
        # b = (cos θ, sin θ): dℓ/dθ = grad_b · (-sin θ, cos θ) and dcos/dθ = -sin θ
        d_theta = grad_b[:, 0] * -s + grad_b[:, 1] * c
        curves.append(Curve(label, c, value, d_theta / -s, style))
    return CurvePlot(
        "cosine_embedding_loss-margin", ("cosine_embedding_loss",), "cosine_embedding_loss across margin",
        "cosine_embedding_loss against the cosine of the two inputs (2-D unit vectors at an angle θ): 1 - cos for "
        "y = +1 (solid), max(0, cos - margin) for y = -1 (dashed), margin = 0, 0.5, -0.5. Right: the gradient with "
        "respect to cos, recovered from lossy's gradient with respect to the second input along the direction "
        "that changes θ.",
        "cos(x1, x2)", "∂ℓ/∂cos", curves, legend_loc="upper center", xlim=(-1.0, 1.0),
        loss_headroom=1.3, overlapping=True)


def _multi_margin():
    m = np.linspace(-2.0, 3.0, 501)
    rows = np.stack([m, np.zeros_like(m)], axis=1)
    target = np.zeros(m.size, dtype=np.int64)
    curves = []
    for p, margin, style in ((1, 1.0, {"color": PALETTE[0]}), (2, 1.0, {"color": PALETTE[1]}),
                             (1, 2.0, {"color": PALETTE[0], "linestyle": "--"}),
                             (2, 2.0, {"color": PALETTE[1], "linestyle": "--"})):
        value, grad = _value_and_grad("multi_margin_loss", rows, target, p=p, margin=margin)
        curves.append(Curve(f"p = {p}, margin = {margin:g}", m, value, grad[:, 0], style))
    return CurvePlot(
        "multi_margin_loss-margin", ("multi_margin_loss",), "multi_margin_loss across p and margin (2 classes)",
        "multi_margin_loss of two classes, max(0, margin - (x[y] - x[i]))^p / C with C = 2, against the margin "
        "x[y] - x[i] between the true class and the other one, for p = 1, 2 and margin = 1, 2. Right: the "
        "gradient with respect to the true class's score x[y].",
        "x[y] − x[i], margin of the true class", "∂ℓ/∂x[y]", curves, overlapping=True)


TRIPLET_D_AN = 3.0


def _triplet():
    x = np.linspace(-2.5, 2.5, 501)
    anchor = np.zeros((x.size, 1))
    positive = -(TRIPLET_D_AN + x)[:, None]  # 1-D embeddings: d(a, p) = 3 + x + eps, d(a, n) = 3 + eps
    negative = np.full((x.size, 1), -TRIPLET_D_AN)
    curves = []
    for margin in (0.5, 1.0, 2.0):
        value, grad_p = _value_and_grad("triplet_margin_loss", anchor, positive, negative, wrt="positive", margin=margin)
        curves.append(Curve(f"margin = {margin:g}", x, value, -grad_p[:, 0]))  # dℓ/dd(a,p) = -dℓ/dpositive here
    return CurvePlot(
        "triplet_margin_loss-margin", ("triplet_margin_loss",), "triplet_margin_loss across margin",
        "triplet_margin_loss, max(0, margin + d(a, p) - d(a, n)), against d(a, p) - d(a, n), for margin = 0.5, 1, 2 "
        "(p = 2, swap=False). Right: the gradient with respect to the distance d(a, p), read from lossy's gradient "
        "with respect to the positive (1-D embeddings, the positive moved along the line through the anchor).",
        "d(a, p) − d(a, n)", "∂ℓ/∂d(a, p)", curves, legend_loc="upper left", overlapping=True)


# plot id -> the function computing its data, in the order the plots are listed
_PLOT_INDEX = {
    "sigmoid_focal_loss-gamma": _focal_sigmoid, "binary_focal_loss-gamma": _focal_binary,
    "softmax_focal_loss-gamma": _focal_softmax, "quality_focal_loss-beta": _quality_focal,
    "varifocal_loss-gamma": _varifocal, "asymmetric_loss-branches": _asymmetric,
    "poly1_cross_entropy-epsilon": _poly1, "cross_entropy-label_smoothing": _cross_entropy,
    "huber_loss-delta": _huber, "smooth_l1_loss-beta": _smooth_l1, "l1_loss-mse_loss": _l1_mse,
    "binary_cross_entropy-target": _bce, "binary_cross_entropy_with_logits-target": _bce_logits,
    "kl_div-target": _kl, "gaussian_nll_loss-var": _gaussian_nll, "poisson_nll_loss-target": _poisson_nll,
    "hinge_embedding_loss-margin": _hinge_embedding, "margin_ranking_loss-margin": _margin_ranking,
    "soft_margin_loss-target": _soft_margin, "cosine_embedding_loss-margin": _cosine_embedding,
    "multi_margin_loss-margin": _multi_margin, "triplet_margin_loss-margin": _triplet,
}


@functools.lru_cache(maxsize=None)
def curve_plot(plot_id: str) -> CurvePlot:
    """The data of one loss plot, computed by lossy (once per process: LOSS_PLOTS's captions and the
    figure come from the same call)."""
    return _PLOT_INDEX[plot_id]()


def _loss_plots() -> dict:
    """LOSS_PLOTS from the builders: the captions are computed from the same place as the figures."""
    table: dict[str, list] = {}
    for plot_id in _PLOT_INDEX:
        plot = curve_plot(plot_id)
        assert plot.plot_id == plot_id, (plot.plot_id, plot_id)
        for loss in plot.losses:
            table.setdefault(loss, []).append((plot_id, plot.caption))
    return table


# ---------------------------------------------------------------------------------------------
# Drawing


def _new_figure(size):
    return plt.figure(figsize=size, dpi=DPI)


def _default_xlim(x):
    """A probability axis spans [0, 1] (the curves stop just short of the ends); others their data."""
    return (0.0, 1.0) if x is P_T else (float(x.min()), float(x.max()))


def _draw_curves(plot: CurvePlot):
    figure = _new_figure(CURVE_SIZE)
    left, right = figure.subplots(1, 2)
    count = len(plot.curves)
    for index, curve in enumerate(plot.curves):
        style = {"color": PALETTE[index % len(PALETTE)], **curve.style}
        if plot.overlapping and count > 1:
            style.setdefault("linewidth", 1.6 + 2.0 * (count - 1 - index) / (count - 1))
        left.plot(curve.x, curve.loss, label=curve.label, **style)
        right.plot(curve.x, curve.grad, label=curve.label, **style)
    for axis, ylabel, name in ((left, plot.loss_label, "loss"), (right, plot.grad_label, "gradient")):
        axis.set_xlabel(plot.xlabel)
        axis.set_ylabel(ylabel)
        axis.set_title(name)
        axis.set_xlim(*(plot.xlim or _default_xlim(plot.curves[0].x)))
        for x, text in plot.marks:
            axis.axvline(x, color="grey", linestyle=":", linewidth=1)
    for x, text in plot.marks:  # labelled once, at the top of the loss panel
        left.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -11),
                      textcoords="offset points", fontsize=8.5, color="grey")
    right.axhline(0.0, color="grey", linewidth=0.8)
    if plot.grad_asinh:
        right.set_yscale("asinh", linear_width=1.0)
        low = min(float(c.grad.min()) for c in plot.curves)
        high = max(float(c.grad.max()) for c in plot.curves)
        ticks = [t for t in (-1000, -100, -10, -1, 0, 1, 10, 100, 1000) if low * 1.5 - 0.5 <= t <= high * 1.5 + 0.5]
        right.set_yticks(ticks, [f"{t:g}".replace("-", "−") for t in ticks])
        right.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    if plot.loss_ylim:
        left.set_ylim(*plot.loss_ylim)
    else:
        bottom = min(0.0, min(float(c.loss.min()) for c in plot.curves))
        top = max(float(c.loss.max()) for c in plot.curves)
        left.set_ylim(bottom, bottom + (top - bottom) * 1.04 * plot.loss_headroom)
    (left, right)[plot.legend_panel].legend(loc=plot.legend_loc)
    figure.suptitle(plot.title)
    figure.tight_layout()
    return figure


def _read_json(path):
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- parity heat map ---------------------------------------------------------------------------

# float64 and float32: the two regimes every backend runs; half precision is on each loss page's parity row
DTYPES = ("float64", "float32")
# colour range per dtype, in log10 of the relative error: from below its rounding to above its tolerance
_LOG_RANGE = {"float64": (-17.0, -10.0), "float32": (-9.0, -3.0), "float16": (-5.0, 0.0), "bfloat16": (-4.0, 0.5)}


def _cell_error(cell: dict, dtype: str):
    """(worst error or None, 'value+grad' | 'value'): the larger of the worst value and gradient errors."""
    value = (cell.get("worst_value_error") or {}).get(dtype)
    grads = cell.get("worst_grad_error")
    grad = None if grads is None else grads.get(dtype)
    errors = [e for e in (value, grad) if e is not None]
    return (max(errors) if errors else None), grads is not None


def _draw_parity(report: dict, source: str):
    matrix = report.get("matrix", {})
    registered = list(lossy_core.REGISTRY)  # the registry's order (the JSON's keys are sorted)
    losses = [n for n in registered if n in matrix] + sorted(n for n in matrix if n not in registered)
    ran = list(report.get("backends_ran", []))
    skipped_backends = dict(report.get("backends_skipped", {}))
    backends = ran + [b for b in skipped_backends if b not in ran]
    dtypes = [d for d in DTYPES if any(d in (c.get("worst_value_error") or {})
                                       for row in matrix.values() for c in row.values())] or ["float64"]
    tolerances = report.get("tolerances", {})
    panel_width = 0.62 * len(backends) + 0.5
    height = 0.25 * len(losses) + 2.9
    figure = plt.figure(figsize=(2.6 + panel_width * len(dtypes), height), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, len(dtypes), squeeze=False)[0]
    cmap = plt.get_cmap("viridis")
    hatch = {"facecolor": "#eeeeee", "hatch": "////", "edgecolor": "#bbbbbb", "linewidth": 0}
    for panel, (axis, dtype) in enumerate(zip(axes, dtypes)):
        low, high = _LOG_RANGE[dtype]
        grid = np.full((len(losses), len(backends)), np.nan)
        for i, loss in enumerate(losses):
            for j, backend in enumerate(backends):
                cell = matrix[loss].get(backend)
                error = None if cell is None else _cell_error(cell, dtype)[0]
                if error is not None:
                    grid[i, j] = low if error == 0 else np.clip(math.log10(error), low, high)
        image = axis.imshow(grid, cmap=cmap, vmin=low, vmax=high, aspect="auto", interpolation="nearest")
        for i, loss in enumerate(losses):
            for j, backend in enumerate(backends):
                cell = matrix[loss].get(backend)
                if cell is None or backend in skipped_backends:
                    axis.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, **hatch))
                    continue
                error, has_grad = _cell_error(cell, dtype)
                failed = cell.get("passed", 0) != cell.get("total", 0)
                if error is None:
                    axis.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, **hatch))
                    text, color = ("skip" if cell.get("total", 0) == 0 else "–"), "#555555"
                else:
                    text = "0" if error == 0 else f"{error:.0e}".replace("e-0", "e-").replace("e+0", "e")
                    color = "black" if (grid[i, j] - low) / (high - low) > 0.55 else "white"
                    if not has_grad:
                        text += " v"
                if failed:
                    axis.add_patch(Rectangle((j - 0.46, i - 0.42), 0.92, 0.84, fill=False, edgecolor="#D00000",
                                             linewidth=2.0))
                    text = "FAIL " + text
                axis.text(j, i, text, ha="center", va="center", fontsize=6.5, color=color)
        axis.set_xticks(range(len(backends)))
        axis.set_xticklabels([b + (" (not run)" if b in skipped_backends else "") for b in backends],
                             rotation=40, ha="right", rotation_mode="anchor")
        axis.set_yticks(range(len(losses)))
        axis.set_yticklabels(losses if panel == 0 else [])
        axis.tick_params(length=0)
        axis.grid(False)
        for spine in axis.spines.values():
            spine.set_visible(False)
        rtol = (tolerances.get(dtype) or {}).get("rtol")
        bar = figure.colorbar(image, ax=axis, location="top", shrink=0.95, aspect=14, pad=0.01)
        bar.set_label(f"{dtype}: log10 worst error" + (f"\n(red: tolerance {rtol:g})" if rtol else ""),
                      fontsize=8.5)
        bar.ax.tick_params(labelsize=7.5)
        if rtol:
            bar.ax.axvline(math.log10(rtol), color="#D00000", linewidth=2)
    figure.suptitle(f"Parity with PyTorch: worst error per loss, backend and dtype "
                    f"(reference: {report.get('reference', '?')})", fontsize=11)
    figure.supxlabel("Colour and number: the worst relative error of the value and the gradients over the "
                "cell's cases (conformance/compare.py); 0: exact; v: value only (the backend computes no\n"
                "gradients). Hatched: no case of that dtype there, or the backend was not run. Red box, FAIL: a "
                f"case failed (in any dtype).  Source: {source}.", fontsize=7.5, color="#444444")
    return figure


def _draw_placeholder(title: str, lines: list):
    figure = _new_figure((8.0, 2.6))
    axis = figure.add_subplot()
    axis.axis("off")
    axis.text(0.5, 0.72, title, ha="center", va="center", fontsize=13, weight="bold", transform=axis.transAxes)
    axis.text(0.5, 0.36, "\n".join(lines), ha="center", va="center", fontsize=10, family="monospace",
              transform=axis.transAxes)
    return figure


PARITY_HOWTO = ["python -m conformance --out conformance-report",
                "then build the docs with the report's conformance-report/conformance.json"]


# -- performance scaling -----------------------------------------------------------------------


def _draw_scaling(report: dict, source: str):
    sweep = report["sweep"]
    figure = _new_figure((4.2 * len(sweep), 3.6))
    axes = figure.subplots(1, len(sweep), squeeze=False)[0]
    for axis, (title, variants) in zip(axes, sweep.items()):
        for index, (variant, points) in enumerate(variants.items()):
            xs, ys = zip(*points)
            axis.plot(xs, ys, marker="o", markersize=4, label=variant, color=PALETTE[index % len(PALETTE)])
        axis.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="native torch eager")
        axis.set_xscale("log")
        axis.set_title(title)
        axis.set_xlabel(title.split(" over ")[-1])
        axis.set_ylabel("forward+backward time / native torch")
        axis.set_ylim(bottom=0)
        axis.legend(loc="best")
    machine = report.get("machine", {})
    versions = report.get("versions", {})
    where = ", ".join(str(v) for v in (machine.get("processor"), f"torch {versions['torch']}"
                                       if "torch" in versions else None) if v)
    figure.suptitle("forward+backward time over native torch eager" + (f" ({where})" if where else ""))
    figure.tight_layout()
    return figure


def _has_sweep(report) -> bool:
    return isinstance(report, dict) and isinstance(report.get("sweep"), dict) and bool(report["sweep"])


# ---------------------------------------------------------------------------------------------
# The public interface


def build_figure(plot_id: str, conformance_json=None, benchmark_json=None):
    """The matplotlib figure of ``plot_id`` (None for ``performance-scaling`` without a sweep: it is copied)."""
    with plt.rc_context(STYLE):
        if plot_id == "parity-heatmap":
            report = _read_json(conformance_json)
            if report is None or not report.get("matrix"):
                missing = "no conformance report given" if conformance_json is None else \
                    f"no conformance report at {Path(conformance_json).name}"
                return _draw_placeholder(f"Parity heat map: {missing}", PARITY_HOWTO)
            return _draw_parity(report, Path(conformance_json).name)
        if plot_id == "performance-scaling":
            report = _read_json(benchmark_json)
            return _draw_scaling(report, str(benchmark_json)) if _has_sweep(report) else None
        return _draw_curves(curve_plot(plot_id))


def captions(conformance_json=None, benchmark_json=None) -> dict:
    """Every plot id's caption, the two report plots' saying where their data came from."""
    out = {plot_id: caption for entries in LOSS_PLOTS.values() for plot_id, caption in entries}
    report = _read_json(conformance_json)
    if report is not None and report.get("matrix"):
        out["parity-heatmap"] = (
            f"Parity with PyTorch ({report.get('reference', '?')}): for each loss and backend, the worst relative "
            "error of the value and the gradients, per dtype, read from the conformance report "
            f"{Path(conformance_json).name} (python -m conformance). Hatched cells have no case of that dtype; a "
            "red box marks a failed case.")
    else:
        out["parity-heatmap"] = ("No conformance report was given to this build: run python -m conformance "
                                 "--out conformance-report and build with its conformance.json to see the "
                                 "parity heat map.")
    bench = _read_json(benchmark_json)
    if _has_sweep(bench):
        out["performance-scaling"] = (
            "forward+backward time of lossy_torch and torch.compile(lossy_torch) over native torch eager, for "
            "cross entropy over N and over C and mse_loss over size, drawn from the benchmark run "
            f"{Path(benchmark_json).name} (python -m benchmarks).")
    else:
        out["performance-scaling"] = (
            "forward+backward time of lossy_torch and torch.compile(lossy_torch) over native torch eager, for "
            "cross entropy over N and over C and mse_loss over size: the last measured plot, committed as "
            "docs/performance-scaling.png (no benchmark JSON was given to this build; python -m benchmarks "
            "writes benchmark-results/benchmarks.json).")
    return out


def render(outdir: Path, conformance_json: Path | None = None, benchmark_json: Path | None = None, *,
           only=None) -> dict:
    """Write ``<outdir>/<plot_id>.png`` for every plot (or the ids in ``only``); return ``{plot_id: path}``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ids = list(_PLOT_INDEX) + list(EXTRA_PLOTS)
    if only is not None:
        unknown = sorted(set(only) - set(ids))
        if unknown:
            raise KeyError(f"no plot named {unknown}; plots: {', '.join(ids)}")
        ids = [i for i in ids if i in set(only)]
    paths = {}
    for plot_id in ids:
        path = outdir / f"{plot_id}.png"
        figure = build_figure(plot_id, conformance_json, benchmark_json)
        if figure is None:  # performance-scaling without a sweep: the committed figure
            shutil.copyfile(COMMITTED_SCALING, path)
        else:
            with plt.rc_context(STYLE):
                figure.savefig(path, dpi=DPI, metadata=PNG_METADATA)
            plt.close(figure)
        paths[plot_id] = path
    return paths


LOSS_PLOTS: dict[str, list[tuple[str, str]]] = _loss_plots()
