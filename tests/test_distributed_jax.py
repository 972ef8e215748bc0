"""lossy_jax.psum_mean: the loss and gradients of one device, on 8 shards.

Eight host CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=8``), float64, a
small linear layer, with uneven numbers of valid targets per shard (``ignore_index``),
against a NumPy reference on the concatenated batch in this process (the mean cross entropy
and its closed-form gradient, ``(softmax - onehot) / n``). The device count is fixed when jax
starts, and this process's jax (conftest) has one device, so ONE subprocess (this file run as
a script) runs every variant for the whole module and writes plain JSON, which the tests
below read. The per-shard loss is a masked cross entropy written in ``jnp`` ("hand"), and
also ``lossy_jax.cross_entropy(..., reduction="parts")`` ("lossy") where that returns
:class:`lossy_core.LossParts`; where it does not (yet), its variants skip with the reason.

Run with ``pytest -s`` to see the table of values and gradient errors.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import pytest

jax = pytest.importorskip("jax")

jax.config.update("jax_enable_x64", True)  # conftest does this at pytest start; repeated for a lone run

import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import lossy_core  # noqa: E402
import lossy_jax  # noqa: E402
from lossy_core import LossParts  # noqa: E402
from lossy_jax import psum_mean  # noqa: E402

SHARDS = 8
ROWS = 8  # rows per shard
IGNORE = -100
FEATURES, CLASSES = 4, 3
AXIS = "data"
# Valid (non-ignored) targets on shards 0..7; the other rows are ignore_index.
LAYOUTS = {
    "uneven": (1, 8, 2, 5, 3, 8, 4, 6),
    "shard0_empty": (0, 8, 2, 5, 3, 8, 4, 6),
    "all_empty": (0,) * SHARDS,
}

# name: (layout, method, loss, empty).
# method: "one_device" jit on unsharded arrays; "gspmd" the same jit on arrays sharded with
# NamedSharding (no psum_mean); "sm_*" jax.shard_map, "pmap_*" jax.pmap:
#   *_pmean_of_means: lax.pmean of each shard's own mean (the bug);
#   sm: psum_mean, jax.grad outside the shard_map;
#   sm_inner: psum_mean, jax.grad inside w.r.t. per-shard (varying) parameters, psum of the grads;
#   sm_no_vma: psum_mean under check_vma=False, grad inside, pmean of the grads;
#   pmap: psum_mean, grad inside, pmean of the grads (the usual pmap step);
#   pmap_psum_grads: the same with psum of the grads (the wrong pairing: W x).
# loss: "hand" (jnp), "lossy" (lossy_jax.cross_entropy reduction="parts"), "lossy_mean"
# (lossy_jax.cross_entropy reduction="mean", no parts at all: only for gspmd).
VARIANTS = {
    "one_device": ("uneven", "one_device", "hand", "nan"),
    "one_device_shard0_empty": ("shard0_empty", "one_device", "hand", "nan"),
    "gspmd": ("uneven", "gspmd", "hand", "nan"),
    "gspmd_shard0_empty": ("shard0_empty", "gspmd", "hand", "nan"),
    "sm_pmean_of_means": ("uneven", "sm_pmean_of_means", "hand", "nan"),
    "sm": ("uneven", "sm", "hand", "nan"),
    "sm_inner": ("uneven", "sm_inner", "hand", "nan"),
    "sm_no_vma": ("uneven", "sm_no_vma", "hand", "nan"),
    "pmap_pmean_of_means": ("uneven", "pmap_pmean_of_means", "hand", "nan"),
    "pmap": ("uneven", "pmap", "hand", "nan"),
    "pmap_psum_grads": ("uneven", "pmap_psum_grads", "hand", "nan"),
    "shard0_empty_sm_pmean_of_means": ("shard0_empty", "sm_pmean_of_means", "hand", "nan"),
    "shard0_empty_sm": ("shard0_empty", "sm", "hand", "nan"),
    "shard0_empty_sm_inner": ("shard0_empty", "sm_inner", "hand", "nan"),
    "shard0_empty_pmap": ("shard0_empty", "pmap", "hand", "nan"),
    "all_empty_nan": ("all_empty", "sm", "hand", "nan"),
    "all_empty_zero": ("all_empty", "sm", "hand", "zero"),
    "all_empty_clamp1": ("all_empty", "sm", "hand", "clamp1"),
    "all_empty_pmap_zero": ("all_empty", "pmap", "hand", "zero"),
    "lossy_gspmd": ("uneven", "gspmd", "lossy", "nan"),
    "lossy_gspmd_mean": ("uneven", "gspmd", "lossy_mean", "nan"),
    "lossy_gspmd_mean_shard0_empty": ("shard0_empty", "gspmd", "lossy_mean", "nan"),
    "lossy_sm": ("uneven", "sm", "lossy", "nan"),
    "lossy_pmap": ("uneven", "pmap", "lossy", "nan"),
    "lossy_shard0_empty_sm": ("shard0_empty", "sm", "lossy", "nan"),
    "lossy_all_empty_zero": ("all_empty", "sm", "lossy", "zero"),
}
PSUM_MEAN_VARIANTS = ["sm", "sm_inner", "sm_no_vma", "pmap", "shard0_empty_sm", "shard0_empty_sm_inner",
                      "shard0_empty_pmap", "lossy_sm", "lossy_pmap", "lossy_shard0_empty_sm"]


# -- data, model, reference (NumPy only: shared by this process and the subprocess) --------

def _data(layout):
    """The concatenated batch: inputs (SHARDS*ROWS, FEATURES), targets with IGNORE rows."""
    rng = np.random.default_rng(1234)
    x = rng.standard_normal((SHARDS * ROWS, FEATURES))
    y = rng.integers(0, CLASSES, SHARDS * ROWS)
    for shard, valid in enumerate(LAYOUTS[layout]):
        y[shard * ROWS + valid:(shard + 1) * ROWS] = IGNORE
    return x, y


def _params():
    """A Linear(FEATURES, CLASSES) as torch lays it out: weight (CLASSES, FEATURES), bias."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((CLASSES, FEATURES)), rng.standard_normal(CLASSES)


def _reference(layout, empty="nan"):
    """(value, flat gradient) of one device on the whole batch: mean cross entropy in NumPy.

    The gradient of the mean over the n kept rows w.r.t. the logits is (softmax - onehot) / n
    on kept rows and 0 on ignored ones; the chain rule through ``x @ weight.T + bias`` gives
    the rest. No kept row: 0/0 (NaN) for 'nan', 0 for 'zero' and 'clamp1' (0 / max(0, 1)),
    and a zero gradient (no row contributes; torch's all-ignored gradient is zero too).
    """
    x, y = _data(layout)
    weight, bias = _params()
    z = x @ weight.T + bias
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    keep = y != IGNORE
    n = int(keep.sum())
    if n == 0:
        return (math.nan if empty == "nan" else 0.0), [0.0] * (weight.size + bias.size)
    value = -logp[keep, y[keep]].sum() / n
    g = np.exp(logp)
    g[np.arange(len(y))[keep], y[keep]] -= 1.0
    g[~keep] = 0.0
    g /= n
    return float(value), np.concatenate([(g.T @ x).ravel(), g.sum(axis=0)]).tolist()


# -- the subprocess: 8 devices ------------------------------------------------------------

def _hand_parts(logits, target):
    """Masked cross entropy in jnp: (sum of -log_softmax[target] over kept rows, kept rows)."""
    keep = target != IGNORE
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, jnp.where(keep, target, 0)[:, None], axis=-1)[:, 0]
    return LossParts(jnp.sum(jnp.where(keep, -picked, 0.0)), jnp.sum(keep).astype(logits.dtype))


def _lossy_parts(logits, target):
    parts = lossy_jax.cross_entropy(logits, target, ignore_index=IGNORE, reduction="parts")
    if not isinstance(parts, LossParts):
        raise TypeError(f"lossy_jax.cross_entropy(reduction='parts') returned {type(parts).__name__}, not LossParts")
    return parts


def _probe_lossy_parts():
    """None if lossy_jax.cross_entropy(reduction='parts') gives LossParts equal to its 'mean', else why not."""
    x, y = _data("uneven")
    logits = jnp.asarray(x[:ROWS, :CLASSES])
    target = jnp.asarray(y[:ROWS])
    try:
        parts = _lossy_parts(logits, target)
        mean = lossy_jax.cross_entropy(logits, target, ignore_index=IGNORE)
        if float(lossy_core.finalize(parts)) != float(mean):
            return f"finalize(parts) = {float(lossy_core.finalize(parts))!r} != reduction='mean' {float(mean)!r}"
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _run_variant(layout, method, loss, empty, mesh):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    x, y = _data(layout)
    params = tuple(jnp.asarray(p) for p in _params())

    def parts(params, x, y):
        logits = x @ params[0].T + params[1]
        return _hand_parts(logits, y) if loss == "hand" else _lossy_parts(logits, y)

    def mean(params, x, y):
        if loss == "lossy_mean":
            return lossy_jax.cross_entropy(x @ params[0].T + params[1], y, ignore_index=IGNORE)
        return lossy_core.finalize(parts(params, x, y), empty=empty)

    def local_psum_mean(params, x, y):
        return psum_mean(parts(params, x, y), AXIS, empty=empty)

    def local_pmean_of_means(params, x, y):
        return lax.pmean(lossy_core.finalize(parts(params, x, y), empty=empty), AXIS)

    extra = {}
    if method in ("one_device", "gspmd"):
        xs, ys = jnp.asarray(x), jnp.asarray(y)
        if method == "gspmd":
            xs = jax.device_put(xs, NamedSharding(mesh, P(AXIS)))
            ys = jax.device_put(ys, NamedSharding(mesh, P(AXIS)))
            params = jax.device_put(params, NamedSharding(mesh, P()))
            extra = {"input_spec": list(xs.sharding.spec), "input_devices": len(xs.sharding.device_set)}
        value, grads = jax.jit(jax.value_and_grad(mean))(params, xs, ys)
        values, grads = [value], [grads]
    elif method.startswith("sm"):
        xs = jax.device_put(jnp.asarray(x), NamedSharding(mesh, P(AXIS)))
        ys = jax.device_put(jnp.asarray(y), NamedSharding(mesh, P(AXIS)))
        params = jax.device_put(params, NamedSharding(mesh, P()))
        specs = {"in_specs": (P(), P(AXIS), P(AXIS)), "mesh": mesh}
        if method in ("sm", "sm_pmean_of_means"):  # jax.grad outside the shard_map
            local = local_psum_mean if method == "sm" else local_pmean_of_means
            f = jax.shard_map(local, out_specs=P(), **specs)
            value, grads = jax.jit(jax.value_and_grad(f))(params, xs, ys)
            values, grads = [value], [grads]
        else:  # grad inside; the value comes back from every shard
            if method == "sm_inner":
                def step(params, x, y):
                    params = lax.pcast(params, AXIS, to="varying")  # a per-shard copy
                    value, grads = jax.value_and_grad(local_psum_mean)(params, x, y)
                    return value[None], lax.psum(grads, AXIS)
                f = jax.shard_map(step, out_specs=(P(AXIS), P()), **specs)
            else:  # sm_no_vma
                def step(params, x, y):
                    value, grads = jax.value_and_grad(local_psum_mean)(params, x, y)
                    return value[None], lax.pmean(grads, AXIS)
                f = jax.shard_map(step, out_specs=(P(AXIS), P()), check_vma=False, **specs)
            values, grads = jax.jit(f)(params, xs, ys)
            grads = [grads]
    else:  # pmap: per-device value and gradient
        local = local_pmean_of_means if method == "pmap_pmean_of_means" else local_psum_mean
        reduce_grads = lax.psum if method == "pmap_psum_grads" else lax.pmean

        def step(params, x, y):
            value, grads = jax.value_and_grad(local)(params, x, y)
            return value, reduce_grads(grads, AXIS)

        values, grads = jax.pmap(step, axis_name=AXIS, in_axes=(None, 0, 0))(
            params, jnp.asarray(x).reshape(SHARDS, ROWS, FEATURES), jnp.asarray(y).reshape(SHARDS, ROWS))
        grads = [jax.tree.map(lambda g, d=d: g[d], grads) for d in range(SHARDS)]
    flat = [np.concatenate([np.ravel(np.asarray(g)) for g in jax.tree.leaves(gs)]).tolist() for gs in grads]
    return {"values": [float(v) for v in np.ravel(np.asarray(values))], "grads": flat, **extra}


def _main(outpath):
    mesh = jax.make_mesh((SHARDS,), (AXIS,))
    lossy_reason = _probe_lossy_parts()
    out = {"jax": jax.__version__, "devices": jax.device_count(), "x64": bool(jax.config.jax_enable_x64),
           "lossy_parts": lossy_reason, "variants": {}}
    for name, (layout, method, loss, empty) in VARIANTS.items():
        if loss == "lossy" and lossy_reason is not None:
            out["variants"][name] = {"skipped": lossy_reason}
            continue
        try:
            out["variants"][name] = _run_variant(layout, method, loss, empty, mesh)
        except Exception as error:
            out["variants"][name] = {"error": f"{type(error).__name__}: {error}",
                                     "traceback": traceback.format_exc()[-3000:]}
    with open(outpath, "w") as f:
        json.dump(out, f)  # NaN is written as NaN, which json reads back


# -- the tests ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shards():
    """{"jax": ..., "devices": 8, "lossy_parts": None or why not, "variants": {name: result}}."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={SHARDS}").strip()
    env.update(JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    with tempfile.TemporaryDirectory() as outdir:
        outpath = os.path.join(outdir, "shards.json")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), outpath], env=env,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              capture_output=True, text=True, timeout=240)
        if proc.returncode != 0:
            pytest.fail(f"the {SHARDS}-device jax run failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
        with open(outpath) as f:
            return json.load(f)


def _result(shards, name):
    """The variant's result; a lossy_jax variant that could not run skips (it is built concurrently)."""
    result = shards["variants"][name]
    loss = VARIANTS[name][2]
    reason = result.get("skipped") or result.get("error")
    if reason and loss != "hand":
        pytest.skip(f"{name}: lossy_jax.cross_entropy(reduction={'mean' if loss == 'lossy_mean' else 'parts'!r}) "
                    f"is not usable here: {reason}")
    assert not reason, f"{name}: {reason}\n{result.get('traceback', '')}"
    return result


def _err(grad, ref):
    """max |grad - ref|, NaN where either has a NaN (Python's max would skip some NaNs)."""
    errors = [abs(a - b) for a, b in zip(grad, ref, strict=True)]
    return math.nan if any(map(math.isnan, errors)) else max(errors)


def _row(shards, name):
    layout, _, _, empty = VARIANTS[name]
    result = _result(shards, name)
    ref_value, ref_grad = _reference(layout, empty)
    values = result["values"]
    errors = [_err(g, ref_grad) for g in result["grads"]]
    same = len(set(values)) == 1 or all(map(math.isnan, values))
    spread = f"{values[0]:.15g}" if same else f"{min(values):.6g}..{max(values):.6g}"
    value_error = max(abs(v - ref_value) for v in values)
    text = f"{name:32s} {spread:>18s}  {ref_value:<17.15g}  {value_error:8.1e}  {max(errors):.2e}"
    return values, errors, ref_value, ref_grad, text


def test_table(shards):
    """The numbers for a closing note (``pytest -s``)."""
    lines = [f"jax {shards['jax']}, {shards['devices']} devices, x64={shards['x64']}; "
             f"lossy_jax parts: {shards['lossy_parts'] or 'ok'}",
             f"{'variant':32s} {'value (all shards)':>18s}  {'reference':17s}  {'|v-ref|':>8s}  max|grad-ref| (float64)"]
    for name in VARIANTS:
        result = shards["variants"][name]
        reason = result.get("skipped") or result.get("error")
        lines.append(f"{name:32s} skipped: {reason}" if reason else _row(shards, name)[-1])
    print("\n" + "\n".join(lines))
    assert len(lines) == len(VARIANTS) + 2


def test_subprocess_has_eight_float64_devices(shards):
    assert shards["devices"] == SHARDS and shards["x64"] is True
    gspmd = _result(shards, "gspmd")
    assert gspmd["input_devices"] == SHARDS and gspmd["input_spec"] == [AXIS], gspmd


@pytest.mark.parametrize("name", ["one_device", "one_device_shard0_empty"])
def test_one_device_is_the_numpy_reference(shards, name):
    """The jax program itself (no sharding) against the NumPy formula: checks the reference."""
    values, errors, ref, _, text = _row(shards, name)
    assert abs(values[0] - ref) <= 1e-12 * abs(ref) and max(errors) <= 1e-12, text


@pytest.mark.parametrize("name", ["gspmd", "gspmd_shard0_empty", "lossy_gspmd", "lossy_gspmd_mean",
                                  "lossy_gspmd_mean_shard0_empty"])
def test_jit_over_sharded_arrays_is_already_global(shards, name):
    """(a) GSPMD: finalize(parts), or reduction='mean', on NamedSharding inputs is the global mean."""
    values, errors, ref, _, text = _row(shards, name)
    one = _result(shards, "one_device" if VARIANTS[name][0] == "uneven" else "one_device_shard0_empty")
    assert abs(values[0] - one["values"][0]) <= 1e-12 * abs(one["values"][0]), text  # the unsharded jit
    assert max(_err(g, one["grads"][0]) for g in _result(shards, name)["grads"]) <= 1e-12, text
    assert abs(values[0] - ref) <= 1e-12 * abs(ref) and max(errors) <= 1e-12, text


@pytest.mark.parametrize("name", ["sm_pmean_of_means", "pmap_pmean_of_means"])
def test_pmean_of_means_is_wrong(shards, name):
    """(b), (c): uneven valid counts per shard: the mean of the shards' means is not the mean."""
    values, errors, ref, _, text = _row(shards, name)
    assert math.isfinite(values[0]) and abs(values[0] - ref) > 1e-3, text
    assert max(errors) > 1e-3, text


@pytest.mark.parametrize("name", PSUM_MEAN_VARIANTS)
def test_psum_mean_is_one_device(shards, name):
    """(b), (c), (d): psum_mean gives the one-device value on every shard, and its gradient."""
    values, errors, ref, _, text = _row(shards, name)
    assert len(set(values)) == 1, text  # the same global value on every shard
    assert abs(values[0] - ref) <= 1e-12 * abs(ref), text
    assert max(errors) <= 1e-12, text


def test_pmap_psum_of_gradients_is_w_times(shards):
    """Under pmap psum's transpose is psum: each device's gradient is W x its share, so the
    gradients want pmean (the pmap variant); psum of them is W x the one-device gradient."""
    values, _, ref, ref_grad, text = _row(shards, "pmap_psum_grads")
    assert abs(values[0] - ref) <= 1e-12 * abs(ref), text
    for grad in _result(shards, "pmap_psum_grads")["grads"]:
        assert _err([g / SHARDS for g in grad], ref_grad) <= 1e-12, text


def test_shard_with_every_target_ignored(shards):
    """(d): shard 0's parts are (0, 0)."""
    # Mean of means: shard 0's 0/0 makes the whole pmean NaN.
    values, errors, ref, _, text = _row(shards, "shard0_empty_sm_pmean_of_means")
    assert math.isnan(values[0]) and math.isfinite(ref), text
    # psum_mean: shard 0 adds 0 to the numerator and 0 to the count.
    for name in ("shard0_empty_sm", "shard0_empty_sm_inner", "shard0_empty_pmap"):
        values, errors, ref, _, text = _row(shards, name)
        assert math.isfinite(ref) and abs(values[0] - ref) <= 1e-12 * abs(ref) and max(errors) <= 1e-12, text


def test_globally_empty_batch_follows_the_policy(shards):
    """(d): every shard empty: finalize's policy on the global 0/0."""
    values, errors, ref, _, text = _row(shards, "all_empty_nan")
    assert math.isnan(ref) and all(math.isnan(v) for v in values), text  # torch: 0/0
    assert max(errors) == 0.0, text  # no kept row: a zero gradient, not NaN (torch's too)
    values, errors, ref, _, text = _row(shards, "all_empty_clamp1")
    assert ref == 0.0 and values == [0.0] and max(errors) == 0.0, text  # 0 / max(0, 1)


@pytest.mark.parametrize("name", ["all_empty_zero", "all_empty_pmap_zero", "lossy_all_empty_zero"])
def test_globally_empty_batch_zero_policy(shards, name):
    """(d): empty='zero': the value 0 with a finite, zero gradient on every shard."""
    values, errors, ref, _, text = _row(shards, name)
    assert ref == 0.0 and all(v == 0.0 for v in values), text
    assert all(g == 0.0 for grad in _result(shards, name)["grads"] for g in grad), text


# -- one process: vmap with a named axis, and the errors -----------------------------------

def _per_example(layout, rows):
    """Logits (rows, CLASSES): the first CLASSES input features, and the targets."""
    x, y = _data(layout)
    return jnp.asarray(x[:rows, :CLASSES]), jnp.asarray(y[:rows])


def _row_parts(logits, target):
    return _hand_parts(logits[None], target[None])


@pytest.mark.parametrize("empty", lossy_core.EMPTY_POLICIES)
@pytest.mark.parametrize("layout", ["uneven", "all_empty"])
def test_vmap_with_axis_name_is_finalize_of_combine(empty, layout):
    """Each example is a "shard" of one row: its parts (its loss or 0, kept or not) psum'd over "b"."""
    logits, target = _per_example(layout, rows=2 * ROWS)  # the rows of shards 0 and 1

    def via_vmap(logits):
        out = jax.vmap(lambda l, t: psum_mean(_row_parts(l, t), "b", empty=empty), axis_name="b")(logits, target)
        return out[0], out

    def via_combine(logits):
        parts = [_row_parts(logits[i], target[i]) for i in range(logits.shape[0])]
        return lossy_core.finalize(lossy_core.combine(parts), empty=empty)

    (got, every), g_got = jax.value_and_grad(via_vmap, has_aux=True)(logits)
    want, g_want = jax.value_and_grad(via_combine)(logits)
    assert int(jnp.sum(target != IGNORE)) == LAYOUTS[layout][0] + LAYOUTS[layout][1]  # 1 + 8 or 0 kept of 16
    np.testing.assert_allclose(np.asarray(every), np.full(logits.shape[0], float(want)), rtol=1e-15, atol=0)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-15, atol=0)
    np.testing.assert_allclose(np.asarray(g_got), np.asarray(g_want), rtol=1e-14, atol=1e-16)
    assert bool(jnp.all(jnp.isfinite(g_got))) or empty == "nan"


def test_denominator_has_no_gradient():
    """A weighted mean differentiated w.r.t. the weights: only the numerator's gradient flows."""
    losses = jnp.asarray([0.5, 2.0, 1.5, 3.0])
    weights = jnp.asarray([1.0, 0.0, 2.0, 0.5])

    def via_vmap(w):
        return jax.vmap(lambda l, w: psum_mean(LossParts(l * w, w), "b"), axis_name="b")(losses, w)[0]

    grad = jax.grad(via_vmap)(weights)
    # d/dw_i of sum(l*w) / stop_gradient(sum(w)) is l_i / sum(w) (sum(w) = 3.5, from the line above).
    np.testing.assert_allclose(np.asarray(grad), np.asarray(losses) / 3.5, rtol=1e-15, atol=0)


def test_outside_a_named_axis_jax_raises():
    parts = LossParts(jnp.asarray(3.0), jnp.asarray(2.0))
    with pytest.raises(NameError, match="unbound axis name: b"):
        psum_mean(parts, "b")


def test_attribute_and_import_paths():
    from lossy_jax import _sharding

    assert lossy_jax.psum_mean is _sharding.psum_mean is psum_mean
    assert "psum_mean" in lossy_jax.__all__


@pytest.mark.parametrize("bad, match", [
    ({"empty": "ignore"}, "empty must be one of 'nan', 'zero', 'clamp1', got 'ignore'"),
    ({"empty": None}, "empty must be one of 'nan', 'zero', 'clamp1', got None"),
])
def test_bad_empty(bad, match):
    parts = LossParts(jnp.asarray(3.0), jnp.asarray(2.0))
    with pytest.raises(ValueError, match=match):
        psum_mean(parts, "b", **bad)


@pytest.mark.parametrize("axis_name, match", [
    (0, "axis_name must be a str or a non-empty tuple of str .the mapped axes., got int"),
    (None, "got NoneType"),
    (["b"], "got list"),
    ((), r"got \(\)"),
    (("b", 1), r"got tuple of \(str, int\)"),
])
def test_bad_axis_name(axis_name, match):
    parts = LossParts(jnp.asarray(3.0), jnp.asarray(2.0))
    with pytest.raises(TypeError, match=match):
        psum_mean(parts, axis_name)


@pytest.mark.parametrize("parts, match", [
    (jnp.asarray(1.0), "parts must be a .numerator, denominator. pair.*got ArrayImpl"),
    ((jnp.asarray(1.0),) * 3, "parts must be a .numerator, denominator. pair.*got tuple"),
    ([jnp.asarray(1.0), jnp.asarray(2.0)], "got list"),
    ((1.0, jnp.asarray(2.0)), "parts.numerator must be a jax.Array, got float"),
    ((jnp.asarray(1.0), 2), "parts.denominator must be a jax.Array, got int"),
    ((jnp.asarray(1.0), np.float64(2.0)), "parts.denominator must be a jax.Array, got float64"),
])
def test_bad_parts(parts, match):
    with pytest.raises(TypeError, match=match):
        psum_mean(parts, "b")


def test_checks_run_before_any_collective():
    """A bad empty raises ValueError even outside a named axis (not jax's NameError)."""
    with pytest.raises(ValueError, match="empty must be one of"):
        psum_mean(LossParts(jnp.asarray(1.0), jnp.asarray(1.0)), "b", empty="mean")
    with pytest.raises(TypeError, match="axis_name must be"):
        psum_mean(LossParts(jnp.asarray(1.0), jnp.asarray(1.0)), 3)


if __name__ == "__main__":  # the 8-device run, started by the ``shards`` fixture
    _main(sys.argv[1])
