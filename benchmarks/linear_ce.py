"""``linear_cross_entropy`` against torch's plain and chunked paths, optax on full logits, and NumPy.

Forward+backward (the loss, then the gradients of ``input`` and ``linear_weight``), float32.
Times are the minimum over interleaved rounds (each call takes seconds, so a few rounds suffice;
one untimed call per variant first). Peak memory is counted exactly: the live bytes of torch
storages created during one forward+backward (``live_memory.LiveBytes``, inputs excluded, the
returned gradients included), the compiled temporaries of a jax program
(``memory_analysis().temp_size_in_bytes``), and NumPy's allocations under ``tracemalloc``.

    python -m benchmarks --linear-ce-only          # this section alone (~4 minutes on 2 cores)
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc

import numpy as np

MIB = 2**20
HEADLINE = (4096, 1024, 32000)
LARGE_VOCABULARY = (2048, 512, 128256)
MEMORY_ROWS = (1024, 4096, 16384)
TORCH_CHUNKS = (256, 512, 1024, 2048)  # torch's chunked path at fixed chunks: its best is the bar


def _inputs(n, d, v, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, d), dtype=np.float32)
    w = (r.standard_normal((v, d), dtype=np.float32) * 0.02).astype(np.float32)
    t = r.integers(0, v, n).astype(np.int64)
    return x, w, t


def _torch_variants(n, d, v, *, chunks=TORCH_CHUNKS, plain=True, auto=True, lossy_chunk=None):
    import torch
    import torch.nn.functional as F

    import lossy_torch.functional as LF

    x, w, t = (torch.from_numpy(a) for a in _inputs(n, d, v))
    x.requires_grad_(True)
    w.requires_grad_(True)
    options = torch.nn.LinearCrossEntropyOptions

    def step(function):
        def call():
            x.grad = None
            w.grad = None
            function().backward()
        return call

    variants = {"lossy_torch": step(lambda: LF.linear_cross_entropy(x, w, t))}
    if lossy_chunk is not None:  # lossy at a chunk of the caller's choice (the speed/memory trade-off)
        variants[f"lossy_torch {lossy_chunk} rows"] = step(
            lambda: LF.linear_cross_entropy(x, w, t, options=options(batch_chunk_size=lossy_chunk)))
    if plain:
        variants["torch plain"] = step(lambda: F.linear_cross_entropy(x, w, t))
    if auto:
        variants["torch chunked auto"] = step(lambda: F.linear_cross_entropy(x, w, t, options=options()))
    for rows in chunks:
        variants[f"torch chunked {rows}"] = step(
            lambda rows=rows: F.linear_cross_entropy(x, w, t, options=options(batch_chunk_size=rows)))
    return variants, (x, w)


def _interleaved_min(variants, rounds):
    times = {name: [] for name in variants}
    for run in variants.values():  # warm-up: first-call caches, page faults of the first buffers
        run()
    for r in range(rounds):
        names = list(variants)
        names = names[r % len(names):] + names[:r % len(names)]  # each round starts one variant later
        for name in names:
            gc.collect()
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def _torch_peak(run, parameters):
    from .live_memory import peak_live_bytes

    for p in parameters:
        p.grad = None
    gc.collect()
    return peak_live_bytes(run)


def headline(rounds):
    n, d, v = HEADLINE
    variants, parameters = _torch_variants(n, d, v, lossy_chunk=1024)
    times = _interleaved_min(variants, rounds)
    peaks = {name: _torch_peak(run, parameters) for name, run in variants.items()
             if name in ("lossy_torch", "lossy_torch 1024 rows", "torch plain", "torch chunked auto",
                         "torch chunked 1024")}
    best = min((name for name in times if name.startswith("torch chunked ") and name != "torch chunked auto"),
               key=times.get)
    gradient_bytes = (n * d + v * d) * 4
    return {
        "shape": {"N": n, "D": d, "V": v}, "times_s": times, "peak_bytes": peaks, "gradient_bytes": gradient_bytes,
        "torch_best_chunk": best,
        "bars": {
            "lossy_torch peak <= 160 MiB": (peaks["lossy_torch"] / MIB, peaks["lossy_torch"] <= 160 * MIB),
            "lossy_torch / torch chunked best <= 1.0": _bar(times["lossy_torch"] / times[best], 1.0),
            "lossy_torch / torch chunked auto <= 0.7": _bar(times["lossy_torch"] / times["torch chunked auto"], 0.7),
            "(1024-row chunks) lossy_torch / torch chunked best <= 1.0": _bar(
                times["lossy_torch 1024 rows"] / times[best], 1.0),
        },
    }


def large_vocabulary(rounds):
    n, d, v = LARGE_VOCABULARY
    variants, parameters = _torch_variants(n, d, v, chunks=(512,), auto=False)
    times = _interleaved_min(variants, rounds)
    peaks = {name: _torch_peak(run, parameters) for name, run in variants.items()}
    return {"shape": {"N": n, "D": d, "V": v}, "times_s": times, "peak_bytes": peaks,
            "bars": {"lossy_torch / torch plain <= 1.0": _bar(times["lossy_torch"] / times["torch plain"], 1.0)}}


def _bar(ratio, limit):
    return (ratio, ratio <= limit)


def _flatness(peaks, gradient_bytes):
    """Peak growth beyond the gradients' own growth: ``(peak(N) - peak(N0)) / (grad(N) - grad(N0))``
    for each larger N (the bar: at most 1.1)."""
    rows = sorted(peaks)
    first = rows[0]
    return {n: (peaks[n] - peaks[first]) / (gradient_bytes[n] - gradient_bytes[first]) for n in rows[1:]}


def memory_against_rows():
    """lossy_torch's peak at N = 1024, 4096, 16384 (D=1024, V=32000; the automatic chunk, fixed by
    bytes, is the same rows at every N), and torch chunked's at the same chunk."""
    _, d, v = HEADLINE
    peaks, torch_peaks, gradient_bytes = {}, {}, {}
    for n in MEMORY_ROWS:
        from lossy_core._linear import chunk_rows

        rows = chunk_rows(n, v, 4)
        variants, parameters = _torch_variants(n, d, v, chunks=(rows,), plain=False, auto=False)
        peaks[n] = _torch_peak(variants["lossy_torch"], parameters)
        torch_peaks[n] = _torch_peak(variants[f"torch chunked {rows}"], parameters)
        gradient_bytes[n] = (n * d + v * d) * 4
        del variants, parameters
        gc.collect()
    growth = _flatness(peaks, gradient_bytes)
    return {"peak_bytes": peaks, "torch_chunked_peak_bytes": torch_peaks, "gradient_bytes": gradient_bytes,
            "growth_beyond_gradients": growth,
            "bars": {"lossy_torch peak growth <= 1.1x the gradients'": (max(growth.values()),
                                                                       max(growth.values()) <= 1.1)}}


def numpy_memory_against_rows():
    """lossy_core.value_and_grad on NumPy: tracemalloc peak at the same N (D=1024, V=32000)."""
    import lossy_core

    _, d, v = HEADLINE
    value_and_grad = lossy_core.value_and_grad(lossy_core.linear_cross_entropy)
    peaks, gradient_bytes, times = {}, {}, {}
    for n in MEMORY_ROWS:
        x, w, t = _inputs(n, d, v)
        gc.collect()
        tracemalloc.start()
        start = time.perf_counter()
        value_and_grad(x, w, t)
        times[n] = time.perf_counter() - start
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        gradient_bytes[n] = (n * d + v * d) * 4
    growth = _flatness(peaks, gradient_bytes)
    return {"peak_bytes": peaks, "gradient_bytes": gradient_bytes, "times_s": times,
            "growth_beyond_gradients": growth,
            "bars": {"NumPy peak growth <= 1.1x the gradients'": (max(growth.values()), max(growth.values()) <= 1.1)}}


def jax_against_optax(rounds):
    """lossy_jax (scan under a custom_vjp) against optax on ``x @ W.T``: value_and_grad in x and W,
    jitted; time and compiled temporaries."""
    import jax
    import jax.numpy as jnp
    import optax

    import lossy_jax

    n, d, v = HEADLINE
    x, w, t = (jax.device_put(a) for a in _inputs(n, d, v))

    def lossy(x, w):
        return lossy_jax.linear_cross_entropy(x, w, t)

    def full_logits(x, w):
        return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(x @ w.T, t))

    programs = {name: jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
                for name, f in (("lossy_jax", lossy), ("optax on full logits", full_logits))}
    temp = {name: program.lower(x, w).compile().memory_analysis().temp_size_in_bytes
            for name, program in programs.items()}
    times = _interleaved_min({name: (lambda p=program: jax.block_until_ready(p(x, w)))
                              for name, program in programs.items()}, rounds)
    weight_gradient = v * d * 4
    return {"shape": {"N": n, "D": d, "V": v}, "times_s": times, "temp_bytes": temp,
            "weight_gradient_bytes": weight_gradient,
            "bars": {
                "lossy_jax temp <= 2x the weight gradient": (temp["lossy_jax"] / weight_gradient,
                                                             temp["lossy_jax"] <= 2 * weight_gradient),
                "lossy_jax / optax <= 1.0": _bar(times["lossy_jax"] / times["optax on full logits"], 1.0),
            }}


def run_all(rounds=3, *, jax=True, out=sys.stdout):
    """Every section; prints a table per section and returns the JSON-ready report."""
    report = {}
    sections = [("headline", lambda: headline(rounds)), ("large vocabulary", lambda: large_vocabulary(rounds)),
                ("memory against N (lossy_torch)", memory_against_rows),
                ("memory against N (NumPy value_and_grad)", numpy_memory_against_rows)]
    if jax:
        sections.append(("lossy_jax against optax", lambda: jax_against_optax(rounds)))
    for title, section in sections:
        print(f"[linear_cross_entropy] {title}", file=sys.stderr, flush=True)
        result = section()
        report[title] = result
        _print(title, result, out)
    return report


def _print(title, result, out):
    shape = result.get("shape")
    where = f" (N={shape['N']}, D={shape['D']}, V={shape['V']}, float32)" if shape else \
        f" (D={HEADLINE[1]}, V={HEADLINE[2]}, float32)"
    print(f"\nlinear_cross_entropy: {title}{where}", file=out)
    if shape:  # one shape, several variants: time and memory per variant
        memory = result.get("peak_bytes") or result.get("temp_bytes") or {}
        kind = "peak" if "peak_bytes" in result else "compiled temporaries"
        for name, seconds in result["times_s"].items():
            extra = f", {kind} {memory[name] / MIB:.1f} MiB" if name in memory else ""
            print(f"  {name:<24} {seconds:8.3f} s{extra}", file=out)
    else:  # memory against N
        for n, peak in result["peak_bytes"].items():
            torch_peak = result.get("torch_chunked_peak_bytes", {}).get(n)
            extra = f", torch chunked (same chunk) {torch_peak / MIB:.1f} MiB" if torch_peak is not None else ""
            print(f"  N={n:<6} peak {peak / MIB:8.1f} MiB (gradients {result['gradient_bytes'][n] / MIB:.1f} MiB)"
                  f"{extra}", file=out)
    for name, (figure, met) in result["bars"].items():
        print(f"  bar: {name}: {figure:.3f} -> {'met' if met else 'NOT met'}", file=out)
