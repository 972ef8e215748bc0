"""The conformance suite as tests: every case of every loss on every installed backend
matches torch (live; the golden files where torch is missing), the golden files
match live torch, and the comparison itself catches perturbed results."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

import lossy_core
from conformance import cases as cases_module
from conformance import golden, runner
from conformance.__main__ import main
from conformance.backends import all_backends
from conformance.cases import MissingCases, all_losses, cases_for, check_coverage
from conformance.compare import compare_result
from conformance.reference import Result

LOSSES = all_losses()
BACKENDS = list(all_backends())
TORCH_MISSING = runner.torch_available()


@functools.lru_cache(maxsize=None)
def _cases(loss):
    return cases_for(loss)


@functools.lru_cache(maxsize=None)
def _reference(loss):
    """torch live where installed, else the golden files."""
    return runner.reference_results(loss, _cases(loss), use_golden=TORCH_MISSING is not None)


@functools.lru_cache(maxsize=None)
def _backend(name):
    backend = all_backends()[name]
    return backend, backend.load()


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_backend_matches_torch(loss, backend_name):
    backend, reason = _backend(backend_name)
    if reason is not None:
        pytest.skip(f"backend {backend_name} unavailable: {reason}")
    _, refs = _reference(loss)
    outcomes = [runner.run_case(backend, case, ref) for case, ref in zip(_cases(loss), refs)]
    failures = [f"{o.case.name}: {o.detail}" for o in outcomes if o.status == "fail"]
    assert not failures, f"{len(failures)} mismatch(es) with torch on {backend_name}:\n" + "\n".join(failures)
    assert any(o.status == "pass" for o in outcomes), "every case was skipped"


# torch's CPU kernels of these raise NotImplementedError for float16/bfloat16: no live reference there.
TORCH_CPU_REFUSES_HALF = {"multi_margin_loss", "multilabel_margin_loss"}


# A callable is backend-specific, not case data: tests/test_multilabel_embedding.py checks custom distances.
OPTIONS_NOT_IN_CASES = {("triplet_margin_with_distance_loss", "distance_function")}


def test_every_registered_loss_has_cases():
    check_coverage()
    for spec in lossy_core.losses():
        cases = cases_for(spec.name)
        assert len(cases) >= 15, spec.name
        reductions = {c.options.get("reduction", "mean") for c in cases}
        # 'parts' is lossy's, with no torch output to compare: tests/test_parts.py checks it on every case
        assert set(spec.reductions) - {"parts"} <= reductions, f"{spec.name}: reductions not covered"
        # every floating dtype torch supports for the loss (spec.extra["dtypes"] where it is fewer)
        default = ("float64", "float32") if spec.name in TORCH_CPU_REFUSES_HALF else (
            "float64", "float32", "float16", "bfloat16")
        required = set(spec.extra.get("dtypes", default))
        assert required <= {c.dtype for c in cases}, spec.name
        for option in spec.options:
            if (spec.name, option.name) in OPTIONS_NOT_IN_CASES:
                continue
            assert any(option.name in c.options for c in cases), f"{spec.name}: option {option.name} never set"
        for name in spec.optional_arrays:
            assert any(name in c.arrays for c in cases), f"{spec.name}: {name} never given"
        assert len({c.id for c in cases}) == len(cases)


def test_a_loss_without_cases_is_an_error(monkeypatch):
    monkeypatch.delitem(cases_module.GENERATORS, "kl_div")
    with pytest.raises(MissingCases, match="kl_div"):
        check_coverage()


def test_cases_are_deterministic():
    a, b = cases_for("cross_entropy"), cases_for("cross_entropy")
    for x, y in zip(a, b):
        assert x.id == y.id and x.options == y.options
        for name in x.arrays:
            np.testing.assert_array_equal(x.arrays[name], y.arrays[name])


@pytest.mark.skipif(TORCH_MISSING is not None, reason=f"torch is not installed: {TORCH_MISSING}")
@pytest.mark.parametrize("loss", LOSSES)
def test_golden_files_match_live_torch(loss):
    """The golden files cannot go stale silently: same cases, same inputs, torch's values and gradients."""
    meta, stored = golden.load(loss, _cases(loss))  # raises StaleGolden if the cases changed
    _, live = runner.reference_results(loss, _cases(loss), use_golden=False)
    for case, want, have in zip(_cases(loss), live, stored):
        assert not isinstance(want, Exception), f"{case.name}: torch raised {want!r}"
        assert set(have.grads) == set(want.grads), case.name
        for name in want.grads:
            assert (have.grads[name] is None) == (want.grads[name] is None), f"{case.name}: grad {name}"
        check = compare_result(have, want, case.dtype, case.known)  # a known deviation may be torch's garbage
        assert check.ok, f"{case.name} (golden from torch {meta['torch_version']}): {check.messages}"


def test_golden_fallback_when_torch_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "torch_available", lambda: "ModuleNotFoundError: simulated")
    report = runner.run(["l1_loss"], ["numpy"], use_golden=None, progress=None)
    assert report.reference.startswith("golden files"), report.reference
    assert report.ok and report.cells[("l1_loss", "numpy")].passed > 0


def _a_result(loss="smooth_l1_loss", case_id="4x5 none|float64"):
    case = next(c for c in _cases(loss) if c.id == case_id)
    _, refs = _reference(loss)
    return case, refs[_cases(loss).index(case)]


def test_comparison_reports_perturbed_results():
    """Not a test that cannot fail: every kind of deviation must be reported as a mismatch."""
    case, ref = _a_result()
    assert compare_result(copy.deepcopy(ref), ref, case.dtype).ok

    def perturbed(edit):
        got = copy.deepcopy(ref)
        edit(got)
        return compare_result(got, ref, case.dtype)

    def scale_value(r):
        r.value = r.value * (1 + 1e-10)  # 1e-10 relative: 100x the float64 tolerance

    def nan_value(r):
        r.value = r.value.copy()
        r.value[0, 0] = np.nan

    def inf_value(r):
        r.value = r.value.copy()
        r.value[1, 1] = np.inf

    def dtype_value(r):
        r.dtype = "float32"

    def shape_value(r):
        r.value = r.value.reshape(-1)

    def grad_value(r):
        g, d = r.grads["input"]
        g = g.copy()
        g[2, 3] += 1e-9 * max(1.0, abs(g[2, 3]))
        r.grads["input"] = (g, d)

    def grad_missing(r):
        r.grads["target"] = None

    for edit in (scale_value, nan_value, inf_value, dtype_value, shape_value, grad_value, grad_missing):
        check = perturbed(edit)
        assert not check.ok, f"{edit.__name__} was not reported"
        assert check.messages

    # A sign flip of an infinity, and NaN where torch is finite, in float32.
    ref32 = Result(np.array([np.inf, 1.0, 2.0]), "float32", None)
    assert not compare_result(Result(np.array([-np.inf, 1.0, 2.0]), "float32"), ref32, "float32").ok
    assert not compare_result(Result(np.array([np.inf, np.nan, 2.0]), "float32"), ref32, "float32").ok
    assert not compare_result(Result(np.array([np.inf, 1.0 + 1e-4, 2.0]), "float32"), ref32, "float32").ok
    assert compare_result(Result(np.array([np.inf, 1.0 + 1e-7, 2.0]), "float32"), ref32, "float32").ok

    # A tuple output's further outputs (linear_cross_entropy's lse with return_lse) are compared too.
    case, ref = _a_result("linear_cross_entropy", "z-loss=0.1 return_lse prob weight sum|float64")
    assert ref.more and compare_result(copy.deepcopy(ref), ref, case.dtype).ok
    got = copy.deepcopy(ref)
    got.more = [(got.more[0][0] * (1 + 1e-10), got.more[0][1])]
    assert not compare_result(got, ref, case.dtype).ok
    got.more = []
    assert not compare_result(got, ref, case.dtype).ok


def test_cli_writes_the_report(tmp_path, capsys):
    assert main(["--losses", "mse_loss", "--backends", "numpy,array_api_strict", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mse_loss" in out and "all cases match" in out
    assert (tmp_path / "conformance.md").exists() and (tmp_path / "conformance.json").exists()


def test_cli_exits_nonzero_on_a_mismatch(tmp_path, monkeypatch, capsys):
    real = runner.compare_result

    def wrong(got, ref, dtype, known=None):
        got = copy.deepcopy(got)
        got.value = got.value + 1.0  # a loss that is off by one everywhere
        return real(got, ref, dtype, known)

    monkeypatch.setattr(runner, "compare_result", wrong)
    assert main(["--losses", "l1_loss", "--backends", "numpy", "--out", str(tmp_path)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


@pytest.mark.skipif(TORCH_MISSING is not None, reason=f"torch is not installed: {TORCH_MISSING}")
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_linear_cross_entropy_ignored_row_at_a_minus_inf_logit(label_smoothing):
    """An ignored row contributes nothing, even where class 0's logit is -inf (torch: loss 0 there)."""
    import torch

    from conformance.reference import reference_function

    x, w = np.array([[1.0, -0.5], [0.25, 2.0]]), np.array([[0.5, 1.0], [-1.0, 0.5], [0.75, 0.25]])
    bias, target = np.array([-np.inf, 0.5, -0.25]), np.array([2, -100])
    options = {"reduction": "none", "label_smoothing": label_smoothing}
    want = reference_function("linear_cross_entropy")(*(torch.from_numpy(a) for a in (x, w, target)),
                                                      linear_bias=torch.from_numpy(bias), **options).numpy()
    assert want[1] == 0  # torch: the ignored row's loss is 0 (the kept row's is inf when smoothed)
    got = lossy_core.linear_cross_entropy(x, w, target, linear_bias=bias, **options)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.skipif(TORCH_MISSING is not None, reason=f"torch is not installed: {TORCH_MISSING}")
def test_plain_torch_linear_cross_entropy_reference():
    """The reference of lossy's extras (conformance/plain_torch_linear.py) against the formulas in NumPy:
    a huge softcap is no cap, the z-loss adds s * sum_n w[y_n] lse_n^2 / sum_n w[y_n] to torch's loss,
    and the lse is the log-sum-exp of x @ W.T + b."""
    import torch

    from conformance.reference import reference_function

    rng = np.random.default_rng(7)
    x, w, b, cw = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    y = np.array([0, 3, -100, 1, 3])
    t = {k: torch.from_numpy(v) for k, v in dict(x=x, w=w, b=b, cw=cw, y=y).items()}
    ref = reference_function("linear_cross_entropy")

    def call(**options):
        return ref(t["x"], t["w"], t["y"], linear_bias=t["b"], weight=t["cw"], **options)

    plain = torch.nn.functional.linear_cross_entropy(t["x"], t["w"], t["y"], linear_bias=t["b"], weight=t["cw"])
    assert call(chunk_size=2).item() == plain.item()  # torch itself
    np.testing.assert_allclose(call(softcap=1e9).item(), plain.item(), rtol=1e-12)
    z = x @ w.T + b
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    kept = y != -100
    term = cw[np.where(kept, y, 0)] * kept
    np.testing.assert_allclose(call(lse_square_scale=0.3).item() - plain.item(),
                               0.3 * (term * lse**2).sum() / term.sum(), rtol=1e-12)
    loss, got_lse = call(return_lse=True, reduction="none")
    np.testing.assert_allclose(got_lse.numpy(), lse, rtol=1e-12)
    capped = 2.0 * np.tanh(z / 2.0)
    _, capped_lse = call(return_lse=True, softcap=2.0)
    np.testing.assert_allclose(capped_lse.numpy(), np.log(np.exp(capped).sum(1)), rtol=1e-12)
