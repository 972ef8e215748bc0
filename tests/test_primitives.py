"""Each primitive of ``lossy_core._primitives`` against its generic array-API body.

On every ``xp`` backend, the dispatched primitive (which delegates to torch/jax
natives) must agree with ``_generic_<name>`` and with an independent reference
(torch's float64 natives, run live) on random and edge values: +-inf, all -inf
rows, +-1e4, xlogx(0) = 0, NaN propagation; in float64 and float32. On
torch and jax the gradients of the delegated primitive must equal those of the
generic body differentiated, wherever both are finite.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lossy_core import _primitives as P  # noqa: E402

INF, NAN = math.inf, math.nan

TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=2e-6, atol=2e-6)}
DTYPES = [np.float64, np.float32]


def to_numpy(x):
    try:
        return np.asarray(x)
    except Exception:  # array_api_strict has no __array__
        return np.from_dlpack(x)


def xp_dtype(xp, dtype):
    return xp.float64 if dtype == np.float64 else xp.float32


def close(got, expected, dtype):
    np.testing.assert_allclose(to_numpy(got).astype(np.float64), np.asarray(expected, dtype=np.float64),
                               equal_nan=True, **TOL[dtype])


def _rows():
    rng = np.random.default_rng(0)
    return np.concatenate([
        rng.standard_normal((3, 5)) * 3,
        np.array([
            [-INF, -INF, -INF, -INF, -INF],   # all -inf row
            [-INF, 0.0, 1.0, -INF, 2.0],      # some -inf
            [1e4, -1e4, 0.0, 1e4, 3.0],       # large magnitudes
            [-1e4, -1e4, -1e4, -1e4, -1e4],
            [NAN, 1.0, 2.0, 3.0, 4.0],        # NaN propagates
            [INF, 1.0, 2.0, 3.0, 4.0],        # +inf
        ]),
    ])


POINTS = np.array([-INF, -1e4, -800.0, -100.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0, 100.0, 800.0, 1e4, INF,
                   NAN])


# -- logsumexp / log_softmax -------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis,keepdims", [(1, False), (-1, True), (0, False), (0, True)])
def test_logsumexp(xp, dtype, axis, keepdims):
    values = _rows().astype(dtype)
    x = xp.asarray(values)
    expected = torch.logsumexp(torch.from_numpy(values.astype(np.float64)), dim=axis, keepdim=keepdims).numpy()
    got = P.logsumexp(xp, x, axis, keepdims=keepdims)
    generic = P._generic_logsumexp(xp, x, axis, keepdims)
    assert got.dtype == x.dtype and generic.dtype == x.dtype
    close(got, expected, dtype)
    close(generic, expected, dtype)
    # Fixed facts: an all -inf row gives -inf (log 0), a +inf entry gives +inf, NaN gives NaN.
    if axis in (1, -1):
        flat = to_numpy(generic).reshape(-1)
        assert flat[3] == -INF and flat[8] == INF and math.isnan(flat[7])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, 0, -1])
def test_log_softmax(xp, dtype, axis):
    values = _rows().astype(dtype)
    x = xp.asarray(values)
    expected = torch.log_softmax(torch.from_numpy(values.astype(np.float64)), dim=axis).numpy()
    got = P.log_softmax(xp, x, axis)
    generic = P._generic_log_softmax(xp, x, axis)
    assert got.dtype == x.dtype
    close(got, expected, dtype)
    close(generic, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of(xp, dtype):
    """Elementwise over three arrays (the columns of the edge rows, so all -inf, +inf, NaN and
    +-1e4 mixes occur) equal torch.logsumexp of their stack in float64, delegated and generic."""
    values = _rows().astype(dtype)
    columns = [xp.asarray(np.ascontiguousarray(values[:, j])) for j in (0, 1, 3)]
    expected = torch.logsumexp(torch.from_numpy(values[:, [0, 1, 3]].T.astype(np.float64)), dim=0).numpy()
    assert np.isneginf(expected[3]) and np.isnan(expected[7]) and expected[8] == INF
    for function in (P.logsumexp_of, P._generic_logsumexp_of):
        got = function(xp, columns)
        assert got.dtype == columns[0].dtype and tuple(got.shape) == (values.shape[0],)
        close(got, expected, dtype)


# -- log_sigmoid / softplus ------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_log_sigmoid(xp, dtype):
    x = xp.asarray(POINTS.astype(dtype))
    expected = torch.nn.functional.logsigmoid(torch.from_numpy(POINTS)).numpy()
    close(P.log_sigmoid(xp, x), expected, dtype)
    close(P._generic_log_sigmoid(xp, x), expected, dtype)
    # Fixed facts: log_sigmoid(-1e4) = -1e4 exactly in floating point, log_sigmoid(0) = -log 2.
    generic = to_numpy(P._generic_log_sigmoid(xp, x)).astype(np.float64)
    assert generic[1] == -1e4 and generic[7] == pytest.approx(-math.log(2), rel=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus(xp, dtype):
    x = xp.asarray(POINTS.astype(dtype))
    # torch.logaddexp(x, 0): torch's exact softplus (F.softplus returns x above its threshold 20,
    # and with threshold=inf overflows to inf above ~709, which lossy's torch path once did)
    points = torch.from_numpy(POINTS)
    expected = torch.logaddexp(points, torch.zeros_like(points)).numpy()
    assert np.isinf(torch.nn.functional.softplus(points, threshold=INF).numpy()[12])  # the overflow above
    close(P.softplus(xp, x), expected, dtype)
    close(P._generic_softplus(xp, x), expected, dtype)
    generic = to_numpy(P._generic_softplus(xp, x)).astype(np.float64)
    assert generic[13] == 1e4 and generic[7] == pytest.approx(math.log(2), rel=1e-7)


# -- xlogx -------------------------------------------------------------------------

# 0 and -0 (0 by torch.xlogy's rule), float32's smallest normal and its negation (jax's select-free
# form switches there), ordinary and large values, negatives (NaN), NaN, +-inf.
TINY32 = float(np.finfo(np.float32).tiny)
XLOGX_POINTS = np.array([0.0, -0.0, TINY32, 1e-30, 0.5, 1.0, 2.0, 1e4, -TINY32, -1e-30, -1.0, NAN, INF, -INF])


@pytest.mark.parametrize("dtype", DTYPES)
def test_xlogx(xp, dtype):
    a = XLOGX_POINTS.astype(dtype)
    expected = torch.xlogy(*(torch.from_numpy(a.astype(np.float64)),) * 2).numpy()
    x = xp.asarray(a)
    close(P.xlogx(xp, x), expected, dtype)
    close(P._generic_xlogx(xp, x), expected, dtype)
    got = to_numpy(P.xlogx(xp, x))
    # torch.xlogy's documented rule: 0 where x == 0; the log of a negative is NaN.
    assert got[0] == 0 and got[1] == 0 and np.isnan(got[8:12]).all() and got[12] == INF


# -- gradients: delegated vs generic -----------------------------------------------

UNARY = [("log_sigmoid", lambda xp, x: P.log_sigmoid(xp, x), lambda xp, x: P._generic_log_sigmoid(xp, x)),
         ("softplus", lambda xp, x: P.softplus(xp, x), lambda xp, x: P._generic_softplus(xp, x)),
         ("logsumexp", lambda xp, x: P.logsumexp(xp, x, 1), lambda xp, x: P._generic_logsumexp(xp, x, 1)),
         ("logsumexp_of", lambda xp, x: P.logsumexp_of(xp, [x[:, 0], x[:, 1], x[:, 3]]),
          lambda xp, x: P._generic_logsumexp_of(xp, [x[:, 0], x[:, 1], x[:, 3]])),
         ("log_softmax", lambda xp, x: P.log_softmax(xp, x, 1) * _cotangent(xp, x),
          lambda xp, x: P._generic_log_softmax(xp, x, 1) * _cotangent(xp, x))]


def _cotangent(xp, x):
    # A non-uniform cotangent, so that the log_softmax gradient is not identically 0.
    return xp.reshape(xp.linspace(0.5, 2.0, x.shape[-1], dtype=x.dtype), (1, -1)) if x.ndim == 2 else 1.0


def _grad_inputs(name):
    return _rows() if name in ("logsumexp", "logsumexp_of", "log_softmax") else POINTS


def _compare_gradients(delegated, generic, dtype, values=None):
    """Equal where both are finite. In float32 the absolute tolerance grows with |x| of the row:
    torch.logsumexp's backward is exp(x - result), and result = 1e4 + log 2 rounds to float32's
    spacing at 1e4 (~1e-3), so its own gradient is off by ~1e-4 there (measured)."""
    delegated, generic = np.asarray(delegated, np.float64), np.asarray(generic, np.float64)
    both = np.isfinite(delegated) & np.isfinite(generic)
    assert both.sum() >= delegated.size // 2, "too few finite gradients to compare"
    atol = np.full(delegated.shape, TOL[dtype]["atol"])
    if dtype == np.float32 and values is not None:
        magnitude = np.abs(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0))
        if magnitude.ndim == 2:
            magnitude = np.broadcast_to(magnitude.max(axis=1, keepdims=True), magnitude.shape)
        atol = np.maximum(atol, 4 * np.finfo(np.float32).eps * magnitude)
    error = np.abs(delegated[both] - generic[both])
    bound = TOL[dtype]["rtol"] * np.abs(generic[both]) + atol[both]
    assert np.all(error <= bound), f"max excess {np.max(error - bound)}: {delegated} vs {generic}"


def _torch_grad(fn, values, dtype):
    import array_api_compat.torch as txp

    x = torch.tensor(values.astype(dtype), requires_grad=True)
    (grad,) = torch.autograd.grad(torch.sum(fn(txp, x)), x)
    return grad.numpy()


def _jax_grad(fn, values, dtype):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    return np.asarray(jax.grad(lambda x: jnp.sum(fn(jnp, x)))(jnp.asarray(values.astype(dtype))))


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,delegated,generic", UNARY, ids=[u[0] for u in UNARY])
def test_gradient_of_delegation(framework, dtype, name, delegated, generic):
    grad = _torch_grad if framework == "torch" else _jax_grad
    values = _grad_inputs(name)
    _compare_gradients(grad(delegated, values, dtype), grad(generic, values, dtype), dtype, values)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_of_xlogx(framework, dtype):
    """The dispatched xlogx has torch's gradient of xlogy(x, x), NaN at 0 and below included."""
    values = XLOGX_POINTS.astype(dtype)
    reference = torch.tensor(values.astype(np.float64), requires_grad=True)
    (expected,) = torch.autograd.grad(torch.sum(torch.xlogy(reference, reference)), reference)
    grad = _torch_grad if framework == "torch" else _jax_grad
    got = grad(P.xlogx, values, dtype)
    np.testing.assert_allclose(got.astype(np.float64), expected.numpy(), equal_nan=True, **TOL[dtype])
    assert np.isnan(got[0]) and got[5] == pytest.approx(1.0)  # 0/0 at x = 0; log 1 + 1 at x = 1


# -- stop_gradient -----------------------------------------------------------------

def test_stop_gradient_torch():
    import array_api_compat.torch as txp

    x = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.sum(P.stop_gradient(txp, x) * x), x)
    # d/dx [c * x] with c = x held constant is x, not 2x
    torch.testing.assert_close(grad, x.detach())
    assert not P.stop_gradient(txp, x).requires_grad


def test_stop_gradient_jax():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    x = jnp.asarray([1.0, -2.0, 3.0])
    grad = jax.grad(lambda v: jnp.sum(P.stop_gradient(jnp, v) * v))(x)
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(x))


def test_stop_gradient_is_identity(xp):
    x = xp.asarray(np.array([1.0, -2.0, 3.0]))
    np.testing.assert_array_equal(to_numpy(P.stop_gradient(xp, x)), [1.0, -2.0, 3.0])


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_logsumexp_shift_gradient_is_stopped(framework):
    """The max shift carries no gradient: the gradient of logsumexp is softmax exactly,
    also for ties at the max (where differentiating max() would split the gradient)."""
    values = np.array([[3.0, 3.0, 1.0], [0.0, 0.0, 0.0]])
    fn = lambda xp, x: P._generic_logsumexp(xp, x, 1)  # noqa: E731
    grad = _torch_grad(fn, values, np.float64) if framework == "torch" else _jax_grad(fn, values, np.float64)
    softmax = np.exp(values) / np.exp(values).sum(1, keepdims=True)
    np.testing.assert_allclose(grad, softmax, rtol=1e-12)




@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_shift_max_on_jax(dtype, axis):
    """jax's shift reduction (no NaN propagation) equals numpy's max on rows without NaN,
    and a NaN anywhere in a row still makes the row's log-sum NaN; no gradient reaches it."""
    import jax
    import jax.numpy as jnp

    rows = _rows().astype(dtype)
    nan_everywhere = np.full((5, 5), 2.0, dtype=dtype)
    np.fill_diagonal(nan_everywhere, NAN)  # the NaN at each position of the row in turn
    values = np.concatenate([rows, nan_everywhere, np.full((1, 5), NAN, dtype=dtype)])
    if axis == 0:
        values = values.T.copy()
    x = jnp.asarray(values)
    shift = np.asarray(P._shift_max(jnp, x, axis))
    with np.errstate(invalid="ignore"):
        expected = np.max(values, axis=axis, keepdims=True)
    has_nan = np.isnan(values).any(axis=axis, keepdims=True)
    np.testing.assert_array_equal(shift[~has_nan], expected[~has_nan])
    _, _, log_sum = P._max_shifted(jnp, x, axis)
    assert np.isnan(np.asarray(log_sum)[has_nan]).all() and has_nan.sum() == 7
    grad = jax.grad(lambda v: jnp.sum(P._shift_max(jnp, v, axis)))(jnp.asarray(values[:3] if axis else values[:, :3]))
    assert not np.asarray(grad).any()
# -- take_along_axis / one_hot --------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_take_along_axis(xp, axis, dtype):
    rng = np.random.default_rng(3)
    values = rng.standard_normal((2, 3, 4)).astype(dtype)
    shape = list(values.shape)
    shape[axis] = 2
    indices = rng.integers(0, values.shape[axis], size=shape).astype(np.int64)
    expected = np.take_along_axis(values, indices, axis=axis)
    x, i = xp.asarray(values), xp.asarray(indices)
    for fn in (P.take_along_axis, P._generic_take_along_axis):
        got = fn(xp, x, i, axis)
        assert tuple(got.shape) == expected.shape and got.dtype == x.dtype
        np.testing.assert_array_equal(to_numpy(got), expected)


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 3, 2)])
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
def test_take_entries(xp, shape, index_dtype):
    """``values[indices]`` for indices of any shape, on every backend's path (torch: one index op)."""
    rng = np.random.default_rng(4)
    values = rng.standard_normal(4)
    indices = rng.integers(0, 4, size=shape).astype(index_dtype)
    expected = values[indices]
    for fn in (P.take_entries, P._generic_take_entries):
        got = fn(xp, xp.asarray(values), xp.asarray(indices))
        assert tuple(got.shape) == expected.shape
        np.testing.assert_array_equal(to_numpy(got), expected)


@pytest.mark.parametrize("axis,expected_shape", [(-1, (2, 3, 4)), (2, (2, 3, 4)), (1, (2, 4, 3)), (0, (4, 2, 3))])
def test_one_hot(xp, axis, expected_shape):
    indices = np.array([[0, 3, 1], [2, 2, 0]], dtype=np.int64)
    got = P.one_hot(xp, xp.asarray(indices), 4, xp.float64, axis=axis)
    assert tuple(got.shape) == expected_shape and got.dtype == xp.float64
    expected = np.moveaxis(np.eye(4)[indices], -1, axis)
    np.testing.assert_array_equal(to_numpy(got), expected)


def test_one_hot_out_of_range_is_all_zero(xp):
    """An index outside [0, C) (e.g. ignore_index -100) has no hot entry."""
    got = to_numpy(P.one_hot(xp, xp.asarray(np.array([-100, 4, 1])), 4, xp.float32))
    np.testing.assert_array_equal(got, [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]])


def test_class_axis_view(xp):
    v = xp.asarray(np.array([1.0, 2.0, 3.0]))
    assert tuple(P.class_axis_view(xp, v, 4, 1).shape) == (1, 3, 1, 1)
    assert tuple(P.class_axis_view(xp, v, 2, 1).shape) == (1, 3)


# -- log_softmax_picks / vecdot ---------------------------------------------------------

# 5 classes: narrower than a vector register, so torch on CPU takes the log-probabilities of the
# transposed view; 40 (the rows tiled, edge rows kept): the last-axis kernel.
PICK_WIDTHS = [5, 40]
PICK_INDICES = np.array([0, 4, 2, 1, 3, 2, 0, 4, 1])


def _pick_rows(width):
    return np.tile(_rows(), (1, width // 5))


@pytest.mark.parametrize("width", PICK_WIDTHS)
def test_log_softmax_picks_paths(width):
    """Both torch CPU paths are exercised: 5 classes is below a register, 40 is not."""
    for dtype in (torch.float32, torch.float64):
        x = torch.from_numpy(_pick_rows(width)).to(dtype)
        assert P._short_last_axis_on_torch_cpu(x, 1) == (width == 5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("width", PICK_WIDTHS)
def test_log_softmax_picks(xp, dtype, weighted, width):
    """Picked log-probabilities, their total and their weighted class sum equal torch's float64
    log_softmax, gathered and summed, on the edge rows too (+inf or all -inf rows give NaN)."""
    values = _pick_rows(width).astype(dtype)
    indices = PICK_INDICES[: values.shape[0]]
    weights = np.tile(np.array([0.5, 1.0, 2.0, 0.25, 1.5]), width // 5)
    log_probs = torch.log_softmax(torch.from_numpy(values.astype(np.float64)), dim=1)
    expected_picked = log_probs.gather(1, torch.from_numpy(indices)[:, None])[:, 0].numpy()
    expected_sum = (log_probs * (torch.from_numpy(weights) if weighted else 1.0)).sum(1).numpy()
    x, i = xp.asarray(values), xp.asarray(indices)
    w = xp.reshape(xp.asarray(weights.astype(dtype)), (1, width)) if weighted else None
    for fn in (P.log_softmax_picks, lambda *a, **k: P._generic_log_softmax_picks(*a, k["weights"], k["with_sum"])):
        picked, summed = fn(xp, x, i, 1, weights=w, with_sum=True)
        assert tuple(picked.shape) == (values.shape[0],) and picked.dtype == x.dtype
        close(picked, expected_picked, dtype)
        # the weighted sum of -1e4-scale rows cancels: compare with the float32 spacing there
        np.testing.assert_allclose(to_numpy(summed).astype(np.float64), expected_sum, equal_nan=True,
                                   rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * 1e4)
    picked, summed = P.log_softmax_picks(xp, x, i, 1)
    assert summed is None
    close(picked, expected_picked, dtype)
    # total=True: the picks' sum, over the finite rows (the NaN rows would make it NaN) too
    finite = np.isfinite(expected_picked)
    total, _ = P.log_softmax_picks(xp, x, i, 1, total=True)
    assert tuple(total.shape) == () and math.isnan(float(to_numpy(total)))
    total, _ = P.log_softmax_picks(xp, xp.asarray(values[finite]), xp.asarray(indices[finite]), 1, total=True)
    close(total, expected_picked[finite].sum(), dtype)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", PICK_WIDTHS)
def test_gradient_of_log_softmax_picks(framework, dtype, width):
    """The delegated picks (torch: gather from log_softmax) differentiate like the generic form,
    and so does their total."""
    weights = np.linspace(0.5, 2.0, width)

    def make(fn):
        def loss(xp, x):
            w = xp.astype(xp.asarray(weights.reshape(1, width)), x.dtype)
            picked, summed = fn(xp, x, xp.asarray(PICK_INDICES[: x.shape[0]]), 1, w, True)
            return picked * 1.5 + summed
        return loss

    # The total over the three random rows: one NaN row would make every gradient NaN.
    def total(xp, x):
        return P.log_softmax_picks(xp, x[:3], xp.asarray(PICK_INDICES[:3]), 1, total=True)[0]

    def total_generic(xp, x):
        return xp.sum(P._generic_log_softmax_picks(xp, x[:3], xp.asarray(PICK_INDICES[:3]), 1, None, False)[0])

    grad = _torch_grad if framework == "torch" else _jax_grad
    values = _pick_rows(width)
    _compare_gradients(grad(make(P.log_softmax_picks), values, dtype),
                       grad(make(P._generic_log_softmax_picks), values, dtype), dtype, values)
    _compare_gradients(grad(total, values, dtype), grad(total_generic, values, dtype), dtype, values)


# -- jax: log_softmax_picks shifted by the target logit ------------------------------------
#
# ``_jax_log_softmax_picks(..., target_shift=True)`` forces the path that large inputs take
# (``_target_shift_pays``); each batch below is checked to take the branch it is meant to.

def _moderate_rows(dtype):
    """Logits where the target shift is safe: random, shifted by +-60, some -inf (not targets)."""
    rng = np.random.default_rng(11)
    rows = rng.standard_normal((9, 40)) * 3
    rows[1] += 60.0
    rows[2] -= 60.0
    rows[3, [5, 7]] = -INF
    return rows.astype(dtype)


def _extreme_batches(dtype):
    """Batches whose one bad row sends the whole batch to the row-max branch: the edge rows of
    ``_pick_rows`` (+-1e4, NaN, +-inf), a target far below its row's max (exp overflows there),
    and logits so negative that exp(x) flushes to 0."""
    far = _moderate_rows(dtype).astype(np.float64)
    far[4, PICK_INDICES[4]] = far[4].max() - 800.0
    low = _moderate_rows(dtype).astype(np.float64)
    low[6] -= 1000.0
    return [_pick_rows(40).astype(dtype), far.astype(dtype), low.astype(dtype)]


def _torch_log_probs(values):
    return torch.log_softmax(torch.from_numpy(values.astype(np.float64)), dim=1)


def test_jax_target_shift_rule():
    jnp = pytest.importorskip("jax.numpy")
    assert P._target_shift_pays(jnp.zeros((512, 512)), 1)
    assert P._target_shift_pays(jnp.zeros((8, 1000, 64)), 1)  # 512 positions of 1000 classes
    assert not P._target_shift_pays(jnp.zeros((511, 1000)), 1)
    assert not P._target_shift_pays(jnp.zeros((4096, 511)), 1)
    assert not P._target_shift_pays(jnp.zeros((256, 10)), 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_jax_target_shift_values(dtype, weighted):
    """Picks and weighted class sums equal torch's float64 log_softmax on both branches, NaN rows
    included; the safe batch takes the target shift, each extreme batch the row max."""
    jnp = pytest.importorskip("jax.numpy")
    weights = np.tile(np.array([0.5, 1.0, 2.0, 0.25, 1.5]), 8)
    for values, safe in [(_moderate_rows(dtype), True)] + [(b, False) for b in _extreme_batches(dtype)]:
        indices = PICK_INDICES[: values.shape[0]]
        x, i = jnp.asarray(values), jnp.asarray(indices)
        target_logits = jnp.take_along_axis(x, i[:, None], axis=1)
        assert bool(P._target_shift_is_safe(x, target_logits, 1)) == safe
        log_probs = _torch_log_probs(values)
        expected_picked = log_probs.gather(1, torch.from_numpy(indices)[:, None])[:, 0].numpy()
        expected_sum = (log_probs * (torch.from_numpy(weights) if weighted else 1.0)).sum(1).numpy()
        w = jnp.asarray(weights.astype(dtype))[None] if weighted else None
        picked, summed = P._jax_log_softmax_picks(jnp, x, i, 1, w, True, target_shift=True)
        assert picked.dtype == x.dtype and summed.dtype == x.dtype
        close(picked, expected_picked, dtype)
        np.testing.assert_allclose(np.asarray(summed, np.float64), expected_sum, equal_nan=True,
                                   rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * 1e4)


def test_jax_target_shift_keeps_torch_precision():
    """Large logits and a confident target (torch issue 11752): the loss is ~1e-3 while the
    log-sum-exp is ~74, whose float32 spacing is 7.6e-6. torch keeps (x - max) - log(sum), so
    its float32 picks are within 3.2e-7 of float64 here (measured); the target shift must be as
    close (it measured 2.8e-7), where ``x - logsumexp(x)`` is off by 3.6e-6."""
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(3)
    values = (60.0 + rng.standard_normal((16, 600))).astype(np.float32)
    indices = rng.integers(0, 600, 16)
    values[np.arange(16), indices] += 14.0
    x, i = jnp.asarray(values), jnp.asarray(indices)
    assert bool(P._target_shift_is_safe(x, jnp.take_along_axis(x, i[:, None], axis=1), 1))
    picked, _ = P._jax_log_softmax_picks(jnp, x, i, 1, None, False, target_shift=True)
    expected = _torch_log_probs(values).gather(1, torch.from_numpy(indices)[:, None])[:, 0].numpy()
    assert np.all(np.abs(expected) < 1e-2)
    np.testing.assert_allclose(np.asarray(picked, np.float64), expected, rtol=0, atol=5 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_jax_target_shift_gradients(dtype):
    """Reverse mode equals autodiff of the generic (row-max) form on both branches; forward
    mode (the rule is a custom_jvp) agrees with it; vmap (where lax.cond becomes a select)
    gives each item's own result."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    weights = np.linspace(0.5, 2.0, 40)

    def make(target_shift):
        def loss(xp, x):
            w = xp.astype(xp.asarray(weights.reshape(1, 40)), x.dtype)
            picked, summed = P._jax_log_softmax_picks(xp, x, xp.asarray(PICK_INDICES[: x.shape[0]]), 1, w, True,
                                                      target_shift=target_shift)
            return picked * 1.5 + summed
        return loss

    for values in [_moderate_rows(dtype)] + _extreme_batches(dtype):
        _compare_gradients(_jax_grad(make(True), values, dtype), _jax_grad(make(False), values, dtype), dtype,
                           values)
    values = jnp.asarray(_moderate_rows(dtype))
    direction = jnp.asarray(np.random.default_rng(4).standard_normal(values.shape).astype(dtype))

    def total(x):
        return jnp.sum(make(True)(jnp, x))

    _, tangent = jax.jvp(total, (values,), (direction,))
    close(tangent, float(jnp.vdot(jax.grad(total)(values), direction)), dtype)
    batched = jnp.stack([values, jnp.asarray(_extreme_batches(dtype)[1])])
    for item, got in zip(batched, jax.vmap(lambda x: make(True)(jnp, x))(batched)):
        close(got, np.asarray(make(True)(jnp, item)), dtype)

    # With respect to the class weights too (the weighted sum has its own rule on this path),
    # in reverse and forward mode.
    def by_weights(target_shift, x):
        def loss(w):
            _, summed = P._jax_log_softmax_picks(jnp, x, jnp.asarray(PICK_INDICES[: x.shape[0]]), 1, w[None], True,
                                                 target_shift=target_shift)
            return jnp.sum(summed * jnp.linspace(0.5, 1.5, x.shape[0], dtype=x.dtype))
        return loss

    w = jnp.asarray(weights.astype(dtype))
    # (the edge-row batch has NaN rows, which make every weight's gradient NaN on both paths)
    for batch in [_moderate_rows(dtype)] + _extreme_batches(dtype)[1:]:
        x = jnp.asarray(batch)
        _compare_gradients(jax.grad(by_weights(True, x))(w), jax.grad(by_weights(False, x))(w), dtype)
    x = jnp.asarray(_moderate_rows(dtype)[:, :40])
    x = x.at[3, 5].set(3.0)  # finite everywhere: the weights' derivative is the log-probabilities
    _, tangent = jax.jvp(by_weights(True, x), (w,), (jnp.ones_like(w),))
    close(tangent, float(jnp.sum(jax.grad(by_weights(False, x))(w))), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vecdot(xp, dtype):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 7)).astype(dtype), rng.standard_normal((3, 7)).astype(dtype)
    expected = (a.astype(np.float64) * b).sum(-1)
    for fn in (P.vecdot, P._generic_vecdot):
        got = fn(xp, xp.asarray(a), xp.asarray(b))
        assert tuple(got.shape) == (3,) and got.dtype == xp_dtype(xp, dtype)
        close(got, expected, dtype)
