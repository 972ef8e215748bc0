"""``lossy_torch``'s ``linear_cross_entropy``: drop-in, options, autograd, memory, low precision.

Every expected value is torch 2.13 run live on the same inputs (its reference path,
``options=None``, is ``cross_entropy(linear(input, W, b), ...)``), or is derived in a comment
from the sizes of the tensors involved. Where torch's chunked path (``options=...``) behaves
differently from its reference path, the test runs it too, so the difference is documented by
a check that fails if torch changes. Value/gradient parity for every option on every backend is
the conformance suite's job, not this file's.

1. Drop-in: signatures, the module's parameters and state dict, ``extra_repr``.
2. ``options``: a ``torch.nn.LinearCrossEntropyOptions`` sets the chunk (``chunk_size_of``),
   never the values; malformed options and accumulator dtypes raise as torch does.
3. Autograd: retain_graph, ``torch.func``, ``torch.compile``, all-ignored batches, ``'none'``,
   ``return_lse``, only the requested gradients, a differentiable class weight, ``no_grad``.
4. Memory, counted exactly (``benchmarks.live_memory.LiveBytes``): gradients plus one chunk.
5. bfloat16/float16 accuracy against a float64 truth, next to torch's two paths.
"""

from __future__ import annotations

import inspect
import types

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch.nn import LinearCrossEntropyOptions as Options  # noqa: E402  (torch >= 2.13)

import lossy_core._linear as core_linear  # noqa: E402
import lossy_torch  # noqa: E402
import lossy_torch._linear as adapter  # noqa: E402
import lossy_torch.functional as LF  # noqa: E402
from benchmarks.live_memory import LiveBytes  # noqa: E402

F64 = dict(rtol=1e-12, atol=1e-14)  # lossy's float64 parity target against torch (DESIGN.md)


def _data(n=64, d=8, v=50, *, dtype=torch.float64, seed=0, bias=False, ignored=0):
    """``x (n, d)``, ``W (v, d)``, ``t (n,)`` (the first ``ignored`` targets -100) and a bias."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(v, d, generator=g, dtype=torch.float64).to(dtype)
    t = torch.randint(0, v, (n,), generator=g)
    t[:ignored] = -100
    b = torch.randn(v, generator=g, dtype=torch.float64).to(dtype) if bias else None
    return x, w, t, b


def _value_and_grads(fn, tensors, upstream=None, **kw):
    """``fn(*leaves, **kw)`` on fresh leaves of the floating tensors of ``tensors`` (others, and
    None, passed as they are), backward with ``upstream``; returns ``(value, [grad of each])``."""
    leaves = [a.detach().clone().requires_grad_() if a is not None and a.is_floating_point() else a
              for a in tensors]
    value = fn(*leaves, **kw)
    value.backward(upstream)
    return value.detach(), [a.grad if a is not None and a.is_floating_point() else None for a in leaves]


def _lossy(x, w, t, b=None, **kw):
    return LF.linear_cross_entropy(x, w, t, linear_bias=b, **kw)


def _torch(x, w, t, b=None, **kw):
    return F.linear_cross_entropy(x, w, t, linear_bias=b, **kw)


def _assert_same(ours, theirs, **tol):
    tol = tol or F64
    torch.testing.assert_close(ours[0], theirs[0], **tol, equal_nan=True)
    for a, b in zip(ours[1], theirs[1]):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, **tol)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread for this file. The results do not depend on it (memory is counted
    per op output; the bounds and tolerances hold on any thread count), but on a busy 2-core
    machine every parallel op of a many-chunk loop can wait milliseconds on a descheduled
    thread: the 128-op-per-chunk loops ran 50x slower with 2 threads than with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def chunks(monkeypatch):
    """The chunk (rows) of every plan the adapter builds in this test."""
    seen = []
    real = adapter.plan

    def spy(*args, **kwargs):
        p = real(*args, **kwargs)
        seen.append(p.chunk)
        return p

    monkeypatch.setattr(adapter, "plan", spy)
    return seen


# --------------------------------------------------------------------------- 1. drop-in

def _parameters(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("ours, theirs", [
    (LF.linear_cross_entropy, F.linear_cross_entropy),
    (lossy_torch.LinearCrossEntropyLoss.__init__, torch.nn.LinearCrossEntropyLoss.__init__),
], ids=["functional", "module"])
def test_signature_starts_with_torchs(ours, theirs):
    torch_params = _parameters(theirs)
    lossy_params = _parameters(ours)
    # torch's parameters, in torch's order, with torch's kinds and defaults (annotations aside)
    assert lossy_params[:len(torch_params)] == torch_params
    # lossy's extras come after them, keyword-only with a default: every torch call still binds
    extras = lossy_params[len(torch_params):]
    assert [name for name, _, _ in extras] == ["lse_square_scale", "softcap", "return_lse"]
    for name, kind, default in extras:
        assert kind is inspect.Parameter.KEYWORD_ONLY and default is not inspect.Parameter.empty, name


@pytest.mark.parametrize("bias, out_features, dtype", [
    (False, (), None), (True, (), None), (False, (3,), None), (True, (2, 3), torch.float64),
])
def test_module_parameters_are_bit_identical_to_torchs(bias, out_features, dtype):
    kw = dict(bias=bias, out_features=out_features, dtype=dtype)
    torch.manual_seed(11)
    theirs = torch.nn.LinearCrossEntropyLoss(7, 13, **kw)
    after_theirs = torch.get_rng_state()
    torch.manual_seed(11)
    ours = lossy_torch.LinearCrossEntropyLoss(7, 13, **kw)
    # the same random draws, in the same order: the next draw after construction is the same too
    assert torch.equal(torch.get_rng_state(), after_theirs)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in b:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


@pytest.mark.parametrize("out_features", [(), (3,)])
def test_load_state_dict_from_torchs_module_and_back(out_features):
    n, d, c = 12, 5, 9
    weight = torch.rand(c, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.5
    ctor = dict(out_features=out_features, bias=True, dtype=torch.float64, weight=weight, ignore_index=2)
    torch.manual_seed(1)
    theirs = torch.nn.LinearCrossEntropyLoss(d, c, **ctor)
    torch.manual_seed(2)  # other parameters, overwritten by the load
    ours = lossy_torch.LinearCrossEntropyLoss(d, c, **ctor)
    ours.load_state_dict(theirs.state_dict())  # strict: same keys (weight is a buffer in both)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, d, dtype=torch.float64, generator=g)
    t = torch.randint(0, c, (n, *out_features), generator=g)

    def loss_and_grads(module):
        module.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        loss = module(xi, t)
        loss.backward()
        return loss.detach(), [xi.grad, module.linear.weight.grad, module.linear.bias.grad]

    _assert_same(loss_and_grads(ours), loss_and_grads(theirs))
    torch.manual_seed(4)
    back = torch.nn.LinearCrossEntropyLoss(d, c, **ctor)
    back.load_state_dict(ours.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


@pytest.mark.parametrize("ctor", [
    {}, dict(bias=True, out_features=(2, 3), reduction="sum", ignore_index=3, label_smoothing=0.1,
             options=Options(batch_chunk_size=4)),
])
def test_extra_repr_is_torchs(ctor):
    ours = lossy_torch.LinearCrossEntropyLoss(6, 10, **ctor)
    theirs = torch.nn.LinearCrossEntropyLoss(6, 10, **ctor)
    assert ours.extra_repr() == theirs.extra_repr()
    assert repr(ours) == repr(theirs)  # the same class name and child (linear): Linear(...)
    # lossy's own options are shown only when set, after torch's
    extended = lossy_torch.LinearCrossEntropyLoss(6, 10, **ctor, lse_square_scale=1e-4, softcap=30.0)
    assert extended.extra_repr() == theirs.extra_repr() + ", lse_square_scale=0.0001, softcap=30.0"


# --------------------------------------------------------------------------- 2. options

# Options whose chunk is torch's (compared with ``options._adjust``, run live), and those that
# take lossy's byte budget instead ("auto", None: see ``chunk_size_of``).
OPTION_CASES = {
    "batch_chunk_size=7": (Options(batch_chunk_size=7), "torch"),  # 7 does not divide N=64
    "batch_chunk_size>N": (Options(batch_chunk_size=1000), "torch"),  # clamped to N
    "aspect_ratio:2": (Options(chunking_method="aspect_ratio:2"), "torch"),
    "aspect_ratio": (Options(chunking_method="aspect_ratio"), "torch"),
    "auto": (Options(), "budget"),
    "chunking_method=None": (Options(chunking_method=None), "budget"),
    "options=None": (None, "budget"),
    "duck-typed": (types.SimpleNamespace(batch_chunk_size=7, chunking_method="auto", acc_policy="auto",
                                         acc_dtype=None), "torch"),
}


@pytest.mark.parametrize("case", OPTION_CASES)
def test_options_set_the_chunk_and_give_torchs_reference_values(case, chunks, monkeypatch):
    options, kind = OPTION_CASES[case]
    n, d, v = 64, 8, 50
    # lossy's automatic chunk is CHUNK_BYTES // (V * itemsize) rows, at least MIN_CHUNK_ROWS (128,
    # more than N here). With a budget of 5 float64 logits rows (5 * 50 * 8 bytes) and no minimum
    # it is 5 rows, where torch's "auto" (CPU float64: aspect_ratio:2) would take 8 and its
    # chunking_method=None one chunk of 64: the test tells the three apart, over several chunks.
    monkeypatch.setattr(core_linear, "CHUNK_BYTES", 5 * v * 8)
    monkeypatch.setattr(core_linear, "MIN_CHUNK_ROWS", 1, raising=False)
    x, w, t, b = _data(n, d, v, bias=True, ignored=5)
    ours = _value_and_grads(_lossy, (x, w, t, b), options=options)
    theirs = _value_and_grads(_torch, (x, w, t, b))  # the reference path
    _assert_same(ours, theirs)
    assert len(chunks) == 1  # 'mean': one pass, the backward only scales
    if kind == "torch":
        expected = Options(batch_chunk_size=options.batch_chunk_size, chunking_method=options.chunking_method) \
            ._adjust(n, d, v, x.dtype, x.device).batch_chunk_size
        assert adapter.chunk_size_of(options, n, d, v) == expected
    else:
        assert adapter.chunk_size_of(options, n, d, v) is None
        expected = 5  # CHUNK_BYTES // (v * 8)
        if options is not None:  # documents that torch would chunk differently
            assert options._adjust(n, d, v, x.dtype, x.device).batch_chunk_size != expected
    assert chunks[0] == expected


@pytest.mark.parametrize("method", ["aspect_ratio", "aspect_ratio:2", "aspect_ratio:3", "aspect_ratio:16"])
@pytest.mark.parametrize("n, d, v", [
    (4096, 1024, 32000), (8192, 4096, 128256), (2048, 512, 128256), (16384, 4096, 131072),  # the note's §2.2
    (37, 8, 50), (1, 8, 50), (5, 64, 10), (1000, 7, 7), (3, 2, 1000),
])
def test_aspect_ratio_chunks_are_torchs(method, n, d, v):
    options = Options(chunking_method=method)
    assert adapter.chunk_size_of(options, n, d, v) == \
        options._adjust(n, d, v, torch.float32, torch.device("cpu")).batch_chunk_size


@pytest.mark.parametrize("batch_chunk_size, method", [(8, "aspect_ratio"), (3, "aspect_ratio:2")])
def test_conflicting_chunk_options_raise_as_torch_does(batch_chunk_size, method):
    # 32 rows, V=40, D=5: aspect_ratio gives next_pow2(ceil(32 / ceil(40 / 5))) = 4 rows, ':2' 2 rows;
    # torch's _adjust refuses a batch_chunk_size that disagrees (run live for the message).
    x, w, t, _ = _data(32, 5, 40)
    options = Options(batch_chunk_size=batch_chunk_size, chunking_method=method)
    with pytest.raises(ValueError) as theirs:
        F.linear_cross_entropy(x, w, t, options=options)
    with pytest.raises(ValueError) as ours:
        LF.linear_cross_entropy(x, w, t, options=options)
    assert str(ours.value) == str(theirs.value)
    agreeing = Options(batch_chunk_size=4, chunking_method="aspect_ratio")  # the same rows: accepted, as torch
    _assert_same(_value_and_grads(_lossy, (x, w, t, None), options=agreeing), _value_and_grads(_torch, (x, w, t, None)))


@pytest.mark.parametrize("options", [object(), types.SimpleNamespace(batch_chunk_size=4)],
                         ids=["no-fields", "some-fields"])
def test_options_without_the_fields_raise_type_error(options):
    x, w, t, _ = _data(8, 4, 6)
    with pytest.raises(TypeError, match="options"):
        LF.linear_cross_entropy(x, w, t, options=options)
    # torch itself fails on such an object with an AttributeError ('_adjust'), run live here:
    # lossy's TypeError says what was expected instead.
    with pytest.raises(AttributeError):
        F.linear_cross_entropy(x, w, t, options=options)


DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.mark.parametrize("acc_dtype", DTYPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_acc_dtype_is_accepted_or_refused_as_torch_does(dtype, acc_dtype):
    x, w, t, _ = _data(16, 8, 20, dtype=dtype)
    options = Options(acc_dtype=acc_dtype)
    try:
        F.linear_cross_entropy(x, w, t, options=options)
    except RuntimeError as error:  # e.g. float32 input with acc_dtype=float64
        with pytest.raises(RuntimeError) as ours:
            LF.linear_cross_entropy(x, w, t, options=options)
        assert str(ours.value) == str(error)
    else:
        LF.linear_cross_entropy(x, w, t, options=options)


# --------------------------------------------------------------------------- 3. autograd

def test_second_backward_with_retain_graph():
    x, w, t, _ = _data(ignored=3)
    xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss = LF.linear_cross_entropy(xi, wi, t, options=Options(batch_chunk_size=8))
    (3 * loss).backward(retain_graph=True)  # an upstream gradient of 3: scaled in place
    first = [xi.grad.clone(), wi.grad.clone()]
    xi.grad = wi.grad = None
    (3 * loss).backward()  # recomputed from the inputs
    second = [xi.grad, wi.grad]
    reference = _value_and_grads(lambda a, b: 3 * F.linear_cross_entropy(a, b, t), (x, w))[1]
    for a, b, r in zip(first, second, reference):
        torch.testing.assert_close(a, r, **F64)
        torch.testing.assert_close(b, r, **F64)
    # torch's chunked path refuses the second backward (without allow_retain_graph=True): live
    xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
    theirs = F.linear_cross_entropy(xi, wi, t, options=Options(batch_chunk_size=8))
    theirs.backward(retain_graph=True)
    with pytest.raises(RuntimeError):
        theirs.backward()


def test_func_grad_and_vjp_give_the_reference_gradients():
    x, w, t, b = _data(bias=True, ignored=4)
    options = Options(batch_chunk_size=8)
    ours = torch.func.grad(lambda *a: _lossy(*a[:2], t, a[2], options=options), argnums=(0, 1, 2))(x, w, b)
    reference = _value_and_grads(_torch, (x, w, t, b))[1]
    for g, r in zip(ours, [reference[0], reference[1], reference[3]]):
        torch.testing.assert_close(g, r, **F64)
    # vjp of the per-row losses with a random cotangent
    cotangent = torch.randn(x.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    value, vjp = torch.func.vjp(lambda a, c: _lossy(a, c, t, b, reduction="none", options=options), x, w)
    reference = _value_and_grads(lambda a, c: _torch(a, c, t, b, reduction="none"), (x, w), cotangent)
    torch.testing.assert_close(value, reference[0], **F64)
    for g, r in zip(vjp(cotangent), reference[1]):
        torch.testing.assert_close(g, r, **F64)
    # torch's chunked path cannot run under torch.func.grad (its autograd.Function has no
    # setup_context), run live
    with pytest.raises(RuntimeError, match="setup_context"):
        torch.func.grad(lambda a: _torch(a, w, t, options=options))(x)


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compile_fullgraph_forward_and_backward_equal_eager(fresh_dynamo):
    # aot_eager traces forward and backward through Dynamo and AOTAutograd (fullgraph=True raises
    # on any graph break) without inductor's codegen, which takes ~10 s on two CPUs.
    x, w, t, b = _data(16, 8, 40, bias=True, ignored=2)
    options = Options(batch_chunk_size=4)
    compiled = torch.compile(lambda *a: _lossy(*a, options=options), fullgraph=True, dynamic=False,
                             backend="aot_eager")
    ours = _value_and_grads(compiled, (x, w, t, b))
    eager = _value_and_grads(lambda *a: _lossy(*a, options=options), (x, w, t, b))
    _assert_same(ours, eager)
    _assert_same(ours, _value_and_grads(_torch, (x, w, t, b)))


def test_all_ignored_batch_gives_nan_loss_and_zero_gradients():
    x, w, t, b = _data(16, 8, 20, bias=True, ignored=16)
    ours = _value_and_grads(_lossy, (x, w, t, b), options=Options(batch_chunk_size=4))
    theirs = _value_and_grads(_torch, (x, w, t, b))  # reference: NaN loss, zero gradients
    assert torch.isnan(theirs[0]) and all(bool((g == 0).all()) for g in theirs[1] if g is not None)
    _assert_same(ours, theirs)
    # torch's chunked path gives NaN gradients instead (0 / 0 in its scale), run live
    chunked = _value_and_grads(_torch, (x, w, t, b), options=Options(batch_chunk_size=4))
    assert torch.isnan(chunked[0]) and torch.isnan(chunked[1][0]).all() and torch.isnan(chunked[1][1]).all()


def test_reduction_none_with_a_random_upstream():
    x, w, t, b = _data(bias=True, ignored=6)
    upstream = torch.randn(x.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    ours = _value_and_grads(_lossy, (x, w, t, b), upstream, reduction="none", options=Options(batch_chunk_size=8))
    _assert_same(ours, _value_and_grads(_torch, (x, w, t, b), upstream, reduction="none"))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("through", ["lse", "loss+lse"])
@pytest.mark.parametrize("single", [False, True], ids=["batched", "unbatched"])
def test_return_lse_gradient(reduction, through, single):
    # The reference: torch autograd through the explicit logits, logsumexp for the lse.
    x, w, t, b = _data(12, 5, 9, bias=True)
    if single:
        x, t = x[0], t[0]
    g = torch.Generator().manual_seed(7)
    up_lse = torch.randn(t.shape, dtype=torch.float64, generator=g)
    up_loss = torch.randn(t.shape if reduction == "none" else (), dtype=torch.float64, generator=g)

    def objective(loss, lse):
        out = (lse * up_lse).sum()
        return out + (loss * up_loss).sum() if through == "loss+lse" else out

    def ours(a, c, d):
        loss, lse = _lossy(a, c, t, d, reduction=reduction, return_lse=True, options=Options(batch_chunk_size=4))
        assert lse.shape == t.shape and lse.dtype == torch.float64
        return objective(loss, lse)

    def theirs(a, c, d):
        logits = F.linear(a, c, d)
        return objective(F.cross_entropy(logits, t, reduction=reduction), torch.logsumexp(logits, dim=-1))

    _assert_same(_value_and_grads(ours, (x, w, b)), _value_and_grads(theirs, (x, w, b)))


@pytest.mark.parametrize("wanted", ["input", "linear_weight", "linear_bias", "input+linear_bias"])
def test_only_the_requested_gradients_are_computed(wanted, monkeypatch):
    x, w, t, b = _data(bias=True, ignored=2)
    asked = []
    real = adapter.run

    def spy(p, **kwargs):
        asked.append(kwargs.get("gradients"))
        return real(p, **kwargs)

    monkeypatch.setattr(adapter, "run", spy)
    names = ("input", "linear_weight", "linear_bias")
    leaves = [a.clone().requires_grad_(name in wanted.split("+")) for name, a in zip(names, (x, w, b))]
    loss = _lossy(leaves[0], leaves[1], t, leaves[2], options=Options(batch_chunk_size=8))
    loss.backward()
    # run()'s gradients are (input, linear_weight, linear_bias, target), in that order
    assert asked == [tuple(name in wanted.split("+") for name in names) + (False,)]
    reference = _value_and_grads(_torch, (x, w, t, b))[1]
    for leaf, name, r in zip(leaves, names, (reference[0], reference[1], reference[3])):
        if name in wanted:
            torch.testing.assert_close(leaf.grad, r, **F64)
        else:
            assert leaf.grad is None


def test_class_weight_requiring_grad_raises_as_torchs_reference():
    x, w, t, _ = _data(16, 8, 20)
    x.requires_grad_()
    weight = torch.rand(20, dtype=torch.float64).requires_grad_()
    with pytest.raises(RuntimeError):  # torch's reference path (nll_loss), run live
        F.linear_cross_entropy(x, w, t, weight=weight)
    with pytest.raises(RuntimeError):
        LF.linear_cross_entropy(x, w, t, weight=weight)
    # torch's chunked path accepts it and gives the weight no gradient (the note's §2.4), live
    F.linear_cross_entropy(x, w, t, weight=weight, options=Options(batch_chunk_size=4)).backward()
    assert weight.grad is None


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_no_grad_forward_returns_the_reference_value(reduction):
    x, w, t, b = _data(bias=True, ignored=3)
    leaves = [a.clone().requires_grad_() for a in (x, w, b)]
    with torch.no_grad():
        ours = _lossy(leaves[0], leaves[1], t, leaves[2], reduction=reduction, options=Options(batch_chunk_size=8))
    assert ours.grad_fn is None and not ours.requires_grad
    torch.testing.assert_close(ours, _torch(x, w, t, b, reduction=reduction), **F64)


# --------------------------------------------------------------------------- 4. memory

def _peak(fn, n, d, v, chunk, reduction):
    """Live bytes of one forward+backward, counted by ``LiveBytes`` (inputs created before)."""
    x, w, t, _ = _data(n, d, v, dtype=torch.float32, seed=n)
    x.requires_grad_()
    w.requires_grad_()
    upstream = torch.randn(n) if reduction == "none" else None
    with LiveBytes() as live:
        loss = fn(x, w, t, options=Options(batch_chunk_size=chunk), reduction=reduction)
        loss.backward(upstream)
        after = live.current
    return live.peak, after, loss.nbytes


def _slack(n, chunk, positions=1, bias_columns=0):
    """What besides the gradients and one chunk's logits may be live: a few vectors per row. lossy
    keeps at most eight per-position vectors of at most 8 bytes an entry (targets, kept mask,
    target weight, scale, the per-chunk losses and lse and their concatenations; measured: 14-37
    bytes per row), the same per chunk position (max, sum of exponentials, ratio, ...), 0-d
    scalars (1 KiB) and, with a bias, a chunk's float32 column sum before it joins db."""
    return 8 * 8 * positions * (n + chunk) + 1024 + 4 * bias_columns


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_peak_is_the_gradients_plus_one_chunk(reduction):
    n, d, v, chunk = 1024, 64, 8192, 64
    grads = (n * d + v * d) * 4  # dX + dW, float32: 256 KiB + 2 MiB
    logits = chunk * v * 4  # one chunk's float32 logits: 2 MiB
    peak, after, loss_bytes = _peak(LF.linear_cross_entropy, n, d, v, chunk, reduction)
    # torch's, for the record only: at 64 rows a chunk is as big as dW, so both peaks are ~4.5 MiB
    # (the ratio is tested below, at 8 rows)
    theirs = _peak(F.linear_cross_entropy, n, d, v, chunk, reduction)[0]
    print(f"\n{reduction}: peak {peak} B = dX+dW {grads} + chunk {logits} + {peak - grads - logits}"
          f" (slack allowed {_slack(n, chunk)}); torch chunked (as LiveBytes sees it) {theirs} B")
    assert peak <= grads + logits + _slack(n, chunk)
    # All that outlives the call: x.grad, W.grad (the very tensors computed in forward: a copy
    # would have shown in the peak, dW exceeds the slack tenfold) and the loss.
    assert after == grads + loss_bytes


def test_peak_is_at_most_0_6_of_torchs_chunked_path():
    # torch's chunked op allocates (and zero-fills) a gradient for each of its three unused
    # outputs in backward (the note's §2.6): its peak is 2 (dX + dW). lossy's is dX + dW + one
    # chunk, so the ratio is below 0.6 where a chunk is small against the gradients: 8 rows here
    # (256 KiB of logits against 2.25 MiB of gradients; at 64 rows the chunk is as big as dW and
    # both peaks are ~4.5 MiB). LiveBytes does not see inside torch's custom op (its forward's
    # logits buffer), so torch's number is a lower bound of its true peak: the ratio holds a
    # fortiori.
    n, d, v, chunk = 1024, 64, 8192, 8
    grads, logits = (n * d + v * d) * 4, chunk * v * 4
    ours, _, _ = _peak(LF.linear_cross_entropy, n, d, v, chunk, "mean")
    theirs, _, _ = _peak(F.linear_cross_entropy, n, d, v, chunk, "mean")
    print(f"\nlossy {ours} B, torch chunked {theirs} B (2 (dX+dW) = {2 * grads}): {ours / theirs:.3f}x")
    assert ours <= grads + logits + _slack(n, chunk)
    assert theirs >= 2 * grads
    assert ours <= 0.6 * theirs


@pytest.mark.parametrize("out_features, bias", [((), False), ((), True), ((2,), True)])
def test_module_peak_is_the_gradients_plus_one_chunk(out_features, bias):
    # The module's flat (C * P, D) weight is reshaped in forward: its gradient must still be the
    # tensor computed in forward (no copy through the reshape's backward or AccumulateGrad).
    n, d, c, chunk = 1024, 64, 4096, 64
    positions = 2 if out_features else 1
    module = lossy_torch.LinearCrossEntropyLoss(d, c, out_features=out_features, bias=bias,
                                                options=Options(batch_chunk_size=chunk))
    x = torch.randn(n, d, requires_grad=True)
    t = torch.randint(0, c, (n, *out_features))
    columns = c * positions
    grads = (n * d + columns * d + (columns if bias else 0)) * 4  # dX + dW (+ db), float32
    logits = chunk * columns * 4
    with LiveBytes() as live:
        loss = module(x, t)
        loss.backward()
        after = live.current
    slack = _slack(n, chunk, positions, columns if bias else 0)
    assert live.peak <= grads + logits + slack, (live.peak - grads - logits, slack)
    assert after == grads + loss.nbytes


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_memory_is_flat_in_the_number_of_rows(reduction):
    d, v, chunk = 64, 8192, 64
    peaks = {n: _peak(LF.linear_cross_entropy, n, d, v, chunk, reduction)[0] for n in (256, 1024, 4096)}
    print(f"\n{reduction}: peaks {peaks}")
    for n in (1024, 4096):
        # only dX (n * d float32) grows with n; dW and the chunk do not
        assert peaks[n] - peaks[256] <= 1.1 * (n - 256) * d * 4, n


# --------------------------------------------------------------------------- 5. low precision

ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}  # unit roundoff: half an ulp at 1


def _rel(a, b):
    return ((a.double() - b).abs().max() / b.abs().max()).item()


def test_half_precision_accuracy_against_float64(capsys):
    # The note's §2.5 shape. Truth: float64 autograd of the explicit logits of the same
    # (rounded) half-precision values.
    n, d, v = 256, 64, 1000
    rows = []
    for dtype in (torch.bfloat16, torch.float16):
        x, w, t, _ = _data(n, d, v, dtype=dtype, seed=0)
        truth = _value_and_grads(lambda a, c: F.cross_entropy(a @ c.T, t), (x.double(), w.double()))
        errors = {}
        for name, fn in (("lossy_torch", lambda a, c: LF.linear_cross_entropy(a, c, t)),
                         ("torch reference", lambda a, c: F.linear_cross_entropy(a, c, t)),
                         ("torch chunked auto", lambda a, c: F.linear_cross_entropy(a, c, t, options=Options()))):
            value, grads = _value_and_grads(fn, (x, w))
            assert value.dtype == dtype and grads[0].dtype == dtype and grads[1].dtype == dtype
            errors[name] = [_rel(value, truth[0]), _rel(grads[0], truth[1][0]), _rel(grads[1], truth[1][1])]
            rows.append((str(dtype).replace("torch.", ""), name, *errors[name]))
        ours = errors["lossy_torch"]
        # lossy computes in float32 and rounds the loss and each gradient once to the input dtype:
        # the error is that rounding, at most the unit roundoff relative to the largest entry.
        u = ROUNDOFF[dtype]
        assert max(ours) <= u, (dtype, ours)
        # dX and dW at least as accurate as torch's auto (fp32 accumulation too: equal dX, and
        # its dW is not rounded once) and as the reference path in the input dtype. The 5% allows
        # a float32 summation order that flips the rounding of one worst-case entry.
        for k in (1, 2):
            assert ours[k] <= 1.05 * errors["torch chunked auto"][k], (dtype, k, errors)
            assert ours[k] <= errors["torch reference"][k], (dtype, k, errors)
    with capsys.disabled():
        print(f"\nmax relative error against float64 (N={n}, D={d}, V={v}):")
        print(f"{'dtype':9} {'implementation':19} {'loss':>9} {'dX':>9} {'dW':>9}")
        for dtype, name, *errs in rows:
            print(f"{dtype:9} {name:19} " + " ".join(f"{e:9.2e}" for e in errs))
