"""``python -m benchmarks``: lossy against native torch, torch.compile and optax, as ratios.

Every variant of a case is timed interleaved in one process (round-robin, so drift
and noise hit all variants alike); each cell is the median of many samples.
Forward and forward+backward (value and d loss / d input) are both timed. Ratios are
to native torch eager in the same run (and lossy_jax also to optax). Peak extra
memory of one forward+backward is measured for the torch variants, each in a fresh
process. A scaling sweep is saved as a PNG. Everything is written as JSON with the
library versions.

    python -m benchmarks                    # headline cases + every registered loss
    python -m benchmarks --quick            # fewer samples, no memory, no sweep
    python -m benchmarks --case "mse_loss 1e6"
    python -m benchmarks --sweep-only
    python -m benchmarks --linear-ce-only   # linear_cross_entropy against torch's paths and optax
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from .cases import Case, headline_cases, registry_cases
from .variants import available_variants, build

DEFAULT_OUT = "benchmark-results"
SETTLE_S = 0.005


def time_variants(case: Case, variants, samples: int, rounds: int) -> dict:
    """{variant: {"forward": median_s, "forward+backward": median_s}} for one case."""
    callables = {}
    for name in variants:
        built = build(name, case)
        if built is not None:
            callables[name] = built
    result = {}
    for mode in ("forward", "forward+backward"):
        runs = {name: fns[mode] for name, fns in callables.items() if fns.get(mode) is not None}
        for run in runs.values():  # warm-up: compilation, caches
            run()
            run()
        collected = {name: [] for name in runs}
        names = list(runs)
        for round_index in range(rounds):
            # Each round starts one variant later: no variant always follows the same neighbour
            # (torch's spinning OpenMP threads slowed whichever JAX variant came right after it).
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                run = runs[name]
                # Two untimed calls and a short pause before each batch: the previous variant's
                # worker threads (torch's OpenMP pool spins after each op, XLA has its own pool)
                # go idle, and this variant's caches are warm.
                run()
                run()
                time.sleep(SETTLE_S)
                for _ in range(samples):
                    start = time.perf_counter()
                    run()
                    collected[name].append(time.perf_counter() - start)
        for name, times in collected.items():
            result.setdefault(name, {})[mode] = statistics.median(times)
    return result


def ratios(timings: dict) -> dict:
    out = {}
    native = timings.get("torch native", {})
    optax = timings.get("optax", {})
    for name, modes in timings.items():
        for mode, seconds in modes.items():
            if mode in native:
                out.setdefault(name, {})[f"{mode} / torch native"] = seconds / native[mode]
            if name == "lossy_jax" and mode in optax:
                out.setdefault(name, {})[f"{mode} / optax"] = seconds / optax[mode]
    return out


def print_case(case: Case, timings: dict, rate: dict) -> None:
    print(f"\n{case.id}")
    print(f"  {'variant':26} {'forward':>11} {'fwd+bwd':>11} {'fwd ratio':>10} {'f+b ratio':>10} {'vs optax':>9}")
    for name, modes in timings.items():
        r = rate.get(name, {})
        fwd, fb = modes.get("forward"), modes.get("forward+backward")
        cells = [
            f"{fwd * 1e3:9.3f}ms" if fwd is not None else f"{'-':>11}",
            f"{fb * 1e3:9.3f}ms" if fb is not None else f"{'-':>11}",
            f"{r['forward / torch native']:9.2f}x" if "forward / torch native" in r else f"{'-':>10}",
            f"{r['forward+backward / torch native']:9.2f}x" if "forward+backward / torch native" in r else f"{'-':>10}",
            f"{r['forward+backward / optax']:8.2f}x" if "forward+backward / optax" in r else f"{'-':>9}",
        ]
        print(f"  {name:26} " + " ".join(cells), flush=True)


def versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for module in ("torch", "jax", "optax", "array_api_compat", "lossy_core"):
        try:
            out[module] = __import__(module).__version__
        except Exception:  # not installed
            pass
    return out


# glibc's default malloc returns large freed blocks to the OS, so each eager call page-faults
# its temporaries anew and timings of 32 MB temporaries swing up to 3x between runs; these
# settings keep freed memory in the process (performance-findings.md). ``top_pad`` covers the
# per-thread arenas (XLA's worker threads allocate there): an emptied arena heap is unmapped
# regardless of trim_threshold unless the pad exceeds its 64 MiB, and then jit f+b timings of
# 32 MB outputs flipped between runs (kl_div 8192x1000 jax 5.8 or 10.7 ms, 106k or 689k page
# faults per process; with the pad 5.8-6.2 ms in five runs). The memory measurement's child
# processes run without them.
MALLOC_TUNABLES = ("glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
                   ":glibc.malloc.top_pad=268435456")


def _reexec_with_malloc_tunables(argv) -> None:
    """Restart this command with MALLOC_TUNABLES unless the caller set GLIBC_TUNABLES."""
    if sys.platform != "linux" or "GLIBC_TUNABLES" in os.environ or argv is not None:
        return
    environment = dict(os.environ, GLIBC_TUNABLES=MALLOC_TUNABLES)
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *sys.argv[1:]], environment)


def main(argv=None) -> int:
    _reexec_with_malloc_tunables(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples; no memory measurement, no sweep")
    parser.add_argument("--case", help="run only cases whose id contains this text")
    parser.add_argument("--variants", help="comma-separated variants (default: every available one)")
    parser.add_argument("--no-registry", action="store_true", help="only the headline cases")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--sweep-only", action="store_true")
    parser.add_argument("--no-linear-ce", action="store_true", help="skip the linear_cross_entropy section")
    parser.add_argument("--linear-ce-only", action="store_true", help="only the linear_cross_entropy section")
    parser.add_argument("--out", default=DEFAULT_OUT, help="directory for benchmarks.json and scaling.png")
    args = parser.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    variants = args.variants.split(",") if args.variants else available_variants()
    samples, rounds = (5, 3) if args.quick else (15, 7)
    headline_rounds = rounds if args.quick else 12  # the cases the bars are read from: steadier medians
    report = {"versions": versions(), "machine": machine(), "variants": variants, "cases": {},
              "environment": {"GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES")}}
    if not (args.sweep_only or args.linear_ce_only):
        headline = headline_cases()
        cases = headline + ([] if args.no_registry else registry_cases())
        if args.case:
            cases = [c for c in cases if args.case in c.id]
        print(f"variants: {', '.join(variants)}; {samples} samples x {headline_rounds} interleaved rounds "
              f"({rounds} for the registry cases); "
              f"{report['machine']['cpus']} CPU(s)", file=sys.stderr)
        headline_ids = {c.id for c in headline}
        for index, case in enumerate(cases, 1):
            print(f"[{index}/{len(cases)}] {case.id}", file=sys.stderr, flush=True)
            timings = time_variants(case, variants, samples, headline_rounds if case.id in headline_ids else rounds)
            rate = ratios(timings)
            print_case(case, timings, rate)
            entry = {"loss": case.loss, "timings_s": timings, "ratios": rate}
            if not (args.quick or args.no_memory) and case in cases[:8]:
                from .memory import peak_extra_memory

                entry["peak_extra_bytes"] = peak_extra_memory(case)
                print("  peak extra memory, one forward+backward: " + ", ".join(
                    f"{k} {v / 2**20:.1f} MiB" for k, v in entry["peak_extra_bytes"].items()), flush=True)
            report["cases"][case.id] = entry
    if args.sweep_only or not (args.quick or args.no_sweep or args.linear_ce_only):
        from .sweep import scaling_sweep

        report["sweep"] = scaling_sweep(os.path.join(args.out, "scaling.png"), quick=args.quick)
    if args.linear_ce_only or not (args.quick or args.no_linear_ce or args.sweep_only or args.case):
        from .linear_ce import run_all

        report["linear_cross_entropy"] = run_all(jax="lossy_jax" in variants)
    path = os.path.join(args.out, "benchmarks.json")
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


def machine() -> dict:
    import torch

    model = None
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), None)
    except OSError:  # not Linux
        pass
    return {
        "platform": platform.platform(),
        "processor": model or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    sys.exit(main())
