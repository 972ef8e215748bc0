"""Scaling sweep: forward+backward ratio to native torch over size, saved as a PNG."""

from __future__ import annotations

import numpy as np

from .cases import Case
from .__main__ import time_variants

VARIANTS = ("torch native", "lossy_torch", "lossy_torch compiled")


def _ce(n, c):
    r = np.random.default_rng(0)
    return Case(f"ce {n}x{c}", "cross_entropy", (r.standard_normal((n, c)).astype(np.float32),
                                                  r.integers(0, c, n).astype(np.int64)))


def _mse(size):
    r = np.random.default_rng(0)
    return Case(f"mse {size}", "mse_loss", (r.standard_normal(size).astype(np.float32),
                                            r.standard_normal(size).astype(np.float32)))


def scaling_sweep(path: str, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, rounds = (3, 2) if quick else (7, 3)
    series = {
        "cross_entropy over N (C=1000)": [(n, _ce(n, 1000)) for n in (64, 256, 1024, 4096, 8192)],
        "cross_entropy over C (N=1024)": [(c, _ce(1024, c)) for c in (10, 100, 1000, 10000)],
        "mse_loss over size": [(s, _mse(s)) for s in (10**3, 10**4, 10**5, 10**6, 4 * 10**6)],
    }
    result = {}
    figure, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 4))
    for axis, (title, points) in zip(axes, series.items()):
        result[title] = {}
        for variant in VARIANTS[1:]:
            result[title][variant] = []
        for x, case in points:
            timings = time_variants(case, VARIANTS, samples, rounds)
            native = timings["torch native"]["forward+backward"]
            for variant in VARIANTS[1:]:
                result[title][variant].append((x, timings[variant]["forward+backward"] / native))
        for variant, values in result[title].items():
            xs, ys = zip(*values)
            axis.plot(xs, ys, marker="o", label=variant)
        axis.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="native torch eager")
        axis.set_xscale("log")
        axis.set_title(title)
        axis.set_xlabel(title.split(" over ")[1])
        axis.set_ylabel("forward+backward time / native torch")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")
    return result
