"""The benchmark cases: inputs (float32, seeded) and the peers that have each loss."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    """One timed call: ``loss(*arrays, **options)``; ``arrays[0]`` is differentiated."""

    id: str
    loss: str
    arrays: tuple  # numpy float32 / int64 arrays
    options: dict = field(default_factory=dict)
    # optax: (function name in optax.losses, how to call it) where optax has the loss
    optax: str | None = None


def _rng(seed=0):
    return np.random.default_rng(seed)


def _log_softmax(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _cross_entropy(n, c, **options):
    r = _rng()
    logits = r.standard_normal((n, c)).astype(np.float32)
    labels = r.integers(0, c, n).astype(np.int64)
    if "weight" in options:
        options = dict(options, weight=r.uniform(0.5, 2.0, c).astype(np.float32))
    return logits, labels, options


def headline_cases() -> list[Case]:
    """The cases the performance bars are set on (issue: native speed)."""
    r = _rng(1)
    cases = []
    x, y, o = _cross_entropy(8192, 1000)
    cases.append(Case("cross_entropy 8192x1000", "cross_entropy", (x, y), o, optax="ce"))
    x, y, o = _cross_entropy(256, 10)
    cases.append(Case("cross_entropy 256x10", "cross_entropy", (x, y), o, optax="ce"))
    x, y, o = _cross_entropy(8192, 1000, label_smoothing=0.1, weight=True)
    cases.append(Case("cross_entropy 8192x1000 ls=0.1 weight", "cross_entropy", (x, y), o))
    logits = r.standard_normal((8192, 80)).astype(np.float32)
    targets = (r.uniform(size=(8192, 80)) < 0.1).astype(np.float32)
    cases.append(Case("bce_with_logits 8192x80", "binary_cross_entropy_with_logits", (logits, targets), {},
                      optax="sigmoid_bce"))
    cases.append(Case("bce_with_logits 8192x80 pos_weight", "binary_cross_entropy_with_logits", (logits, targets),
                      {"pos_weight": r.uniform(1.0, 5.0, 80).astype(np.float32)}))
    log_q = _log_softmax(r.standard_normal((8192, 1000))).astype(np.float32)
    p = np.exp(_log_softmax(r.standard_normal((8192, 1000)))).astype(np.float32)
    cases.append(Case("kl_div 8192x1000 batchmean", "kl_div", (log_q, p), {"reduction": "batchmean"}, optax="kl"))
    a, b = r.standard_normal(1_000_000).astype(np.float32), r.standard_normal(1_000_000).astype(np.float32)
    cases.append(Case("huber_loss 1e6", "huber_loss", (a, b), {}, optax="huber"))
    cases.append(Case("mse_loss 1e6", "mse_loss", (a, b), {}, optax="mse"))
    return cases


TIME_MAJOR = ("ctc_loss",)


def registry_cases() -> list[Case]:
    """Every registered loss at one mid size, from its conformance case with the largest input."""
    import lossy_core
    from conformance.cases import cases_for

    out = []
    for spec in lossy_core.losses():
        reduced = [c for c in cases_for(spec.name) if c.options.get("reduction", "mean") != "none"]
        # float32 where the loss has such a case; else its float64 case, cast to float32 below
        candidates = [c for c in reduced if c.dtype == "float32"] or [c for c in reduced if c.dtype == "float64"]
        if not candidates:
            continue
        best = max(candidates, key=lambda c: sum(np.asarray(a).size for a in c.arrays.values()))
        arrays = tuple(np.asarray(best.arrays[n]).astype(np.float32) if np.asarray(best.arrays[n]).dtype.kind == "f"
                       else np.asarray(best.arrays[n]) for n in spec.arrays if n in best.arrays)
        options = {k: v for k, v in best.options.items()}
        for n in spec.optional_arrays:
            if n in best.arrays:
                options[n] = np.asarray(best.arrays[n]).astype(np.float32)
        # ctc_loss's first array is (T, N, C): its axis 0 is time, and its per-step recursion
        # makes T the cost (and, unrolled by torch.compile, the compile time); left as is.
        rows = 1 if spec.name in TIME_MAJOR else 4096
        arrays, options = _tile_batch(arrays, options, rows)
        out.append(Case(f"{spec.name} ({best.id}, batch x{_batch_factor(best, spec, rows)})", spec.name,
                        arrays, options))
    return out


def _batch_factor(case, spec, rows):
    first = np.asarray(case.arrays[spec.arrays[0]])
    return max(1, rows // first.shape[0]) if first.ndim and first.shape[0] else 1


def _tile_batch(arrays, options, rows):
    """Repeat every batch-major array along axis 0 to about ``rows`` rows (a mid size)."""
    first = arrays[0]
    if first.ndim == 0 or first.shape[0] == 0:
        return arrays, options
    n = first.shape[0]
    reps = max(1, rows // n)

    def tile(a):
        a = np.asarray(a)
        if a.ndim and a.shape[0] == n and a is not None:
            return np.concatenate([a] * reps, axis=0)
        return a

    return tuple(tile(a) for a in arrays), {k: tile(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
