"""lossy_torch.distributed.global_mean: the loss and gradients of one process, on W ranks.

Two real gloo processes on the CPU (DistributedDataParallel over a small ``Linear``), float64,
with uneven numbers of valid targets per rank (``ignore_index``), against torch's own
``cross_entropy`` on the concatenated batch in this process. Process start-up is the cost
(seconds), so ONE pair of ranks is spawned for the whole module (a subprocess that runs this
file as a script); it runs every variant and writes plain JSON, which the tests below read.

Run with ``pytest -s`` to see the table of values and gradient errors.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import socket
import subprocess
import sys
import tempfile

import pytest

torch = pytest.importorskip("torch")

import lossy_core  # noqa: E402
import lossy_torch  # noqa: E402
import lossy_torch.functional as F  # noqa: E402
from lossy_core import LossParts  # noqa: E402
from lossy_torch.distributed import global_mean  # noqa: E402

WORLD = 2
ROWS = 8  # rows per rank
IGNORE = -100
FEATURES, CLASSES = 4, 3
# Valid (non-ignored) targets on rank 0 and rank 1; the other rows are ignore_index.
LAYOUTS = {"uneven": (2, 8), "rank0_empty": (0, 5), "all_empty": (0, 0)}
FUNCOL = "torch.distributed._functional_collectives"

# name: (layout, loss, gradient reduction, options). loss: "mean" is each rank's own
# reduction="mean"; "global" is global_mean(reduction="parts"); "combine" adds two
# micro-batches' parts first. Gradient reduction: "ddp" averages (DistributedDataParallel);
# "sum" is a hand-written all_reduce(SUM) of the gradients of a plain model.
VARIANTS = {
    "mean_of_means": ("uneven", "mean", "ddp", {}),
    "global_mean": ("uneven", "global", "ddp", {}),
    "global_mean_group": ("uneven", "global", "ddp", {"group": "new_group"}),
    "global_mean_sum": ("uneven", "global", "sum", {"grad_reduction": "sum"}),
    "avg_under_sum": ("uneven", "global", "sum", {}),  # the wrong pairing: gradients W x
    "combine_sum": ("uneven", "combine", "sum", {"grad_reduction": "sum"}),
    "rank0_empty_mean_of_means": ("rank0_empty", "mean", "ddp", {}),
    "rank0_empty": ("rank0_empty", "global", "ddp", {}),
    "rank0_empty_sum": ("rank0_empty", "global", "sum", {"grad_reduction": "sum"}),
    "all_empty_nan": ("all_empty", "global", "ddp", {}),
    "all_empty_zero": ("all_empty", "global", "ddp", {"empty": "zero"}),
}


# -- data, model, reference (shared by this process and the ranks) -------------------------

def _data(layout):
    """The concatenated batch: inputs (WORLD*ROWS, FEATURES), targets with IGNORE rows."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(WORLD * ROWS, FEATURES, generator=g, dtype=torch.float64)
    y = torch.randint(0, CLASSES, (WORLD * ROWS,), generator=g)
    for rank, valid in enumerate(LAYOUTS[layout]):
        y[rank * ROWS + valid:(rank + 1) * ROWS] = IGNORE
    return x, y


def _model():
    torch.manual_seed(0)
    return torch.nn.Linear(FEATURES, CLASSES, dtype=torch.float64)


def _grads(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).tolist()


def _reference(layout, empty="nan"):
    """(value, flat gradient) of one process on the whole batch, with torch's own loss."""
    model = _model()
    x, y = _data(layout)
    loss = torch.nn.functional.cross_entropy(model(x), y, ignore_index=IGNORE)
    if empty == "zero" and not (y != IGNORE).any():
        loss = model(x).sum() * 0.0  # keras' divide_no_nan: 0 with a zero gradient
    loss.backward()
    return loss.item() + 0.0, _grads(model)  # + 0.0: no -0.0 in the table


# -- the ranks ----------------------------------------------------------------------------

def _parts(logits, target):
    parts = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="parts")
    assert isinstance(parts, LossParts), f"reduction='parts' returned {type(parts).__name__}"
    return parts


def _run_variant(rank, layout, loss_kind, grad_mode, options, group):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model = _model()
    net = DistributedDataParallel(model) if grad_mode == "ddp" else model
    x, y = _data(layout)
    x, y = x[rank * ROWS:(rank + 1) * ROWS], y[rank * ROWS:(rank + 1) * ROWS]
    kwargs = {k: v for k, v in options.items() if k != "group"}
    if "group" in options:
        kwargs["group"] = group
    if loss_kind == "mean":
        loss = F.cross_entropy(net(x), y, ignore_index=IGNORE)
    elif loss_kind == "global":
        loss = global_mean(_parts(net(x), y), **kwargs)
    else:  # two micro-batches of uneven sizes, combined, then one global mean
        parts = lossy_core.combine(_parts(net(x[:3]), y[:3]), _parts(net(x[3:]), y[3:]))
        loss = global_mean(parts, **kwargs)
    loss.backward()
    if grad_mode == "sum":
        for p in model.parameters():
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
    return {"value": loss.item(), "grad": _grads(model),
            "type": type(loss).__name__, "requires_grad": loss.requires_grad}


def _rank_main(rank, port, outdir):
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    try:
        group = dist.new_group(list(range(WORLD)))
        out = {name: _run_variant(rank, *spec, group=group) for name, spec in VARIANTS.items()}
    finally:
        dist.destroy_process_group()
    with open(os.path.join(outdir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)  # NaN is written as NaN, which json reads back


def _main(outdir, port):
    import torch.multiprocessing as mp

    with open(os.path.join(outdir, "parent.json"), "w") as f:
        # Checked before any collective runs: importing lossy_torch stays cheap.
        json.dump({"funcol_imported_by_lossy_torch": FUNCOL in sys.modules}, f)
    mp.spawn(_rank_main, args=(port, outdir), nprocs=WORLD, join=True)


# -- the tests ----------------------------------------------------------------------------

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks():
    """{"parent": ..., 0: {variant: result}, 1: {...}}: one run of both gloo ranks."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    try:
        _free_port()
    except OSError as error:
        pytest.skip(f"cannot bind a local TCP port for the gloo rendezvous: {error}")
    for attempt in range(2):  # the free port can be taken between the probe and the bind
        with tempfile.TemporaryDirectory() as outdir:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), outdir, str(_free_port())],
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode == 0:
                out = {"parent": json.load(open(os.path.join(outdir, "parent.json")))}
                for rank in range(WORLD):
                    out[rank] = json.load(open(os.path.join(outdir, f"rank{rank}.json")))
                return out
        if "address already in use" not in proc.stderr.lower() or attempt:
            pytest.fail(f"the 2-rank gloo run failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")


def _err(grad, ref):
    """max |grad - ref|, NaN where either has a NaN (Python's max would skip some NaNs)."""
    errors = [abs(a - b) for a, b in zip(grad, ref, strict=True)]
    return math.nan if any(map(math.isnan, errors)) else max(errors)


def _row(ranks, name):
    layout, _, _, options = VARIANTS[name]
    ref_value, ref_grad = _reference(layout, options.get("empty", "nan"))
    values = [ranks[r][name]["value"] for r in range(WORLD)]
    errors = [_err(ranks[r][name]["grad"], ref_grad) for r in range(WORLD)]
    text = (f"{name:26s} {'  '.join(f'{v:9.6f}' for v in values)}  {ref_value:9.6f}  {max(errors):.2e}")
    return values, errors, ref_value, ref_grad, text


def test_table(ranks):
    """The numbers for a closing note (``pytest -s``)."""
    lines = [f"{'variant':26s} {'rank 0':>9s}  {'rank 1':>9s}  {'reference':>9s}  max|grad-ref| (W={WORLD}, float64)"]
    lines += [_row(ranks, name)[-1] for name in VARIANTS]
    print("\n" + "\n".join(lines))
    assert len(lines) == len(VARIANTS) + 1


def test_mean_of_means_is_wrong(ranks):
    values, errors, ref, _, text = _row(ranks, "mean_of_means")
    assert max(errors) > 1e-2, text  # (the values may happen to be near the reference; the gradients are not)


@pytest.mark.parametrize("name", ["global_mean", "global_mean_group", "global_mean_sum", "combine_sum",
                                  "rank0_empty", "rank0_empty_sum"])
def test_global_mean_is_one_process(ranks, name):
    values, errors, ref, _, text = _row(ranks, name)
    assert all(r[name]["requires_grad"] and r[name]["type"] == "Tensor" for r in (ranks[0], ranks[1])), text
    assert values[0] == values[1], text  # the same global value on every rank
    assert abs(values[0] - ref) <= 1e-12 * abs(ref), text
    assert max(errors) <= 1e-12, text


def test_avg_pairing_under_summed_gradients_is_w_times(ranks):
    """grad_reduction must match the wrapper: 'avg' with summed gradients is W x too large."""
    values, _, ref, ref_grad, text = _row(ranks, "avg_under_sum")
    assert abs(values[0] - ref) <= 1e-12 * abs(ref), text
    for r in range(WORLD):
        assert _err([g / WORLD for g in ranks[r]["avg_under_sum"]["grad"]], ref_grad) <= 1e-12, text


def test_rank_with_every_target_ignored(ranks):
    # Mean of means: the empty rank logs 0/0 = NaN and contributes a zero gradient (torch's
    # all-ignored gradient), so DDP's average halves the other rank's: finite and wrong.
    values, errors, ref, _, text = _row(ranks, "rank0_empty_mean_of_means")
    assert math.isnan(values[0]) and math.isfinite(values[1]), text
    assert math.isfinite(max(errors)) and max(errors) > 1e-2, text
    # global_mean: the empty rank adds 0 to the numerator and 0 to the count.
    values, errors, ref, _, text = _row(ranks, "rank0_empty")
    assert math.isfinite(ref) and values[0] == values[1] and abs(values[0] - ref) <= 1e-12 * abs(ref), text
    assert max(errors) <= 1e-12, text


def test_globally_empty_batch_follows_the_policy(ranks):
    values, errors, ref, _, text = _row(ranks, "all_empty_nan")
    assert math.isnan(ref) and all(math.isnan(v) for v in values), text  # torch: 0/0
    assert errors == [0.0, 0.0], text  # torch's gradient where every target is ignored: zero, not NaN
    values, errors, ref, _, text = _row(ranks, "all_empty_zero")
    assert values == [0.0, 0.0] and ref == 0.0 and max(errors) == 0.0, text
    assert all(g == 0.0 for r in range(WORLD) for g in ranks[r]["all_empty_zero"]["grad"]), text


def test_importing_lossy_torch_does_not_load_collectives(ranks):
    assert ranks["parent"] == {"funcol_imported_by_lossy_torch": False}


# -- one process: no process group ---------------------------------------------------------

def _local_parts(valid=3):
    x = torch.randn(5, CLASSES, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 1, 0])
    y[valid:] = IGNORE
    return x, F.cross_entropy(x, y, ignore_index=IGNORE, reduction="parts"), y


@pytest.mark.parametrize("empty", lossy_core.EMPTY_POLICIES)
@pytest.mark.parametrize("valid", [3, 0])
def test_without_process_group_is_finalize(empty, valid):
    assert not torch.distributed.is_initialized()
    x, parts, _ = _local_parts(valid)
    got = global_mean(parts, empty=empty, grad_reduction="sum")
    want = lossy_core.finalize(parts, empty=empty)
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)
    (g_got,) = torch.autograd.grad(got, x, retain_graph=True)
    (g_want,) = torch.autograd.grad(want, x)
    torch.testing.assert_close(g_got, g_want, equal_nan=True, rtol=0, atol=0)


def test_without_distributed_build(monkeypatch):
    """A torch built without torch.distributed: a single process, no import of collectives."""
    monkeypatch.setattr(torch.distributed, "is_available", lambda: False)
    x, parts, y = _local_parts()
    torch.testing.assert_close(global_mean(parts),
                               torch.nn.functional.cross_entropy(x, y, ignore_index=IGNORE), rtol=1e-15, atol=0)


def test_attribute_and_import_paths():
    assert lossy_torch.distributed.global_mean is global_mean
    assert "distributed" in lossy_torch.__all__


@pytest.mark.parametrize("bad, error, match", [
    ({"empty": "ignore"}, ValueError, "empty must be one of 'nan', 'zero', 'clamp1', got 'ignore'"),
    ({"grad_reduction": "mean"}, ValueError, "grad_reduction must be one of 'avg', 'sum', got 'mean'"),
    ({"grad_reduction": None}, ValueError, "grad_reduction must be one of"),
])
def test_bad_options(bad, error, match):
    parts = LossParts(torch.tensor(3.0, requires_grad=True), torch.tensor(2.0))
    with pytest.raises(error, match=match):
        global_mean(parts, **bad)


@pytest.mark.parametrize("parts, match", [
    (torch.tensor(1.0), "parts must be a .numerator, denominator. pair.*got Tensor"),
    ((torch.tensor(1.0),) * 3, "parts must be a .numerator, denominator. pair.*got tuple"),
    ([torch.tensor(1.0), torch.tensor(2.0)], "got list"),
    ((1.0, torch.tensor(2.0)), "parts.numerator must be a torch.Tensor, got float"),
    ((torch.tensor(1.0), 2), "parts.denominator must be a torch.Tensor, got int"),
])
def test_bad_parts(parts, match):
    with pytest.raises(TypeError, match=match):
        global_mean(parts)


def test_scale_grad_keeps_the_value():
    from lossy_torch.distributed import _ScaleGrad

    x = torch.tensor([2.0, math.inf, -3.0], dtype=torch.float64, requires_grad=True)
    y = _ScaleGrad.apply(x, 0.25)
    assert torch.equal(y.detach(), x.detach())  # inf stays inf (x - x.detach() would be NaN)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert g.tolist() == [0.25, 0.25, 0.25]


if __name__ == "__main__":  # the 2-rank run, started by the ``ranks`` fixture
    _main(sys.argv[1], int(sys.argv[2]))
