"""Conformance cases: loss x options x shapes x dtypes, generated deterministically.

Every case is plain data (numpy arrays plus JSON-able options), so the same case
can be run on every backend, against live torch, or against a golden file.
Inputs are generated in float64 with a numpy ``Generator`` seeded from the loss
name, then rounded to the case's dtype here (float16 through numpy, bfloat16 by
round-to-nearest-even on the float32 bits), so every backend receives exactly
the same values. bfloat16 values are held in float32 arrays; ``Case.dtype`` says
what to build.

A registered loss without a generator in ``GENERATORS`` makes ``cases_for``
raise: a new loss cannot slip past the suite.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

import lossy_core

FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")


@dataclass
class Case:
    loss: str
    id: str
    dtype: str  # floating dtype of every floating array: float64 | float32 | float16 | bfloat16
    arrays: dict  # name -> numpy array (positional arrays and optional arrays, in the spec's order)
    options: dict = field(default_factory=dict)  # non-array keyword options (JSON-able)
    upstream_seed: int = 0
    # Documented deviations from torch: {"value" | "grad <name>": reason}; that array is not compared.
    known: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.loss}[{self.id}]"


def round_bfloat16(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 array holding the nearest bfloat16 values (round to nearest even)."""
    f = np.array(x, dtype=np.float32, copy=True)
    bits = f.view(np.uint32).astype(np.uint64)
    nan = np.isnan(f)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    out = bits.astype(np.uint32).view(np.float32).copy()
    out[nan] = np.nan
    return out


def cast(x: np.ndarray, dtype: str) -> np.ndarray:
    """Round a float64 array to ``dtype`` (bfloat16 held as float32)."""
    if dtype == "bfloat16":
        return round_bfloat16(x)
    return np.asarray(x, dtype=np.dtype(dtype))


class _Builder:
    """Collects the cases of one loss; ``add`` rounds floating arrays to the case dtype."""

    def __init__(self, loss: str):
        self.loss = loss
        self.spec = lossy_core.get(loss)
        self.rng = np.random.default_rng(zlib.crc32(loss.encode()))
        self.cases: list[Case] = []

    def add(self, id: str, dtype: str, options=None, **arrays):
        if any(c.id == f"{id}|{dtype}" for c in self.cases):
            raise ValueError(f"duplicate case id {self.loss}[{id}|{dtype}]")
        order = list(self.spec.arrays) + list(self.spec.optional_arrays)
        unknown = set(arrays) - set(order)
        if unknown:
            raise ValueError(f"{self.loss}: unknown arrays {unknown}")
        converted = {}
        for name in order:
            if name in arrays:
                a = np.asarray(arrays[name])
                converted[name] = cast(a, dtype) if a.dtype.kind == "f" else a
        self.cases.append(Case(self.loss, f"{id}|{dtype}", dtype, converted, dict(options or {}),
                               upstream_seed=len(self.cases) + 1))

    def normal(self, *shape, scale=1.0):
        return self.rng.standard_normal(shape) * scale

    def uniform(self, *shape, low=0.0, high=1.0):
        return self.rng.uniform(low, high, shape)


def _log_softmax(x, axis):
    m = np.max(np.where(np.isfinite(x), x, -np.inf), axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _softmax(x, axis):
    return np.exp(_log_softmax(x, axis))


# ---------------------------------------------------------------- regression ------

def _regression(b: _Builder):
    name = b.loss
    has_weight = "weight" in b.spec.optional_arrays
    param = {"smooth_l1_loss": "beta", "huber_loss": "delta"}.get(name)
    x, y = b.normal(4, 5), b.normal(4, 5)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"4x5 {red}", dtype, {"reduction": red}, input=x, target=y)
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "mean"):
            b.add(f"4x5 {red}", dtype, {"reduction": red}, input=x, target=y)
    b.add("0-d", "float64", {"reduction": "mean"}, input=np.array(0.7), target=np.array(-0.2))
    b.add("3-d 2x3x4 sum", "float64", {"reduction": "sum"}, input=b.normal(2, 3, 4), target=b.normal(2, 3, 4))
    for red in ("mean", "sum", "none"):  # torch: 'mean' of an empty tensor is NaN
        b.add(f"empty 0x5 {red}", "float64", {"reduction": red}, input=b.normal(0, 5), target=b.normal(0, 5))
    # broadcasting target (torch warns, then broadcasts)
    b.add("broadcast 3x4 vs 4", "float64", {"reduction": "mean"}, input=b.normal(3, 4), target=b.normal(4))
    # exact ties: zero difference, and |d| == beta / delta (dyadic values: exact in every dtype)
    t = np.array([[0.0, 0.5, -1.25, 2.0, 0.25, -0.5]])
    for dtype in ("float64", "float32"):
        diffs = np.array([[0.0, 1.0, -1.0, 0.5, -0.5, 2.0]])
        b.add("ties", dtype, {"reduction": "none"}, input=t + diffs, target=t)
        b.add("ties sum", dtype, {"reduction": "sum"}, input=t + diffs, target=t)
    if param:
        values = (0.0, 0.5, 2.0) if param == "beta" else (0.5, 2.0)
        for v in values:
            for dtype in ("float64", "float32"):
                b.add(f"{param}={v} none", dtype, {param: v, "reduction": "none"}, input=x, target=y)
            b.add(f"{param}={v} mean", "float64", {param: v, "reduction": "mean"}, input=x, target=y)
            b.add(f"{param}={v} ties", "float64", {param: v, "reduction": "none"},
                  input=t + np.array([[0.0, v, -v, v / 2, -2 * v, 1.0]]), target=t)
    if has_weight:
        w = b.uniform(4, 5, low=0.1, high=2.0)
        for red in ("none", "mean", "sum"):
            b.add(f"weight {red}", "float64", {"reduction": red}, input=x, target=y, weight=w)
        b.add("weight mean", "float32", {"reduction": "mean"}, input=x, target=y, weight=w)
        b.add("weight mean", "float16", {"reduction": "mean"}, input=x, target=y, weight=w)
        if param:
            b.add(f"weight {param}=0.5 mean", "float64", {param: 0.5, "reduction": "mean"},
                  input=x, target=y, weight=w)


# -------------------------------------------------------------------- binary ------

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _binary_cross_entropy(b: _Builder):
    p, y = _sigmoid(b.normal(4, 3, scale=2.0)), b.uniform(4, 3)
    hard = (b.uniform(4, 3) > 0.5).astype(np.float64)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"4x3 soft {red}", dtype, {"reduction": red}, input=p, target=y)
    b.add("4x3 hard mean", "float64", {"reduction": "mean"}, input=p, target=hard)
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "mean"):
            b.add(f"4x3 soft {red}", dtype, {"reduction": red}, input=p, target=y)
    w, wc = b.uniform(4, 3, low=0.1, high=2.0), b.uniform(3, low=0.1, high=2.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight 4x3 {red}", "float64", {"reduction": red}, input=p, target=y, weight=w)
        b.add(f"weight (3,) broadcast {red}", "float64", {"reduction": red}, input=p, target=y, weight=wc)
    b.add("weight (3,) broadcast mean", "float32", {"reduction": "mean"}, input=p, target=y, weight=wc)
    # probabilities of exactly 0 and 1: each log clamped at -100 (torch)
    pe = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.5])
    ye = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0])
    for dtype in ("float64", "float32"):
        b.add("p in {0,1} none", dtype, {"reduction": "none"}, input=pe, target=ye)
    # torch's float16 backward divides by max(p (1 - p), 1e-12), whose 1e-12 underflows to 0 in half:
    # 0/0 = NaN at p = y in {0, 1} (measured, torch 2.13 CPU). lossy computes half in float32 (DESIGN,
    # "Low precision") and gives torch's float32 gradient, 0: a documented deviation.
    b.add("p in {0,1} none", "float16", {"reduction": "none"}, input=pe, target=ye)
    b.cases[-1].known = {"grad input": "torch float16 gives NaN (0/0, its 1e-12 underflows in half) "
                                       "where lossy gives torch's float32 gradient 0"}
    b.add("p in {0,1} sum", "float64", {"reduction": "sum"}, input=pe, target=ye)
    b.add("0-d", "float64", {"reduction": "mean"}, input=np.array(0.3), target=np.array(1.0))
    b.add("2x3x2x2 mean", "float64", {"reduction": "mean"}, input=_sigmoid(b.normal(2, 3, 2, 2)),
          target=b.uniform(2, 3, 2, 2))
    for red in ("mean", "sum"):
        b.add(f"empty 0x3 {red}", "float64", {"reduction": red}, input=np.zeros((0, 3)), target=np.zeros((0, 3)))


def _binary_cross_entropy_with_logits(b: _Builder):
    x, y = b.normal(4, 3, scale=3.0), b.uniform(4, 3)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"4x3 {red}", dtype, {"reduction": red}, input=x, target=y)
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "mean"):
            b.add(f"4x3 {red}", dtype, {"reduction": red}, input=x, target=y)
    w, pw = b.uniform(4, 3, low=0.1, high=2.0), b.uniform(3, low=0.2, high=3.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight {red}", "float64", {"reduction": red}, input=x, target=y, weight=w)
        b.add(f"pos_weight (3,) {red}", "float64", {"reduction": red}, input=x, target=y, pos_weight=pw)
    b.add("weight (3,) + pos_weight (3,) mean", "float64", {"reduction": "mean"}, input=x, target=y,
          weight=b.uniform(3, low=0.1, high=2.0), pos_weight=pw)
    for dtype in ("float32", "float16"):
        b.add("weight + pos_weight none", dtype, {"reduction": "none"}, input=x, target=y, weight=w, pos_weight=pw)
    x4, y4 = b.normal(2, 3, 2, 2, scale=2.0), b.uniform(2, 3, 2, 2)
    pw4 = b.uniform(3, 1, 1, low=0.2, high=3.0)
    for red in ("none", "mean"):
        b.add(f"NCHW pos_weight (3,1,1) {red}", "float64", {"reduction": red}, input=x4, target=y4, pos_weight=pw4)
    b.add("NCHW pos_weight (3,1,1) sum", "float32", {"reduction": "sum"}, input=x4, target=y4, pos_weight=pw4)
    # saturated logits, and targets outside [0, 1] (torch does not range-check them)
    xs = np.array([1e4, -1e4, 100.0, -100.0, 1e4, -1e4, 30.0, -30.0])
    ys = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.5, 1.5])
    for dtype in ("float64", "float32"):
        b.add("saturated logits none", dtype, {"reduction": "none"}, input=xs, target=ys)
    b.add("saturated logits pos_weight sum", "float64", {"reduction": "sum"}, input=xs, target=ys,
          pos_weight=np.array([2.5]))
    b.add("0-d", "float64", {"reduction": "mean"}, input=np.array(-0.4), target=np.array(0.25))
    for red in ("mean", "sum"):
        b.add(f"empty 0x3 {red}", "float64", {"reduction": red}, input=np.zeros((0, 3)), target=np.zeros((0, 3)))


# ------------------------------------------------------------ classification ------

def _index_targets(b, shape, classes, dtype=np.int64):
    return b.rng.integers(0, classes, size=shape).astype(dtype)


def _classification(b: _Builder, *, log_probs: bool):
    """Shared by cross_entropy (logits) and nll_loss (log_softmax outputs)."""
    ce = not log_probs
    C = 4

    def inp(*shape, scale=2.0):
        z = b.normal(*shape, scale=scale)
        return _log_softmax(z, axis=1 if z.ndim > 1 else 0) if log_probs else z

    x, t = inp(6, C), _index_targets(b, (6,), C)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"(N,C) index {red}", dtype, {"reduction": red}, input=x, target=t)
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "mean"):
            b.add(f"(N,C) index {red}", dtype, {"reduction": red}, input=x, target=t)
    b.add("(C,) + () target mean", "float64", {"reduction": "mean"}, input=inp(C), target=np.array(2))
    b.add("(C,) + () target none", "float32", {"reduction": "none"}, input=inp(C), target=np.array(0))
    x4, t4 = inp(2, C, 3, 2), _index_targets(b, (2, 3, 2), C)
    for red in ("none", "mean", "sum"):
        b.add(f"(N,C,d1,d2) index {red}", "float64", {"reduction": red}, input=x4, target=t4)
    b.add("(N,C,d1,d2) index mean", "float32", {"reduction": "mean"}, input=x4, target=t4)
    w = b.uniform(C, low=0.2, high=2.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight {red}", "float64", {"reduction": red}, input=x, target=t, weight=w)
    b.add("weight (N,C,d1,d2) mean", "float32", {"reduction": "mean"}, input=x4, target=t4, weight=w)
    # ignore_index: the default -100 present in the targets, and a valid class (1)
    tdef = t.copy()
    tdef[[1, 4]] = -100
    for red in ("none", "mean"):
        b.add(f"targets -100 default ignore {red}", "float64", {"reduction": red}, input=x, target=tdef, weight=w)
    t1 = t.copy()
    t1[[0, 3]] = 1
    for red in ("none", "mean", "sum"):
        b.add(f"ignore_index=1 weight {red}", "float64", {"ignore_index": 1, "reduction": red},
              input=x, target=t1, weight=w)
    b.add("ignore_index=1 mean", "float32", {"ignore_index": 1, "reduction": "mean"}, input=x, target=t1)
    t4i = t4.copy()
    t4i[0, 0, :] = 2
    b.add("(N,C,d1,d2) ignore_index=2 mean", "float64", {"ignore_index": 2, "reduction": "mean"},
          input=x4, target=t4i, weight=w)
    # every target ignored: 'mean' is NaN, 'sum' 0 (torch)
    tall = np.full((6,), -100, dtype=np.int64)
    for red in ("none", "mean", "sum"):
        b.add(f"all ignored {red}", "float64", {"reduction": red}, input=x, target=tall)
    # uint8 class indices
    for red in ("mean", "none"):
        b.add(f"uint8 target {red}", "float64", {"reduction": red}, input=x, target=t.astype(np.uint8))
    # empty batch
    for red in ("mean", "sum", "none"):
        b.add(f"empty (0,C) {red}", "float64", {"reduction": red}, input=np.zeros((0, C)),
              target=np.zeros((0,), dtype=np.int64))
    if not ce:
        return

    # ---- cross_entropy only: probability targets, label smoothing, extreme logits
    p = _softmax(b.normal(6, C), axis=1)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"prob target {red}", dtype, {"reduction": red}, input=x, target=p)
    b.add("prob target mean", "float16", {"reduction": "mean"}, input=x, target=p)
    b.add("prob target mean", "bfloat16", {"reduction": "mean"}, input=x, target=p)
    p4 = _softmax(b.normal(2, C, 3, 2), axis=1)
    b.add("prob target (N,C,d1,d2) mean weight", "float64", {"reduction": "mean"}, input=x4, target=p4, weight=w)
    b.add("prob target weight sum", "float64", {"reduction": "sum"}, input=x, target=p, weight=w)
    b.add("prob target unnormalized", "float64", {"reduction": "none"}, input=x,
          target=b.uniform(6, C, low=-0.5, high=1.5))
    for ls in (0.1, 0.3):
        for red in ("none", "mean"):
            b.add(f"index ls={ls} {red}", "float64", {"label_smoothing": ls, "reduction": red}, input=x, target=t)
        b.add(f"prob ls={ls} mean", "float64", {"label_smoothing": ls, "reduction": "mean"}, input=x, target=p)
    b.add("index ls=0.2 mean", "float32", {"label_smoothing": 0.2, "reduction": "mean"}, input=x, target=t)
    b.add("prob ls=0.2 none weight", "float32", {"label_smoothing": 0.2, "reduction": "none"},
          input=x, target=p, weight=w)
    for red in ("none", "mean", "sum"):
        b.add(f"ls=0.2 weight ignore_index=1 {red}", "float64",
              {"label_smoothing": 0.2, "ignore_index": 1, "reduction": red}, input=x, target=t1, weight=w)
    b.add("ls=0.2 (N,C,d1,d2) weight ignore -100 mean", "float64", {"label_smoothing": 0.2, "reduction": "mean"},
          input=x4, target=np.where(t4i == 2, -100, t4), weight=w)
    b.add("ls=0.1 all ignored mean", "float64", {"label_smoothing": 0.1, "reduction": "mean"}, input=x, target=tall)
    b.add("ls=1.0 mean", "float64", {"label_smoothing": 1.0, "reduction": "mean"}, input=x, target=t)
    # extreme logits: +-1e4, and -inf for non-target classes (torch decides inf/NaN positions)
    xe = np.array([[1e4, -1e4, 0.0, 1.0], [-1e4, 1e4, 5.0, -5.0], [1e4, 1e4, -1e4, -1e4]])
    te = np.array([0, 0, 3])
    for dtype in ("float64", "float32"):
        b.add("logits +-1e4 none", dtype, {"reduction": "none"}, input=xe, target=te)
    b.add("logits +-1e4 ls=0.1 none", "float64", {"label_smoothing": 0.1, "reduction": "none"}, input=xe, target=te)
    xi = np.array([[2.0, -np.inf, 0.5, -np.inf], [-np.inf, 1.0, -1.0, 3.0], [0.0, 0.0, 0.0, -np.inf]])
    ti = np.array([0, 3, 1])
    for dtype in ("float64", "float32"):
        b.add("-inf logits none", dtype, {"reduction": "none"}, input=xi, target=ti)
    b.add("-inf logits mean", "float64", {"reduction": "mean"}, input=xi, target=ti)
    b.add("-inf logits ls=0.1 none", "float64", {"label_smoothing": 0.1, "reduction": "none"}, input=xi, target=ti)
    b.add("-inf logits prob target none", "float64", {"reduction": "none"}, input=xi,
          target=_softmax(b.normal(3, C), 1))
    pz = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.5, 0.0]])
    b.add("-inf logits prob target zeros at -inf none", "float64", {"reduction": "none"}, input=xi, target=pz)


def _cross_entropy(b):
    _classification(b, log_probs=False)


def _nll_loss(b):
    _classification(b, log_probs=True)


# ---------------------------------------------------------------- divergence ------

def _kl_div(b: _Builder):
    C = 5
    q = _log_softmax(b.normal(4, C), 1)
    p = _softmax(b.normal(4, C), 1)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum", "batchmean"):
            b.add(f"4x5 {red}", dtype, {"reduction": red}, input=q, target=p)
        b.add("log_target batchmean", dtype, {"reduction": "batchmean", "log_target": True},
              input=q, target=np.log(p))
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "batchmean"):
            b.add(f"4x5 {red}", dtype, {"reduction": red}, input=q, target=p)
    for red in ("none", "sum"):
        b.add(f"log_target {red}", "float64", {"reduction": red, "log_target": True}, input=q, target=np.log(p))
    # zero target probabilities: 0 log 0 = 0 (value); torch decides the target gradient there
    pz = p.copy()
    pz[0, :2] = 0.0
    pz[2, 4] = 0.0
    b.add("zero targets none", "float64", {"reduction": "none"}, input=q, target=pz)
    b.add("zero targets batchmean", "float32", {"reduction": "batchmean"}, input=q, target=pz)
    b.add("log_target -inf none", "float64", {"reduction": "none", "log_target": True}, input=q,
          target=np.where(pz > 0, np.log(np.where(pz > 0, pz, 1.0)), -np.inf))
    # broadcasting
    b.add("broadcast target (1,5) batchmean", "float64", {"reduction": "batchmean"}, input=q,
          target=_softmax(b.normal(1, C), 1))
    b.add("broadcast input (5,) vs target (3,5) sum", "float64", {"reduction": "sum"},
          input=_log_softmax(b.normal(C), 0), target=_softmax(b.normal(3, C), 1))
    b.add("3-d 2x3x4 batchmean", "float64", {"reduction": "batchmean"}, input=_log_softmax(b.normal(2, 3, 4), 1),
          target=_softmax(b.normal(2, 3, 4), 1))
    b.add("0-d batchmean", "float64", {"reduction": "batchmean"}, input=np.array(-0.5), target=np.array(0.4))
    for red in ("mean", "sum", "batchmean"):
        b.add(f"empty 0x5 {red}", "float64", {"reduction": red}, input=np.zeros((0, C)), target=np.zeros((0, C)))


# ------------------------------------------------------------- probabilistic ------

def _poisson_nll_loss(b: _Builder):
    x, y = b.normal(4, 3), np.floor(b.uniform(4, 3, high=6.0))  # counts 0..5: both sides of y > 1
    rate = b.uniform(4, 3, low=0.1, high=4.0)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"log_input {red}", dtype, {"reduction": red}, input=x, target=y)
            b.add(f"log_input full {red}", dtype, {"full": True, "reduction": red}, input=x, target=y)
        b.add("rate full mean", dtype, {"log_input": False, "full": True, "reduction": "mean"}, input=rate, target=y)
    # No bfloat16 log_input case: torch's bfloat16 exp(x) - y cancels (gradients 3-6% off float32's).
    b.add("log_input full none", "float16", {"full": True, "reduction": "none"}, input=x, target=y)
    for dtype in ("float16", "bfloat16"):
        b.add("rate mean", dtype, {"log_input": False, "reduction": "mean"}, input=rate, target=y)
    b.add("rate eps=0.5 none", "float64", {"log_input": False, "eps": 0.5, "reduction": "none"}, input=rate, target=y)
    # a zero rate (log(0 + eps)), and fractional targets on both sides of 1
    r0 = np.array([0.0, 0.5, 2.0, 0.0, 1.5])
    y0 = np.array([0.0, 0.5, 1.0, 3.0, 1.25])
    b.add("rate 0 full none", "float64", {"log_input": False, "full": True, "reduction": "none"}, input=r0, target=y0)
    # negative and zero targets are not validated; with full=True torch's target gradient there is NaN
    yn = np.array([-1.0, 0.0, 2.5, 0.3, 7.0])
    b.add("negative targets full none", "float64", {"full": True, "reduction": "none"}, input=b.normal(5), target=yn)
    b.add("broadcast target (1,3) sum", "float64", {"reduction": "sum"}, input=x, target=y[:1])
    b.add("0-d", "float64", {"full": True}, input=np.array(0.7), target=np.array(3.0))
    b.add("2x3x2 full mean", "float64", {"full": True}, input=b.normal(2, 3, 2), target=b.uniform(2, 3, 2, high=5.0))
    for red in ("mean", "sum"):
        b.add(f"empty 0x3 {red}", "float64", {"reduction": red}, input=np.zeros((0, 3)), target=np.zeros((0, 3)))


def _gaussian_nll_loss(b: _Builder):
    x, y = b.normal(4, 3), b.normal(4, 3)
    variances = {
        "var (4,3)": b.uniform(4, 3, low=0.1, high=2.0),
        "var (4,)": b.uniform(4, low=0.1, high=2.0),
        "var (4,1)": b.uniform(4, 1, low=0.1, high=2.0),
        "var (1,3)": b.uniform(1, 3, low=0.1, high=2.0),
    }
    for label, v in variances.items():
        for red in ("none", "mean", "sum"):
            b.add(f"{label} {red}", "float64", {"reduction": red}, input=x, target=y, var=v)
        b.add(f"{label} full mean", "float64", {"full": True, "reduction": "mean"}, input=x, target=y, var=v)
        b.add(f"{label} full none", "float32", {"full": True, "reduction": "none"}, input=x, target=y, var=v)
    for dtype in ("float16", "bfloat16"):
        b.add("var (4,3) mean", dtype, {"reduction": "mean"}, input=x, target=y, var=variances["var (4,3)"])
    # variances below eps (and 0): clamped, the gradient passes straight through the clamp
    vs = np.array([0.0, 1e-8, 1e-6, 0.5, 2.0])
    xs, ys = b.normal(5), b.normal(5)
    b.add("var below eps none", "float64", {"reduction": "none"}, input=xs, target=ys, var=vs)
    b.add("var below eps=0.1 none", "float64", {"eps": 0.1, "reduction": "none"}, input=xs, target=ys, var=vs)
    b.add("target broadcast (4,1) mean", "float64", {"reduction": "mean"}, input=x, target=y[:, :1],
          var=variances["var (4,3)"])
    b.add("NCHW var (2,1,2,2) mean", "float64", {"reduction": "mean"}, input=b.normal(2, 3, 2, 2),
          target=b.normal(2, 3, 2, 2), var=b.uniform(2, 1, 2, 2, low=0.1, high=2.0))
    b.add("1-d var (1,) none", "float64", {"reduction": "none"}, input=xs, target=ys, var=np.array([0.7]))
    b.add("0-d", "float64", {"full": True}, input=np.array(0.3), target=np.array(-0.2), var=np.array(0.4))
    for red in ("mean", "sum"):
        b.add(f"empty 0x3 {red}", "float64", {"reduction": red}, input=np.zeros((0, 3)), target=np.zeros((0, 3)),
              var=np.ones((0, 3)))


# -------------------------------------------------------------------- margin ------

def _pm1(b, *shape, zero=False):
    """+-1 targets (and some 0s, torch's silent case, when ``zero``)."""
    values = np.array([-1.0, 1.0, 0.0]) if zero else np.array([-1.0, 1.0])
    return b.rng.choice(values, size=shape)


def _margin_ranking_loss(b: _Builder):
    x1, x2, y = b.normal(6), b.normal(6), _pm1(b, 6)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"(6,) {red}", dtype, {"reduction": red}, input1=x1, input2=x2, target=y)
        b.add("margin=0.5 none", dtype, {"margin": 0.5, "reduction": "none"}, input1=x1, input2=x2, target=y)
    for dtype in ("float16", "bfloat16"):
        b.add("margin=0.5 mean", dtype, {"margin": 0.5, "reduction": "mean"}, input1=x1, input2=x2, target=y)
    b.add("y=0 and negative margin none", "float64", {"margin": -0.2, "reduction": "none"}, input1=x1, input2=x2,
          target=_pm1(b, 6, zero=True))
    # the hinge exactly at 0: torch's clamp_min passes the gradient there
    b.add("z = 0 none", "float64", {"margin": 1.0, "reduction": "none"}, input1=np.array([2.0, 0.0, 1.0]),
          input2=np.array([1.0, 1.0, 1.0]), target=np.array([1.0, -1.0, 1.0]))
    b.add("(4,3) broadcast (1,3) and (4,1) mean", "float64", {"margin": 0.1}, input1=b.normal(4, 3),
          input2=b.normal(1, 3), target=_pm1(b, 4, 1))
    b.add("int64 target sum", "float64", {"reduction": "sum"}, input1=x1, input2=x2, target=y.astype(np.int64))
    b.add("0-d", "float64", {}, input1=np.array(0.2), input2=np.array(0.5), target=np.array(1.0))
    b.add("empty mean", "float64", {}, input1=np.zeros(0), input2=np.zeros(0), target=np.zeros(0))


def _hinge_embedding_loss(b: _Builder):
    x, y = b.normal(4, 3, scale=1.5), _pm1(b, 4, 3)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"4x3 {red}", dtype, {"reduction": red}, input=x, target=y)
        b.add("margin=2 none", dtype, {"margin": 2.0, "reduction": "none"}, input=x, target=y)
    for dtype in ("float16", "bfloat16"):
        b.add("4x3 mean", dtype, {"reduction": "mean"}, input=x, target=y)
    b.add("y in {-1,0,1,2} none", "float64", {"margin": 0.5, "reduction": "none"}, input=b.normal(8),
          target=np.array([-1.0, 0.0, 1.0, 2.0, -1.0, 0.0, 1.0, -2.0]))
    b.add("margin - x = 0 none", "float64", {"reduction": "none"}, input=np.array([1.0, 1.0, 0.5]),
          target=np.array([-1.0, 0.0, -1.0]))
    b.add("int64 target mean", "float64", {}, input=x, target=y.astype(np.int64))
    b.add("broadcast target (3,) mean", "float64", {}, input=x, target=_pm1(b, 3))
    b.add("0-d", "float64", {}, input=np.array(0.4), target=np.array(-1.0))
    b.add("empty sum", "float64", {"reduction": "sum"}, input=np.zeros((0, 3)), target=np.zeros((0, 3)))


def _soft_margin_loss(b: _Builder):
    x, y = b.normal(4, 3, scale=3.0), _pm1(b, 4, 3)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"4x3 {red}", dtype, {"reduction": red}, input=x, target=y)
    for dtype in ("float16", "bfloat16"):
        b.add("4x3 none", dtype, {"reduction": "none"}, input=x, target=y)
    b.add("y=0 (log 2) and y=2 none", "float64", {"reduction": "none"}, input=b.normal(4),
          target=np.array([0.0, 2.0, 1.0, -1.0]))
    # large margins, short of torch's overflow of exp (beyond ~710 in float64, ~88 in float32)
    b.add("large |x| none", "float64", {"reduction": "none"}, input=np.array([50.0, -50.0, 300.0, -300.0]),
          target=np.array([1.0, 1.0, -1.0, -1.0]))
    b.add("large |x| none", "float32", {"reduction": "none"}, input=np.array([20.0, -20.0, 60.0, -60.0]),
          target=np.array([1.0, 1.0, -1.0, -1.0]))
    b.add("broadcast target (3,) mean", "float64", {}, input=x, target=_pm1(b, 3))
    b.add("int64 target sum", "float64", {"reduction": "sum"}, input=x, target=y.astype(np.int64))
    b.add("0-d", "float64", {}, input=np.array(-0.4), target=np.array(1.0))
    b.add("empty mean", "float64", {}, input=np.zeros((0, 3)), target=np.zeros((0, 3)))


def _cosine_embedding_loss(b: _Builder):
    a, c, y = b.normal(6, 5), b.normal(6, 5), _pm1(b, 6)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"(6,5) {red}", dtype, {"reduction": red}, input1=a, input2=c, target=y)
        b.add("margin=-0.3 none", dtype, {"margin": -0.3, "reduction": "none"}, input1=a, input2=c, target=y)
    for dtype in ("float16", "bfloat16"):
        b.add("(6,5) mean", dtype, {"reduction": "mean"}, input1=a, input2=c, target=y)
    b.add("y=0 gives 0 none", "float64", {"margin": 0.1, "reduction": "none"}, input1=a, input2=c,
          target=_pm1(b, 6, zero=True))
    # a zero vector (cos = 0 through the 1e-12 epsilon) and parallel vectors
    az = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    cz = np.array([[1.0, 2.0, 2.0], [2.0, 4.0, 6.0], [0.0, 1.0, 0.0]])
    b.add("zero and parallel vectors none", "float64", {"reduction": "none"}, input1=az, input2=cz,
          target=np.array([1.0, -1.0, -1.0]))
    b.add("(1,5) broadcast against (6,5) sum", "float64", {"margin": 0.2, "reduction": "sum"},
          input1=b.normal(1, 5), input2=c, target=y)
    b.add("int64 target mean", "float64", {"margin": 0.2}, input1=a, input2=c, target=y.astype(np.int64))
    b.add("(D,) with 0-d target y=1", "float64", {}, input1=b.normal(5), input2=b.normal(5), target=np.array(1.0))
    b.add("(D,) with 0-d target y=-1", "float64", {"margin": -0.5}, input1=b.normal(5), input2=b.normal(5),
          target=np.array(-1.0))
    b.add("empty (0,5) mean", "float64", {}, input1=np.zeros((0, 5)), input2=np.zeros((0, 5)), target=np.zeros(0))

# ---------------------------------------------------------------- multilabel ------

def _multilabel_soft_margin_loss(b: _Builder):
    x, y = b.normal(5, 4, scale=2.0), (b.uniform(5, 4) > 0.5).astype(np.float64)
    w = b.uniform(4, low=0.2, high=2.0)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"(N,C) {red}", dtype, {"reduction": red}, input=x, target=y)
            b.add(f"(N,C) weight (C) {red}", dtype, {"reduction": red}, input=x, target=y, weight=w)
    for dtype in ("float16", "bfloat16"):
        b.add("(N,C) mean", dtype, {"reduction": "mean"}, input=x, target=y)
    b.add("(C,) none", "float64", {"reduction": "none"}, input=b.normal(4), target=b.uniform(4))
    b.add("(2,3,C) soft targets none", "float64", {"reduction": "none"}, input=b.normal(2, 3, 4),
          target=b.uniform(2, 3, 4))
    b.add("weight (N,C) sum", "float64", {"reduction": "sum"}, input=x, target=y, weight=b.uniform(5, 4))
    b.add("int64 target mean", "float64", {"reduction": "mean"}, input=x, target=y.astype(np.int64))
    b.add("large logits none", "float64", {"reduction": "none"}, input=np.array([[80.0, -80.0, 1e3, -1e3]]),
          target=np.array([[0.0, 1.0, 1.0, 0.0]]))
    b.add("empty 0xC sum", "float64", {"reduction": "sum"}, input=b.normal(0, 4), target=b.normal(0, 4))
    b.add("empty 0xC mean", "float64", {"reduction": "mean"}, input=b.normal(0, 4), target=b.normal(0, 4))


def _multilabel_margin_loss(b: _Builder):
    x = b.normal(4, 5)
    # rows: the documented layout (targets then -1), duplicates, every class a target, no target,
    # entries after the first -1 (ignored)
    t = np.array([[3, 0, -1, 1, 2], [1, 1, -1, 0, 0], [0, 1, 2, 3, 4], [-1, 2, 3, 0, 1]], dtype=np.int64)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"(N,C) {red}", dtype, {"reduction": red}, input=x, target=t)
    # torch's documented example: 0.85 (torch.nn.MultiLabelMarginLoss docstring)
    b.add("docs example", "float64", {"reduction": "mean"}, input=np.array([[0.1, 0.2, 0.4, 0.8]]),
          target=np.array([[3, 0, -1, 1]], dtype=np.int64))
    b.add("(C,) none", "float64", {"reduction": "none"}, input=b.normal(5), target=t[0])
    b.add("0-d sum", "float64", {"reduction": "sum"}, input=np.array(0.3), target=np.array(0, dtype=np.int64))
    # hinge exactly at 0 (x_j - x_i = 1, dyadic): torch's gradient there is 0
    b.add("ties none", "float64", {"reduction": "none"}, input=np.array([[1.5, 0.5, 0.25, 1.5]]),
          target=np.array([[0, -1, 0, 0]], dtype=np.int64))
    b.add("empty 0xC none", "float64", {"reduction": "none"}, input=b.normal(0, 5),
          target=np.zeros((0, 5), dtype=np.int64))
    b.add("(C,) sum", "float32", {"reduction": "sum"}, input=b.normal(5), target=t[1])
    b.add("one class (N,1) none", "float64", {"reduction": "none"}, input=b.normal(3, 1),
          target=np.array([[0], [-1], [0]], dtype=np.int64))
    wide = b.rng.integers(-1, 7, (6, 7)).astype(np.int64)  # random rows: -1 anywhere, duplicates
    for dtype in ("float64", "float32"):
        b.add("random 6x7 mean", dtype, {"reduction": "mean"}, input=b.normal(6, 7), target=wide)


def _multi_margin_loss(b: _Builder):
    x, t = b.normal(6, 4), _index_targets(b, (6,), 4)
    w = b.uniform(4, low=0.2, high=2.0)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            for p in (1, 2):
                b.add(f"(N,C) p={p} {red}", dtype, {"p": p, "reduction": red}, input=x, target=t)
            b.add(f"weight {red}", dtype, {"reduction": red}, input=x, target=t, weight=w)
    for margin in (0.5, 2.0, -0.5):
        b.add(f"margin={margin} p=2 weight none", "float64", {"p": 2, "margin": margin, "reduction": "none"},
              input=x, target=t, weight=w)
    b.add("(C,) + () target none", "float64", {"reduction": "none"}, input=b.normal(4), target=np.array(2))
    b.add("(C,) + (1,) target none", "float64", {"reduction": "none"}, input=b.normal(4), target=np.array([1]))
    b.add("0-d input", "float64", {"reduction": "sum"}, input=np.array(0.3), target=np.array(0))
    # the docs' comparison point (loss-landscape.md: scores [1, 2, 3], y = 0 give 1.667 in torch)
    b.add("scores 1,2,3 y=0", "float64", {"reduction": "mean"}, input=np.array([[1.0, 2.0, 3.0]]),
          target=np.array([0]))
    # hinge exactly at 0 (margin - x_y + x_i = 0, dyadic): torch's gradient there is 0
    b.add("ties none", "float64", {"reduction": "none"}, input=np.array([[1.5, 0.5, 0.25]]), target=np.array([0]))
    b.add("empty 0xC sum", "float64", {"reduction": "sum"}, input=b.normal(0, 4),
          target=np.zeros((0,), dtype=np.int64))
    b.cases[-1].known = {"value": "torch 2.13 CPU returns uninitialized memory for an empty batch's 'sum'/'mean' "
                                  "(measured: 6.9e-310, -2.8e22); lossy gives 0 (sum) and NaN (mean)"}


# ---------------------------------------------------------------- embedding -------

def _triplet_common(b: _Builder, *, extra_options):
    a, p, n = b.normal(5, 4), b.normal(5, 4), b.normal(5, 4)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            for swap in (False, True):
                b.add(f"(N,D) swap={swap} {red}", dtype, {"swap": swap, "reduction": red},
                      anchor=a, positive=p, negative=n)
    for dtype in ("float16", "bfloat16"):
        b.add("(N,D) mean", dtype, {"reduction": "mean"}, anchor=a, positive=p, negative=n)
    b.cases[-1].known = {"grad anchor": "torch takes the difference and the norm in bfloat16, lossy in float32: "
                                        "gradients differ by up to 4% (measured 3.7%)"}
    for margin in (0.25, 3.0):
        b.add(f"margin={margin} swap none", "float64", {"margin": margin, "swap": True, "reduction": "none"},
              anchor=a, positive=p, negative=n)
    b.add("(D,) none", "float64", {"reduction": "none"}, anchor=b.normal(4), positive=b.normal(4),
          negative=b.normal(4))
    b.add("0-d sum", "float64", {"reduction": "sum", "margin": 3.0}, anchor=np.array(0.5), positive=np.array(-0.25),
          negative=np.array(1.5))
    b.add("(2,3,D) swap none", "float64", {"swap": True, "reduction": "none"}, anchor=b.normal(2, 3, 4),
          positive=b.normal(2, 3, 4), negative=b.normal(2, 3, 4))
    b.add("broadcast negative (1,D) mean", "float64", {"reduction": "mean"}, anchor=a, positive=p,
          negative=b.normal(1, 4))
    # swap tie: a - n and p - n are permutations of each other, so d(a, n) == d(p, n) exactly (eps
    # included); the minimum splits its gradient between them
    b.add("swap tie none", "float64", {"swap": True, "reduction": "none"}, anchor=np.array([[1.5, 2.5, 0.5]]),
          positive=np.array([[2.5, 1.5, 0.5]]), negative=np.array([[0.5, 0.5, 0.5]]))
    b.add("empty (0,D) sum", "float64", {"reduction": "sum"}, anchor=b.normal(0, 4), positive=b.normal(0, 4),
          negative=b.normal(0, 4))
    b.add("empty (0,D) mean", "float64", {"reduction": "mean"}, anchor=b.normal(0, 4), positive=b.normal(0, 4),
          negative=b.normal(0, 4))
    for options in extra_options:
        for dtype in ("float64", "float32"):
            b.add(" ".join(f"{k}={v}" for k, v in options.items()), dtype, dict(options), anchor=a, positive=p,
                  negative=n)


def _triplet_margin_loss(b: _Builder):
    extra = [{"p": p, "swap": True, "reduction": "none"} for p in (1.0, 3.0, 0.5, float("inf"))]
    extra += [{"eps": 0.0, "reduction": "none"}, {"eps": 0.1, "p": 1.0, "reduction": "sum"}]
    _triplet_common(b, extra_options=extra)
    # anchor == positive with eps = 0: the norm at 0, whose gradient torch defines as 0
    z, neg = np.zeros((2, 3)), np.full((2, 3), 0.1)
    for p in (2.0, 1.0, 3.0, 0.5, float("inf")):
        b.add(f"a == p eps=0 p={p} none", "float64", {"eps": 0.0, "p": p, "reduction": "none"}, anchor=z,
              positive=z, negative=neg)
    # p = inf with tied maxima: the gradient is split evenly between them
    b.add("p=inf ties eps=0 swap", "float64", {"eps": 0.0, "p": float("inf"), "swap": True, "reduction": "sum"},
          anchor=np.zeros((2, 3)), positive=np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]]),
          negative=np.array([[0.0, 2.0, 0.0], [0.0, 1.0, -1.0]]))


def _triplet_margin_with_distance_loss(b: _Builder):
    _triplet_common(b, extra_options=[{"margin": 0.5, "reduction": "sum"}])


# ---------------------------------------------------------------- sequence ------

def _ctc_loss(b: _Builder):
    """CTC: padded and concatenated targets, repeats (which need a blank between them),
    varying and zero lengths, impossible alignments (inf; NaN gradient, 0 with zero_infinity),
    a non-zero blank, unnormalised log_probs (torch's gradient is not the free derivative there),
    and one unbatched sequence. torch's CPU kernel has float32/float64 only."""
    T, N, C, S = 8, 4, 5, 4
    x = _log_softmax(b.normal(T, N, C, scale=2.0), axis=2)
    t = b.rng.integers(1, C, size=(N, S)).astype(np.int64)
    t[0, :3] = [2, 2, 3]  # a repeat
    il = np.array([8, 7, 5, 3], dtype=np.int64)
    tl = np.array([4, 3, 2, 0], dtype=np.int64)
    concat = np.concatenate([t[n, : tl[n]] for n in range(N)])
    # Few cases: each option set compiles anew on jax (seconds each on a small CPU).
    for dtype, reductions in (("float64", ("none", "mean", "sum")), ("float32", ("mean",))):
        for red in reductions:
            b.add(f"padded {red}", dtype, {"reduction": red}, log_probs=x, targets=t, input_lengths=il,
                  target_lengths=tl)
            b.add(f"concatenated {red}", dtype, {"reduction": red}, log_probs=x, targets=concat,
                  input_lengths=il, target_lengths=tl)
    b.add("int32 lengths and targets mean", "float64", {"reduction": "mean"}, log_probs=x,
          targets=t.astype(np.int32), input_lengths=il.astype(np.int32), target_lengths=tl.astype(np.int32))
    # impossible: [2, 2, 3] needs 4 frames; sample 2 has an empty input and a non-empty target
    il_bad = np.array([3, 7, 0, 0], dtype=np.int64)
    for zero_infinity, red in ((False, "none"), (False, "mean"), (True, "none"), (True, "sum")):
        b.add(f"impossible zero_infinity={zero_infinity} {red}", "float64",
              {"reduction": red, "zero_infinity": zero_infinity}, log_probs=x, targets=t,
              input_lengths=il_bad, target_lengths=tl)
    tb = np.where(t == C - 1, 0, t)
    b.add(f"blank={C - 1} none", "float64", {"blank": C - 1, "reduction": "none"}, log_probs=x, targets=tb,
          input_lengths=il, target_lengths=tl)
    b.add("unnormalised log_probs sum", "float64", {"reduction": "sum"}, log_probs=b.normal(T, N, C),
          targets=t, input_lengths=il, target_lengths=tl)
    b.add("unbatched (T,C) mean", "float64", {"reduction": "mean"}, log_probs=x[:, 0], targets=t[0, :3],
          input_lengths=np.array(8), target_lengths=np.array(3))
    b.add("unbatched (T,C) padded (1,S) target none", "float64", {"reduction": "none"}, log_probs=x[:, 1],
          targets=t[1:2], input_lengths=np.array([7]), target_lengths=np.array([3]))
    x_long = _log_softmax(b.normal(30, 2, 6), axis=2)
    t_long = b.rng.integers(1, 6, size=(2, 10)).astype(np.int64)
    # float64: over 30 frames torch's float32 kernel and this one each differ from the float64 gradient by
    # ~4e-5 relative (measured), beyond the float32 tolerance; the short float32 cases above pass.
    b.add("T=30 S=10 mean", "float64", {"reduction": "mean"}, log_probs=x_long, targets=t_long,
          input_lengths=np.array([30, 24]), target_lengths=np.array([10, 7]))


# ------------------------------------------------------------ focal ------

def _sigmoid_focal_loss(b: _Builder):
    x, hard = b.normal(4, 3, scale=2.5), (b.uniform(4, 3) > 0.6).astype(np.float64)
    soft = b.uniform(4, 3)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"4x3 hard {red}", dtype, {"reduction": red}, inputs=x, targets=hard)
    for dtype in ("float16", "bfloat16"):
        b.add("4x3 hard sum", dtype, {"reduction": "sum"}, inputs=x, targets=hard)
    for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
        for alpha in (0.25, -1, None, 0.9):
            b.add(f"gamma={gamma} alpha={alpha} soft none", "float64",
                  {"reduction": "none", "gamma": gamma, "alpha": alpha}, inputs=x, targets=soft)
        b.add(f"gamma={gamma} hard mean", "float32", {"reduction": "mean", "gamma": gamma}, inputs=x, targets=hard)
    w, wc, pw = b.uniform(4, 3, low=0.1, high=2.0), b.uniform(3, low=0.1, high=2.0), b.uniform(3, low=0.2, high=3.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight {red}", "float64", {"reduction": red}, inputs=x, targets=soft, weight=w)
        b.add(f"weight (3,) + pos_weight (3,) {red}", "float64", {"reduction": red, "gamma": 1.5},
              inputs=x, targets=hard, weight=wc, pos_weight=pw)
    b.add("pos_weight soft none", "float32", {"reduction": "none"}, inputs=x, targets=soft, pos_weight=pw)
    for gamma in (0.0, 0.5, 1.5, 2.0):  # YOLOv5's QFocalLoss factor |y - sigmoid(x)|^gamma
        b.add(f"quality gamma={gamma} soft none", "float64",
              {"reduction": "none", "gamma": gamma, "modulation": "quality"}, inputs=x, targets=soft)
    b.add("quality pos_weight hard mean", "float32", {"reduction": "mean", "modulation": "quality"},
          inputs=x, targets=hard, pos_weight=pw)
    b.add("normalizer sum", "float64", {"reduction": "sum", "normalizer": 4.0}, inputs=x, targets=hard)
    b.add("normalizer none", "float64", {"reduction": "none", "normalizer": 2.5}, inputs=x, targets=soft)
    x4, y4 = b.normal(2, 3, 2, 2, scale=2.0), (b.uniform(2, 3, 2, 2) > 0.5).astype(np.float64)
    b.add("NCHW mean", "float64", {"reduction": "mean"}, inputs=x4, targets=y4)
    # saturated logits: torchvision's gradient is finite for gamma >= 1 (and NaN below, see tests/test_focal.py)
    xs = np.array([1e4, -1e4, 100.0, -100.0, 1e4, -1e4, 30.0, -30.0])
    ys = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    for dtype in ("float64", "float32"):
        for gamma in (1.0, 2.0, 5.0):
            b.add(f"saturated gamma={gamma} none", dtype, {"reduction": "none", "gamma": gamma}, inputs=xs, targets=ys)
    b.add("0-d", "float64", {"reduction": "mean"}, inputs=np.array(-0.4), targets=np.array(1.0))
    for red in ("none", "mean", "sum"):
        b.add(f"empty 0x3 {red}", "float64", {"reduction": red}, inputs=np.zeros((0, 3)), targets=np.zeros((0, 3)))


def _binary_focal_loss(b: _Builder):
    p, soft = _sigmoid(b.normal(4, 3, scale=2.0)), b.uniform(4, 3)
    hard = (b.uniform(4, 3) > 0.6).astype(np.float64)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"4x3 hard {red}", dtype, {"reduction": red}, input=p, target=hard)
    for dtype in ("float16", "bfloat16"):
        b.add("4x3 hard mean", dtype, {"reduction": "mean"}, input=p, target=hard)
    for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
        for alpha in (0.25, -1, None):
            b.add(f"gamma={gamma} alpha={alpha} soft none", "float64",
                  {"reduction": "none", "gamma": gamma, "alpha": alpha}, input=p, target=soft)
    w = b.uniform(3, low=0.1, high=2.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight (3,) {red}", "float64", {"reduction": red, "gamma": 1.5}, input=p, target=soft, weight=w)
    b.add("0-d", "float64", {"reduction": "mean"}, input=np.array(0.3), target=np.array(1.0))
    for red in ("mean", "sum"):
        b.add(f"empty 0x3 {red}", "float64", {"reduction": red}, input=np.zeros((0, 3)), target=np.zeros((0, 3)))


def _softmax_focal_loss(b: _Builder):
    C = 5
    x, t = b.normal(6, C, scale=2.5), _index_targets(b, (6,), C)
    t_ignored = t.copy()
    t_ignored[1] = -100
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"(6,5) index {red}", dtype, {"reduction": red}, input=x, target=t_ignored)
    for dtype in ("float16", "bfloat16"):
        b.add("(6,5) index mean", dtype, {"reduction": "mean"}, input=x, target=t)
    for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
        b.add(f"gamma={gamma} index none", "float64", {"reduction": "none", "gamma": gamma}, input=x, target=t)
        b.add(f"gamma={gamma} alpha=0.25 index mean", "float64", {"reduction": "mean", "gamma": gamma, "alpha": 0.25},
              input=x, target=t)
    w = b.uniform(C, low=0.2, high=2.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight ignore_index=2 {red}", "float64", {"reduction": red, "ignore_index": 2}, input=x, target=t,
              weight=w)
    x3, t3 = b.normal(2, C, 3, scale=2.0), _index_targets(b, (2, 3), C)
    b.add("(2,5,3) weight mean", "float64", {"reduction": "mean", "gamma": 1.5}, input=x3, target=t3, weight=w)
    b.add("(5,) single none", "float64", {"reduction": "none"}, input=x[0], target=np.array(3))
    q = _softmax(b.normal(6, C), 1)
    for red in ("none", "mean", "sum"):
        b.add(f"probabilities {red}", "float64", {"reduction": red, "gamma": 1.0}, input=x, target=q)
    b.add("probabilities weight mean", "float64", {"reduction": "mean", "gamma": 2.0}, input=x, target=q, weight=w)
    b.add("probabilities mean", "float32", {"reduction": "mean"}, input=x, target=q)
    xs = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [30.0, -30.0, 0.0]])
    for gamma in (1.0, 2.0, 5.0):  # the reference's gradient is finite at saturation for gamma >= 1
        b.add(f"saturated gamma={gamma} none", "float64", {"reduction": "none", "gamma": gamma}, input=xs,
              target=np.array([0, 0, 1]))
    for red in ("mean", "sum"):
        b.add(f"empty 0x5 {red}", "float64", {"reduction": red}, input=np.zeros((0, C)),
              target=np.zeros((0,), dtype=np.int64))


# ------------------------------------------------------------- focal variants ------

def _score_targets(b, *shape):
    """Quality/IoU targets: 0 for most entries (negatives), a score in (0, 1] elsewhere."""
    scores = b.uniform(*shape, low=0.05, high=1.0)
    return np.where(b.uniform(*shape) < 0.3, scores, 0.0)


# Saturated logits with targets at 0, 1 and between (every loss must stay finite there).
_SATURATED_X = np.array([1e4, -1e4, 1e4, -1e4, 100.0, -100.0, 30.0, -30.0])
_SATURATED_Y = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.25, 1.0, 0.0])


def _quality_like(b: _Builder, hyper: str, values):
    """Shared by quality_focal_loss (beta) and varifocal_loss (gamma, alpha, iou_weighted)."""
    x, y = b.normal(6, 4, scale=3.0), _score_targets(b, 6, 4)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"6x4 {red}", dtype, {"reduction": red}, input=x, target=y)
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "mean"):
            b.add(f"6x4 {red}", dtype, {"reduction": red}, input=x, target=y)
    for v in values:
        b.add(f"{hyper}={v} none", "float64", {hyper: v, "reduction": "none"}, input=x, target=y)
        b.add(f"{hyper}={v} saturated none", "float64", {hyper: v, "reduction": "none"},
              input=_SATURATED_X, target=_SATURATED_Y)
        if 0 < v < 1:  # the pow reference differentiates 0^v (inf * 0) where sigmoid(x) == y in float64
            b.cases[-1].known = {"grad input": f"the pow reference gives NaN at |y - sigmoid(x)| = 0 with {hyper} < 1 "
                                               "(inf * 0); lossy's log-space gradient is the finite limit, 0"}
    b.add(f"{hyper}=1.0 mean", "float32", {hyper: 1.0, "reduction": "mean"}, input=x, target=y)
    b.add("soft targets everywhere mean", "float64", {"reduction": "mean"}, input=x, target=b.uniform(6, 4))
    w, wc = b.uniform(6, 4, low=0.1, high=2.0), b.uniform(4, low=0.1, high=2.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight {red}", "float64", {"reduction": red}, input=x, target=y, weight=w)
    b.add("weight (4,) broadcast mean", "float32", {"reduction": "mean"}, input=x, target=y, weight=wc)
    for dtype in ("float64", "float32"):
        b.add("saturated none", dtype, {"reduction": "none"}, input=_SATURATED_X, target=_SATURATED_Y)
    b.add("NCHW 2x3x2x2 mean", "float64", {"reduction": "mean"}, input=b.normal(2, 3, 2, 2),
          target=_score_targets(b, 2, 3, 2, 2))
    b.add("0-d", "float64", {"reduction": "mean"}, input=np.array(-0.4), target=np.array(0.7))
    for red in ("mean", "sum", "none"):
        b.add(f"empty 0x4 {red}", "float64", {"reduction": red}, input=np.zeros((0, 4)), target=np.zeros((0, 4)))


def _quality_focal_loss(b: _Builder):
    _quality_like(b, "beta", (0.0, 0.5, 1.0, 2.0, 5.0))


def _varifocal_loss(b: _Builder):
    # gamma < 1 at a positive's exact tie would be NaN in the pow reference; negatives have q = 0 < sigmoid(x)
    _quality_like(b, "gamma", (0.0, 0.5, 1.0, 2.0, 5.0))
    x, y = b.normal(6, 4, scale=3.0), _score_targets(b, 6, 4)
    for alpha in (0.25, 1.0):
        b.add(f"alpha={alpha} mean", "float64", {"alpha": alpha, "reduction": "mean"}, input=x, target=y)
    for red in ("none", "sum"):
        b.add(f"iou_weighted=False {red}", "float64", {"iou_weighted": False, "reduction": red}, input=x, target=y)
    b.add("iou_weighted=False gamma=0 alpha=1 mean", "float32",
          {"iou_weighted": False, "gamma": 0.0, "alpha": 1.0, "reduction": "mean"}, input=x, target=y)


def _distribution_focal_loss(b: _Builder):
    bins = 8
    x = b.normal(6, bins, scale=2.0)
    y = b.uniform(6, low=0.0, high=bins - 1.0)
    y[0], y[1] = 0.0, 3.0  # integer distances: the left bin only
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"6x{bins} {red}", dtype, {"reduction": red}, input=x, target=y)
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "mean"):
            b.add(f"6x{bins} {red}", dtype, {"reduction": red}, input=x, target=np.minimum(np.round(y * 4) / 4, bins - 1.25))
    w = b.uniform(6, low=0.1, high=2.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight {red}", "float64", {"reduction": red}, input=x, target=y, weight=w)
    b.add("weight mean", "float32", {"reduction": "mean"}, input=x, target=y, weight=w)
    b.add("(2,3,4 sides) x bins mean", "float64", {"reduction": "mean"}, input=b.normal(2, 3, 4, bins),
          target=b.uniform(2, 3, 4, low=0.0, high=bins - 1.0))
    b.add("(bins,) + () target none", "float64", {"reduction": "none"}, input=b.normal(bins), target=np.array(2.5))
    xs = np.array([[1e4, -1e4, 0.0, 5.0], [-1e4, 1e4, -1e4, 1e4], [0.0, 0.0, 0.0, 0.0]])
    for dtype in ("float64", "float32"):
        b.add("logits +-1e4 none", dtype, {"reduction": "none"}, input=xs, target=np.array([0.5, 1.25, 2.75]))
    for red in ("mean", "sum", "none"):
        b.add(f"empty 0x{bins} {red}", "float64", {"reduction": red}, input=np.zeros((0, bins)), target=np.zeros((0,)))


# ------------------------------------------------------------ class imbalance ------

def _asymmetric_loss(b: _Builder):
    x = b.normal(6, 5, scale=3.0)
    y = (b.uniform(6, 5) < 0.3).astype(np.float64)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"6x5 multi-hot {red}", dtype, {"reduction": red}, input=x, target=y)
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "mean"):
            b.add(f"6x5 multi-hot {red}", dtype, {"reduction": red}, input=x, target=y)
    b.add("soft targets none", "float64", {"reduction": "none"}, input=x, target=b.uniform(6, 5))
    b.add("soft targets sum", "float32", {"reduction": "sum"}, input=x, target=b.uniform(6, 5))
    nan_note = {"grad input": "the pow reference gives NaN (inf * 0) at 1 - pt = 0 with gamma < 1 (a negative "
                              "with p <= clip, or a saturated logit); lossy's gradient there is 0"}
    for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
        for name in ("gamma_neg", "gamma_pos"):
            b.add(f"{name}={gamma} none", "float64", {name: gamma, "reduction": "none"}, input=x, target=y)
            if 0 < gamma < 1:
                b.cases[-1].known = dict(nan_note)
    for clip in (0.0, 0.2):
        b.add(f"clip={clip} none", "float64", {"clip": clip, "reduction": "none"}, input=x, target=y)
    b.add("eps=0.01 clip=0 none", "float64", {"eps": 0.01, "clip": 0.0, "reduction": "none"}, input=x, target=y)
    b.add("eps=0 clip=0 gammas=0 mean", "float64",
          {"eps": 0.0, "clip": 0.0, "gamma_neg": 0.0, "gamma_pos": 0.0, "reduction": "mean"}, input=x, target=y)
    w = b.uniform(5, low=0.1, high=2.0)
    for red in ("none", "mean", "sum"):
        b.add(f"weight (5,) {red}", "float64", {"reduction": red}, input=x, target=y, weight=w)
    b.add("weight 6x5 mean", "float32", {"reduction": "mean"}, input=x, target=y, weight=b.uniform(6, 5))
    # Saturated logits with hard targets. (Soft targets at |x| ~ 30 are left out: the reference's direct
    # 1 - sigmoid(x) cancels there, lossy's log-space form does not; eps = 0 at a saturated logit is
    # -inf * 0 = NaN in timm's form. tests/test_focal_variants.py checks both.)
    xs = np.array([1e4, -1e4, 1e4, -1e4, 100.0, -100.0])
    ys = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    for dtype in ("float64", "float32"):
        b.add("saturated none", dtype, {"reduction": "none"}, input=xs, target=ys)
        b.add("saturated clip=0 none", dtype, {"clip": 0.0, "reduction": "none"}, input=xs, target=ys)
    b.add("0-d", "float64", {"reduction": "mean"}, input=np.array(0.3), target=np.array(1.0))
    for red in ("mean", "sum", "none"):
        b.add(f"empty 0x5 {red}", "float64", {"reduction": red}, input=np.zeros((0, 5)), target=np.zeros((0, 5)))


def _poly1_cross_entropy(b: _Builder):
    C = 4
    x, t = b.normal(6, C, scale=2.0), _index_targets(b, (6,), C)
    p = _softmax(b.normal(6, C), axis=1)
    for dtype in ("float64", "float32"):
        for red in ("none", "mean", "sum"):
            b.add(f"index {red}", dtype, {"reduction": red}, input=x, target=t)
        b.add("prob target mean", dtype, {"reduction": "mean"}, input=x, target=p)
    for dtype in ("float16", "bfloat16"):
        for red in ("none", "mean"):
            b.add(f"index {red}", dtype, {"reduction": red}, input=x, target=t)
    for eps in (-1.0, 0.0, 2.0):
        b.add(f"epsilon={eps} index mean", "float64", {"epsilon": eps, "reduction": "mean"}, input=x, target=t)
        b.add(f"epsilon={eps} prob none", "float64", {"epsilon": eps, "reduction": "none"}, input=x, target=p)
    w = b.uniform(C, low=0.2, high=2.0)
    t1 = t.copy()
    t1[[0, 3]] = 1
    for red in ("none", "mean", "sum"):
        b.add(f"weight ignore_index=1 ls=0.2 {red}", "float64",
              {"ignore_index": 1, "label_smoothing": 0.2, "reduction": red}, input=x, target=t1, weight=w)
        b.add(f"prob weight ls=0.1 {red}", "float64", {"label_smoothing": 0.1, "reduction": red},
              input=x, target=p, weight=w)
    x4, t4 = b.normal(2, C, 3, 2), _index_targets(b, (2, 3, 2), C)
    b.add("(N,C,d1,d2) weight mean", "float64", {"reduction": "mean"}, input=x4, target=t4, weight=w)
    b.add("(N,C,d1,d2) prob none", "float32", {"reduction": "none"}, input=x4, target=_softmax(b.normal(2, C, 3, 2), 1))
    b.add("(C,) + () target none", "float64", {"reduction": "none"}, input=b.normal(C), target=np.array(2))
    xe = np.array([[1e4, -1e4, 0.0, 1.0], [-1e4, 1e4, 5.0, -5.0], [1e4, 1e4, -1e4, -1e4]])
    for dtype in ("float64", "float32"):
        b.add("logits +-1e4 ls=0.1 none", dtype, {"label_smoothing": 0.1, "reduction": "none"}, input=xe,
              target=np.array([0, 0, 3]))
    b.add("all ignored mean", "float64", {"reduction": "mean"}, input=x, target=np.full((6,), -100))
    for red in ("mean", "sum", "none"):
        b.add(f"empty (0,C) {red}", "float64", {"reduction": red}, input=np.zeros((0, C)),
              target=np.zeros((0,), dtype=np.int64))


# ------------------------------------------------------------ large vocabulary ------

def _linear_cross_entropy(b: _Builder):
    """``cross_entropy(input @ linear_weight.T + linear_bias, target)`` chunk by chunk: 11 rows in chunks
    of 4 (two full chunks and a ragged one of 3) unless a case says otherwise. Few, rich cases, and few
    shapes per dtype: each option set compiles anew on jax, and each new shape or dtype compiles every
    eager op anew on jax-analytic. torch's options against torch's ``F.linear_cross_entropy``
    (``options=None``) live; lossy's extras (softcap, lse_square_scale, return_lse) against the
    explicit formula in ``plain_torch_linear``."""
    N, D, C = 11, 5, 7
    x, lw, bias = b.normal(N, D), b.normal(C, D, scale=0.8), b.normal(C, scale=0.5)
    w = b.uniform(C, low=0.2, high=2.0)
    t = _index_targets(b, (N,), C)
    t[[2, 7]] = -100  # torch's default ignore_index (None means -100): rows 2 and 7 are ignored
    q = _softmax(b.normal(N, C), axis=1)
    chunked = {"chunk_size": 4}
    b.add("index -100 rows mean", "float64", {"reduction": "mean", **chunked}, input=x, linear_weight=lw, target=t)
    # logits in the hundreds: the per-row max shift in every chunk
    b.add("index -100 rows large logits none", "float64", {"reduction": "none", **chunked}, input=x,
          linear_weight=lw * 300, target=t)
    # a -inf logit (class 0, never a target here, through the bias): finite loss and gradients, as torch's.
    # (No ignored rows: lossy gathers an ignored row's logit at class 0 and gives 0 * -inf = NaN there;
    # tests/test_conformance.py holds that as a strict xfail until lossy_core/_linear.py is fixed.)
    bias_inf = bias.copy()
    bias_inf[0] = -np.inf
    b.add("weight bias with -inf mean", "float64", {"reduction": "mean", **chunked}, input=x, linear_weight=lw,
          target=np.where(t == -100, 4, t), linear_bias=bias_inf, weight=w)
    t2 = np.where(t == -100, 2, t)  # ignore_index=2: rows 0, 2, 5, 7 and 9 are ignored; -100 would be out of range
    t2[[0, 5, 9]] = 2
    b.add("weight ignore_index=2 ls=0.2 sum", "float64", {"reduction": "sum", "ignore_index": 2,
                                                          "label_smoothing": 0.2, **chunked},
          input=x, linear_weight=lw, target=t2, weight=w)
    b.add("ls=0.1 ignore_index=2 none", "float32", {"reduction": "none", "ignore_index": 2, "label_smoothing": 0.1,
                                                   **chunked}, input=x, linear_weight=lw, target=t2)
    # every target ignored: 'mean' is 0/0 = NaN (torch), with zero gradients (torch's reference path)
    b.add("all ignored weight mean", "float64", {"reduction": "mean", **chunked}, input=x, linear_weight=lw,
          target=np.full((N,), -100, dtype=np.int64), weight=w)
    # class probabilities (differentiable too)
    b.add("prob bias mean", "float64", {"reduction": "mean", **chunked}, input=x, linear_weight=lw, target=q,
          linear_bias=bias)
    b.add("prob weight ls=0.1 none", "float64", {"reduction": "none", "label_smoothing": 0.1, **chunked},
          input=x, linear_weight=lw, target=q, weight=w)
    # one chunk (the default chunk_size) of 4 rows (the chunk shape of the others: jax-analytic reuses
    # its compiled ops); also benchmarks/cases.py's registry case (the largest reduced float32 case), so
    # it sets torch's options only
    b.add("prob weight ls=0.2 one chunk sum", "float32", {"reduction": "sum", "label_smoothing": 0.2},
          input=x[:4], linear_weight=lw, target=q[:4], weight=w)
    # float16 / bfloat16: torch computes the logits and the loss in half; lossy in float32
    b.add("weight bias -100 rows mean", "bfloat16", {"reduction": "mean", **chunked}, input=x, linear_weight=lw,
          target=t, linear_bias=bias, weight=w)
    b.add("prob ls=0.1 none", "float16", {"reduction": "none", "label_smoothing": 0.1, **chunked}, input=x,
          linear_weight=lw, target=q)
    # K-dimensional weight (C, d1, d2, D): logits (N, C, d1, d2), softmax over C per position
    Ck, Nk = 4, 6
    xk, lwk, bk = b.normal(Nk, D), b.normal(Ck, 2, 3, D, scale=0.8), b.normal(Ck, 2, 3, scale=0.5)
    tk = _index_targets(b, (Nk, 2, 3), Ck)
    tk[1, 0, :] = -100
    wk = b.uniform(Ck, low=0.2, high=2.0)
    b.add("K-dim (4,2,3,5) index weight bias mean", "float64", {"reduction": "mean", "chunk_size": 4},
          input=xk, linear_weight=lwk, target=tk, linear_bias=bk, weight=wk)
    b.add("K-dim (4,2,3,5) prob bias ls=0.1 none", "float64", {"reduction": "none", "label_smoothing": 0.1,
                                                                "chunk_size": 4},
          input=xk, linear_weight=lwk, target=_softmax(b.normal(Nk, Ck, 2, 3), axis=1), linear_bias=bk)
    # unbatched (D,) input with a () target; default chunk_size (one chunk)
    b.add("unbatched (D,) weight mean", "float64", {"reduction": "mean"}, input=x[0], linear_weight=lw,
          target=np.array(3), weight=w)
    b.add("unbatched (D,) bias none", "float64", {"reduction": "none"}, input=x[1], linear_weight=lw,
          target=np.array(5), linear_bias=bias)
    # lossy's extras (no torch counterpart: conformance/plain_torch_linear.py writes out the formula)
    b.add("softcap=2 z-loss=0.01 weight -100 rows mean", "float64",
          {"reduction": "mean", "softcap": 2.0, "lse_square_scale": 0.01, **chunked},
          input=x, linear_weight=lw * 2, target=t, weight=w)
    b.add("z-loss=0.1 return_lse prob weight sum", "float64",
          {"reduction": "sum", "lse_square_scale": 0.1, "return_lse": True, **chunked},
          input=x, linear_weight=lw, target=q, weight=w)
    b.add("softcap=1.5 z-loss=1e-3 return_lse K-dim mean", "float64",
          {"reduction": "mean", "softcap": 1.5, "lse_square_scale": 1e-3, "return_lse": True, "chunk_size": 4},
          input=xk, linear_weight=lwk, target=tk, linear_bias=bk)
    b.add("softcap=3 z-loss=1e-3 return_lse weight bias ls=0.1 none", "float32",
          {"reduction": "none", "softcap": 3.0, "lse_square_scale": 1e-3, "label_smoothing": 0.1, "return_lse": True,
           **chunked}, input=x, linear_weight=lw, target=t, linear_bias=bias, weight=w)


GENERATORS = {
    "l1_loss": _regression,
    "mse_loss": _regression,
    "smooth_l1_loss": _regression,
    "huber_loss": _regression,
    "binary_cross_entropy": _binary_cross_entropy,
    "binary_cross_entropy_with_logits": _binary_cross_entropy_with_logits,
    "cross_entropy": _cross_entropy,
    "nll_loss": _nll_loss,
    "kl_div": _kl_div,
    "poisson_nll_loss": _poisson_nll_loss,
    "gaussian_nll_loss": _gaussian_nll_loss,
    "margin_ranking_loss": _margin_ranking_loss,
    "hinge_embedding_loss": _hinge_embedding_loss,
    "soft_margin_loss": _soft_margin_loss,
    "cosine_embedding_loss": _cosine_embedding_loss,

    "multilabel_soft_margin_loss": _multilabel_soft_margin_loss,
    "multilabel_margin_loss": _multilabel_margin_loss,
    "multi_margin_loss": _multi_margin_loss,
    "triplet_margin_loss": _triplet_margin_loss,
    "triplet_margin_with_distance_loss": _triplet_margin_with_distance_loss,
    "ctc_loss": _ctc_loss,
    "sigmoid_focal_loss": _sigmoid_focal_loss,
    "binary_focal_loss": _binary_focal_loss,
    "softmax_focal_loss": _softmax_focal_loss,
    "quality_focal_loss": _quality_focal_loss,
    "distribution_focal_loss": _distribution_focal_loss,
    "varifocal_loss": _varifocal_loss,
    "asymmetric_loss": _asymmetric_loss,
    "poly1_cross_entropy": _poly1_cross_entropy,
    "linear_cross_entropy": _linear_cross_entropy,
}


class MissingCases(LookupError):
    pass


def cases_for(loss: str) -> list[Case]:
    """Every case of one registered loss (deterministic)."""
    try:
        generator = GENERATORS[loss]
    except KeyError:
        raise MissingCases(
            f"loss {loss!r} is registered in lossy_core but conformance/cases.py has no case generator "
            f"for it: add one to GENERATORS"
        ) from None
    builder = _Builder(loss)
    generator(builder)
    return builder.cases


def all_losses() -> list[str]:
    return [spec.name for spec in lossy_core.losses()]


def check_coverage() -> None:
    """Raise MissingCases if a registered loss has no generator (or an empty one)."""
    for loss in all_losses():
        if not cases_for(loss):
            raise MissingCases(f"the case generator for {loss!r} produced no cases")
