"""ctc_loss / CTCLoss against torch, live: layouts, lengths given as tuples, errors,
tracing (jax.jit, torch.compile), and the scan primitive the recursion runs on.

Every expected value is torch's, computed here on the same inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lossy_core  # noqa: E402
import lossy_torch  # noqa: E402
import lossy_torch.functional as LF  # noqa: E402

T, N, C = 7, 3, 5


def _inputs(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(T, N, C, generator=g, dtype=torch.float64).log_softmax(-1).to(dtype)
    targets = torch.randint(1, C, (N, 4), generator=g)
    targets[0, :3] = torch.tensor([2, 2, 3])  # a repeat needs a blank between
    return log_probs, targets, torch.tensor([7, 6, 3]), torch.tensor([4, 2, 0])


def _value_and_grad(fn, log_probs, *rest, **kw):
    x = log_probs.detach().clone().requires_grad_(True)
    out = fn(x, *rest, **kw)
    upstream = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    (grad,) = torch.autograd.grad(out, x, upstream)
    return out.detach(), grad


def _assert_same(ours, theirs, rtol=1e-12, atol=1e-12):
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=True)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("layout", ["padded", "concatenated", "tuples", "int32"])
def test_functional_matches_torch(layout, zero_infinity, reduction):
    log_probs, targets, il, tl = _inputs()
    il = torch.tensor([7, 2, 3])  # sample 1: 2 labels in 2 frames is possible, [2, 2, 3] in 7 is too
    if layout == "concatenated":
        targets = torch.cat([targets[n, : tl[n]] for n in range(N)])
    elif layout == "tuples":
        il, tl = tuple(il.tolist()), tuple(tl.tolist())
    elif layout == "int32":
        targets, il, tl = targets.int(), il.int(), tl.int()
    kw = dict(reduction=reduction, zero_infinity=zero_infinity)
    _assert_same(_value_and_grad(LF.ctc_loss, log_probs, targets, il, tl, **kw),
                 _value_and_grad(F.ctc_loss, log_probs, targets, il, tl, **kw))


def test_impossible_alignments_are_inf_and_zero_infinity_zeroes_them():
    log_probs, targets, _, tl = _inputs(1)
    il = torch.tensor([3, 0, 0])  # [2, 2, 3, x] needs 5 frames; an empty input with a target
    for zero_infinity in (False, True):
        ours = _value_and_grad(LF.ctc_loss, log_probs, targets, il, tl, reduction="none", zero_infinity=zero_infinity)
        theirs = _value_and_grad(F.ctc_loss, log_probs, targets, il, tl, reduction="none",
                                 zero_infinity=zero_infinity)
        _assert_same(ours, theirs)
        assert torch.isinf(theirs[0][:2]).all() != zero_infinity
        assert torch.isnan(theirs[1]).any() != zero_infinity


@pytest.mark.parametrize("blank", [0, 2, C - 1])
def test_blank_anywhere_and_targets_that_equal_it(blank):
    log_probs, targets, il, tl = _inputs(2)
    targets = torch.where(targets == blank, (blank % (C - 1)) + 1, targets)
    targets[1, 0] = blank  # torch accepts a target label equal to blank (not the last one: see ctc_loss's docstring)
    assert targets[1, 1] != blank
    _assert_same(_value_and_grad(LF.ctc_loss, log_probs, targets, il, tl, blank=blank, reduction="sum"),
                 _value_and_grad(F.ctc_loss, log_probs, targets, il, tl, blank=blank, reduction="sum"))


def test_unnormalised_log_probs_get_torchs_gradient():
    """torch's gradient is exp(lp) - occupancy, not the derivative for free log_probs."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, N, C, generator=g, dtype=torch.float64)
    _, targets, il, tl = _inputs(3)
    _assert_same(_value_and_grad(LF.ctc_loss, x, targets, il, tl), _value_and_grad(F.ctc_loss, x, targets, il, tl))


@pytest.mark.parametrize("lengths", ["0-d", "(1,)", "ints"])
def test_unbatched(lengths):
    log_probs, targets, _, _ = _inputs(4)
    il, tl = {"0-d": (torch.tensor(7), torch.tensor(3)), "(1,)": (torch.tensor([7]), torch.tensor([3])),
              "ints": ((7,), (3,))}[lengths]
    for target in (targets[0, :3], targets[:1]):  # 1-D: the concatenated form; (1, S): padded
        for reduction in ("none", "mean"):
            _assert_same(_value_and_grad(LF.ctc_loss, log_probs[:, 0], target, il, tl, reduction=reduction),
                         _value_and_grad(F.ctc_loss, log_probs[:, 0], target, il, tl, reduction=reduction))


def test_float32():
    log_probs, targets, il, tl = _inputs(5, torch.float32)
    _assert_same(_value_and_grad(LF.ctc_loss, log_probs, targets, il, tl),
                 _value_and_grad(F.ctc_loss, log_probs, targets, il, tl), rtol=1e-5, atol=1e-6)


def test_module():
    log_probs, targets, il, tl = _inputs(6)
    for kw in ({}, {"blank": 1, "reduction": "sum", "zero_infinity": True}):
        ours, theirs = lossy_torch.CTCLoss(**kw), torch.nn.CTCLoss(**kw)
        assert (ours.blank, ours.reduction, ours.zero_infinity) == (theirs.blank, theirs.reduction,
                                                                    theirs.zero_infinity)
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        t = torch.where(targets == kw.get("blank", 0), 3, targets)
        _assert_same(_value_and_grad(ours, log_probs, t, il, tl), _value_and_grad(theirs, log_probs, t, il, tl))


# ------------------------------------------------------------------------------ errors

def _error_cases():
    lp, tg, il, tl = _inputs(7)
    cat = torch.cat([tg[n, : tl[n]] for n in range(N)])
    return {
        "input_lengths > T": (lp, tg, torch.tensor([8, 6, 3]), tl, {}),
        "input_lengths < 0": (lp, tg, torch.tensor([7, -1, 3]), tl, {}),
        "target_lengths < 0": (lp, tg, il, torch.tensor([4, -2, 0]), {}),
        "target_lengths > S": (lp, tg, il, torch.tensor([5, 2, 0]), {}),
        "concatenated too short": (lp, cat[:-1], il, tl, {}),
        "concatenated too long": (lp, torch.cat([cat, cat]), il, tl, {}),
        "targets batch": (lp, tg[:2], il, tl, {}),
        "targets 3-d": (lp, tg[None], il, tl, {}),
        "log_probs 4-d": (lp[None], tg, il, tl, {}),
        "log_probs 1-d": (lp[0, 0], tg, il, tl, {}),
        "log_probs float16": (lp.half(), tg, il, tl, {}),
        "log_probs int": (tg[None].expand(T, N, 4), tg, il, tl, {}),
        "empty batch": (lp[:, :0], tg[:0], il[:0], tl[:0], {}),
        "float input_lengths": (lp, tg, il.double(), tl, {}),
        "input_lengths size": (lp, tg, il[:2], tl, {}),
        "target_lengths size": (lp, tg, il, tl[:2], {}),
        "blank = C": (lp, tg, il, tl, {"blank": C}),
        "blank < 0": (lp, tg, il, tl, {"blank": -1}),
        "reduction": (lp, tg, il, tl, {"reduction": "avg"}),
    }


CASES = _error_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_errors_like_torch(name):
    lp, tg, il, tl, kw = CASES[name]
    with pytest.raises(Exception) as theirs:
        F.ctc_loss(lp, tg, il, tl, **kw)
    with pytest.raises(Exception) as ours:
        LF.ctc_loss(lp, tg, il, tl, **kw)
    assert type(ours.value) is type(theirs.value)
    # torch's message leads ours (before our own explanation, where we add one)
    assert str(ours.value).startswith(str(theirs.value).split(" (while")[0]), (str(ours.value), str(theirs.value))
    with pytest.raises(type(theirs.value)):  # and the core raises the same on numpy
        lossy_core.ctc_loss(*(a.numpy() for a in (lp, tg, il, tl)), **kw)


def test_label_out_of_range_raises_index_error():
    """A deliberate deviation: torch's CPU kernel reads out of bounds for such a label."""
    lp, tg, il, tl = _inputs(8)
    tg[1, 0] = C
    with pytest.raises(IndexError, match=f"target label {C} is out of bounds"):
        LF.ctc_loss(lp, tg, il, tl)
    tg[1, 0] = 1
    tg[2, 0] = 99  # beyond target_lengths[2] = 0: padding is ignored, as in torch
    _assert_same(_value_and_grad(LF.ctc_loss, lp, tg, il, tl), _value_and_grad(F.ctc_loss, lp, tg, il, tl))


# ------------------------------------------------------------------------------ tracing

def test_torch_compile_with_concatenated_targets():
    torch._dynamo.reset()
    lp, tg, il, tl = _inputs(9)
    cat = torch.cat([tg[n, : tl[n]] for n in range(N)])
    compiled = torch.compile(lambda x: LF.ctc_loss(x, cat, il, tl), fullgraph=True, backend="aot_eager")
    _assert_same(_value_and_grad(compiled, lp), _value_and_grad(F.ctc_loss, lp, cat, il, tl))
    torch._dynamo.reset()


def test_jax_jit_traced_lengths_and_nan_for_invalid_ones():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import lossy_jax

    lp, tg, il, tl = _inputs(10)
    cat = torch.cat([tg[n, : tl[n]] for n in range(N)])
    for targets in (tg, cat):
        args = [jnp.asarray(a.numpy()) for a in (lp, targets, il, tl)]
        value, grad = jax.value_and_grad(lambda x: lossy_jax.ctc_loss(x, *args[1:]))(args[0])
        x = lp.clone().requires_grad_(True)
        want = F.ctc_loss(x, targets, il, tl)
        want.backward()
        np.testing.assert_allclose(float(value), want.item(), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(grad), x.grad.numpy(), rtol=1e-10, atol=1e-12)
    # under jit an invalid length cannot raise: that sample is NaN; eager, the core raises
    bad = jnp.asarray([8, 6, 3])
    out = jax.jit(lambda a, b: lossy_core.ctc_loss(*a, b, jnp.asarray(tl.numpy()), reduction="none"))(
        [jnp.asarray(lp.numpy()), jnp.asarray(tg.numpy())], bad)
    assert np.isnan(np.asarray(out)[0]) and np.isfinite(np.asarray(out)[1:]).all()
    with pytest.raises(RuntimeError, match="at most 7, but got value 8"):
        lossy_core.ctc_loss(jnp.asarray(lp.numpy()), jnp.asarray(tg.numpy()), bad, jnp.asarray(tl.numpy()))


def test_scan_delegation_matches_the_generic_loop():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from lossy_core._primitives import _generic_scan, scan

    xs = (jnp.arange(12.0).reshape(4, 3), jnp.arange(4))

    def step(carry, x):
        value, t = x
        carry = carry * 0.5 + value * t
        return carry, carry + 1

    for reverse in (False, True):
        want = _generic_scan(jnp, step, jnp.zeros(3), xs, reverse)
        got = scan(jnp, step, jnp.zeros(3), xs, reverse)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # and the generic loop is the plain recursion (checked by hand on numpy)
    import array_api_compat.numpy as xp

    carry, ys = _generic_scan(xp, lambda c, x: (c + x[0], c), np.zeros(()), (np.array([1.0, 2.0, 3.0]),))
    assert float(carry) == 6.0 and ys.tolist() == [0.0, 1.0, 3.0]
    carry, ys = _generic_scan(xp, lambda c, x: (c + x[0], c), np.zeros(()), (np.array([1.0, 2.0, 3.0]),),
                              reverse=True)
    assert float(carry) == 6.0 and ys.tolist() == [5.0, 3.0, 0.0]
