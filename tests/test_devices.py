"""Device rules, over every registered loss, on array_api_strict's second device.

array_api_strict has a second device, ``Device("device1")``, and (like CuPy across
GPUs) raises ValueError when arrays of two devices are combined. So a loss that
creates an array without ``device=`` fails here, and a result left on the default
device is seen. The example inputs are the conformance cases
(``conformance.cases.cases_for``), so a newly registered loss is covered without
editing this file. The lossy_cupy adapter's generated functions are run the same way
(its array type pointed at array_api_strict's), since this machine may have no GPU.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import lossy_core
from conformance.cases import cases_for
from conformance.reference import outputs_of, upstream_for

xps = pytest.importorskip("array_api_strict")
DEVICE1 = xps.Device("device1")
CPU = xps.Device("CPU_DEVICE")
LOSSES = [spec.name for spec in lossy_core.losses()]
MAX_CASES = 12  # per loss and dtype: enough to reach every option branch the cases cover, fast


def _cases(loss, dtype="float64"):
    cases = [c for c in cases_for(loss) if c.dtype == dtype]
    assert cases, f"conformance has no {dtype} case for {loss}"
    step = max(1, len(cases) // MAX_CASES)  # spread over the list: edge cases come last
    return cases[::step]


def _on(case, device):
    """The case's arrays as array_api_strict arrays on ``device``."""
    return {name: xps.asarray(a, dtype=getattr(xps, case.dtype), device=device) if a.dtype.kind == "f"
            else xps.asarray(a, device=device)
            for name, a in case.arrays.items()}


def _call(fn, spec, arrays, **extra):
    positional = [arrays[n] for n in spec.arrays]
    keywords = {n: arrays[n] for n in spec.optional_arrays if n in arrays}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*positional, **keywords, **extra)


def _upstream(case, value, device):
    """The upstream of the loss's output (a tuple of them for a tuple output, e.g. ``return_lse``)."""
    ups = tuple(xps.asarray(np.asarray(upstream_for(case, tuple(v.shape), k)), dtype=v.dtype, device=device)
                for k, v in enumerate(outputs_of(value)))
    return ups[0] if len(ups) == 1 else ups


def _host(a):
    return np.asarray(xps.asarray(a, device=CPU))


def _check_on_device1(loss, call, vjp):
    """``call``/``vjp`` (a loss and its value_and_grad) on device1: results on device1, equal to CPU's."""
    spec = lossy_core.get(loss)
    for dtype in ("float64", "float32"):
        for case in _cases(loss, dtype):
            here, there = _on(case, DEVICE1), _on(case, CPU)
            value = _call(call, spec, here, **case.options)
            expected = _call(spec.function, spec, there, **case.options)
            for out, want in zip(outputs_of(value), outputs_of(expected), strict=True):
                assert out.device == DEVICE1, f"{case.name}: value on {out.device}"
                np.testing.assert_array_equal(_host(out), _host(want), err_msg=case.name)
            v, grads = _call(vjp, spec, here, upstream=_upstream(case, value, DEVICE1), **case.options)
            _, cpu_grads = _call(lossy_core.value_and_grad(spec), spec, there,
                                 upstream=_upstream(case, expected, CPU), **case.options)
            assert all(o.device == DEVICE1 for o in outputs_of(v)), f"{case.name}: value_and_grad value on device"
            assert set(grads) == set(cpu_grads) and grads, f"{case.name}: gradients {set(grads)}"
            for name, g in grads.items():
                assert g.device == DEVICE1, f"{case.name}: gradient of {name} on {g.device}"
                np.testing.assert_array_equal(_host(g), _host(cpu_grads[name]), err_msg=f"{case.name} d{name}")


def _check_mixed_devices_raise(loss, call, vjp, match):
    """The first array on device1, the others on the default device: ValueError, loss and value_and_grad."""
    spec = lossy_core.get(loss)
    case = _cases(loss)[0]
    here, there = _on(case, DEVICE1), _on(case, CPU)
    first = spec.arrays[0]
    mixed = {**there, first: here[first]}
    with pytest.raises(ValueError, match=match):
        _call(call, spec, mixed, **case.options)
    with pytest.raises(ValueError, match=match):
        _call(vjp, spec, mixed, upstream=None if case.options.get("reduction", "mean") != "none" else 1.0,
              **case.options)


# -- lossy_core -------------------------------------------------------------------------

@pytest.mark.parametrize("loss", LOSSES)
def test_core_results_and_gradients_stay_on_the_inputs_device(loss):
    spec = lossy_core.get(loss)
    _check_on_device1(loss, spec.function, lossy_core.value_and_grad(spec))


@pytest.mark.parametrize("loss", LOSSES)
def test_core_mixing_devices_raises(loss):
    spec = lossy_core.get(loss)
    _check_mixed_devices_raise(loss, spec.function, lossy_core.value_and_grad(spec), "different devices|same device")


@pytest.mark.parametrize("loss", LOSSES)
def test_core_reads_the_data_only_in_the_documented_validation_checks(loss, monkeypatch):
    """No implicit host transfer: every read of an array's value to the host (``bool``,
    ``int``, ``float``, ``__array__``, ...) happens in lossy_core/_validation.py, the
    documented data-dependent checks (lossy_cupy's docstring lists them)."""
    reads = []
    array_type = type(xps.asarray(0.0))
    for method in ("__bool__", "__int__", "__float__", "__index__", "__complex__", "__array__", "__dlpack__"):
        original = getattr(array_type, method)

        def spy(self, *args, _original=original, _method=method, **kwargs):
            caller = sys._getframe(1)
            reads.append((_method, caller.f_code.co_filename, caller.f_lineno))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(array_type, method, spy)
    spec = lossy_core.get(loss)
    for case in _cases(loss):
        here = _on(case, DEVICE1)
        value = _call(spec.function, spec, here, **case.options)
        _call(lossy_core.value_and_grad(spec), spec, here, upstream=_upstream(case, value, DEVICE1), **case.options)
    monkeypatch.undo()
    # The documented reads: the validation checks, and ctc_loss's longest concatenated target,
    # which sizes its alignment lattice (torch reads it too; lossy_cupy's docstring lists both).
    documented = ("lossy_core/_validation.py", "lossy_core/_sequence.py")
    elsewhere = [r for r in reads if not r[1].replace("\\", "/").endswith(documented)]
    assert elsewhere == [], f"{loss}: host reads outside the validation checks: {elsewhere[:5]}"


def test_the_host_read_spy_sees_a_read():
    """The spy above can fail: a read of a loss value is recorded and placed."""
    array_type = type(xps.asarray(0.0))
    original = array_type.__float__
    seen = []
    array_type.__float__ = lambda self: seen.append(sys._getframe(1).f_code.co_filename) or original(self)
    try:
        float(lossy_core.mse_loss(xps.asarray([1.0], device=DEVICE1), xps.asarray([3.0], device=DEVICE1)))
    finally:
        array_type.__float__ = original
    assert seen == [__file__]


# -- the lossy_cupy adapter's generated functions ------------------------------------------

@pytest.fixture
def lossy_cupy_on_strict(monkeypatch):
    """lossy_cupy, accepting array_api_strict arrays in place of cupy.ndarray (no GPU needed)."""
    lossy_cupy = pytest.importorskip("lossy_cupy", reason="lossy_cupy needs cupy installed (pip install -e '.[cupy]')")
    monkeypatch.setattr(lossy_cupy, "_ARRAY_TYPE", type(xps.asarray(0.0)))
    return lossy_cupy


@pytest.mark.parametrize("loss", LOSSES)
def test_lossy_cupy_results_and_gradients_stay_on_the_inputs_device(loss, lossy_cupy_on_strict):
    fn = getattr(lossy_cupy_on_strict, loss)
    _check_on_device1(loss, fn, lossy_cupy_on_strict.value_and_grad(fn))


@pytest.mark.parametrize("loss", LOSSES)
def test_lossy_cupy_refuses_mixed_devices_before_compute(loss, lossy_cupy_on_strict):
    fn = getattr(lossy_cupy_on_strict, loss)
    first = lossy_core.get(loss).arrays[0]
    # lossy_cupy's own message (raised before lossy_core runs), naming the arguments.
    _check_mixed_devices_raise(loss, fn, lossy_cupy_on_strict.value_and_grad(fn),
                               rf"lossy_cupy\.{loss}: expected every array on one device; '{first}' is on")


def test_lossy_cupy_refuses_an_upstream_on_another_device(lossy_cupy_on_strict):
    vg = lossy_cupy_on_strict.value_and_grad("mse_loss")
    x = xps.asarray([1.0, 2.0], device=DEVICE1)
    with pytest.raises(ValueError, match="'upstream' on"):
        vg(x, x, reduction="none", upstream=xps.asarray([1.0, 1.0], device=CPU))


def test_lossy_cupy_refuses_host_arrays(lossy_cupy_on_strict):
    with pytest.raises(TypeError, match=r"lossy_cupy\.mse_loss: expected 'target' to be a .*got numpy\.ndarray"):
        lossy_cupy_on_strict.mse_loss(xps.asarray([1.0], device=DEVICE1), np.array([1.0]))
