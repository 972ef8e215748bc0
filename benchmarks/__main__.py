"""``python -m benchmarks``: lossy_torch against native torch eager, forward and forward+backward.

Each case times its variants interleaved in one process (round-robin, so drift and
noise hit all variants alike) and reports medians and the ratio to native torch.
Absolute times on a shared 2-core machine mean little; the ratios are the result.
Writes JSON with the library versions (``--out``).

    python -m benchmarks              # every registered loss at a mid size
    python -m benchmarks --quick      # fewer samples
    python -m benchmarks --case cross_entropy
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as native

import lossy_core
import lossy_torch.functional as lossy


def _inputs(name, generator):
    """Float32 inputs of a mid size for each registered loss: (arrays, options)."""
    n, c = 4096, 100
    logits = torch.randn(n, c, generator=generator)
    labels = torch.randint(0, c, (n,), generator=generator)
    values = torch.randn(256, 1024, generator=generator)
    probabilities = torch.rand(256, 1024, generator=generator)
    cases = {
        "l1_loss": ((values, torch.randn(256, 1024, generator=generator)), {}),
        "mse_loss": ((values, torch.randn(256, 1024, generator=generator)), {}),
        "smooth_l1_loss": ((values, torch.randn(256, 1024, generator=generator)), {"beta": 0.5}),
        "huber_loss": ((values, torch.randn(256, 1024, generator=generator)), {"delta": 0.5}),
        "cross_entropy": ((logits, labels), {}),
        "nll_loss": ((torch.log_softmax(logits, 1), labels), {}),
        "binary_cross_entropy": ((probabilities.clamp(1e-6, 1 - 1e-6), torch.rand(256, 1024, generator=generator)), {}),
        "binary_cross_entropy_with_logits": ((values, probabilities), {}),
        "kl_div": ((torch.log_softmax(logits, 1), torch.softmax(torch.randn(n, c, generator=generator), 1)),
                   {"reduction": "batchmean"}),
    }
    return cases[name]


def _time(function, samples):
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def run_case(name, samples, rounds):
    arrays, options = _inputs(name, torch.Generator().manual_seed(0))
    function = lossy_core.get(name).torch.function
    variants = {"native torch": getattr(native, function), "lossy_torch": getattr(lossy, function)}

    def forward(f):
        return lambda: f(*arrays, **options)

    def forward_backward(f):
        leaf = arrays[0].detach().requires_grad_(True)
        return lambda: f(leaf, *arrays[1:], **options).backward()

    result = {}
    for mode, make in (("forward", forward), ("forward+backward", forward_backward)):
        collected = {variant: [] for variant in variants}
        for variant, f in variants.items():  # warm-up
            _time(make(f), 3)
        for _ in range(rounds):  # interleaved
            for variant, f in variants.items():
                collected[variant] += _time(make(f), samples)
        medians = {variant: statistics.median(t) for variant, t in collected.items()}
        result[mode] = {
            variant: {"median_s": m, "ratio_to_native": m / medians["native torch"]} for variant, m in medians.items()
        }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--case", help="one loss by name")
    parser.add_argument("--out", default="benchmark-results/benchmarks.json")
    args = parser.parse_args(argv)
    names = [args.case] if args.case else [spec.name for spec in lossy_core.losses()]
    samples, rounds = (3, 3) if args.quick else (10, 5)
    results = {}
    print(f"{'loss':34} {'mode':17} {'native':>10} {'lossy':>10} {'ratio':>7}")
    for name in names:
        results[name] = run_case(name, samples, rounds)
        for mode, row in results[name].items():
            native_s, lossy_s = row["native torch"]["median_s"], row["lossy_torch"]["median_s"]
            print(f"{name:34} {mode:17} {native_s * 1e3:8.3f}ms {lossy_s * 1e3:8.3f}ms "
                  f"{row['lossy_torch']['ratio_to_native']:6.2f}x", flush=True)
    import os

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({
            "versions": {"torch": torch.__version__, "lossy_core": lossy_core.__version__,
                         "python": platform.python_version()},
            "machine": {"processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
            "results": results,
        }, handle, indent=2)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
