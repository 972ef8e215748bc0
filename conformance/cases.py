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
    "multilabel_soft_margin_loss": _multilabel_soft_margin_loss,
    "multilabel_margin_loss": _multilabel_margin_loss,
    "multi_margin_loss": _multi_margin_loss,
    "triplet_margin_loss": _triplet_margin_loss,
    "triplet_margin_with_distance_loss": _triplet_margin_with_distance_loss,
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
