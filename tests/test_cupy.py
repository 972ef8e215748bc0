"""lossy_cupy: imports without a GPU; on a CUDA device, every loss and its analytic
gradient on CuPy arrays equal lossy_core's on NumPy and stay on the input's device.

Tests needing a device are marked ``@pytest.mark.cuda`` and skip with the reason
("no CUDA device: ...") where none is present (tests/conftest.py). The device rules
themselves are tested without a GPU in tests/test_devices.py.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import lossy_core
from conformance.cases import cases_for
from conformance.reference import upstream_for

cupy = pytest.importorskip("cupy", reason="cupy is not installed (pip install -e '.[cupy]')")
import lossy_cupy  # noqa: E402  (imports without a device: CuPy >= 13)

LOSSES = [spec.name for spec in lossy_core.losses()]


def test_lossy_cupy_imports_and_is_generated_from_the_registry():
    assert sorted(n for n in lossy_cupy.__all__ if n in lossy_core.REGISTRY) == sorted(LOSSES)
    for spec in lossy_core.losses():
        assert inspect.signature(getattr(lossy_cupy, spec.name)) == spec.signature(), spec.name
        assert getattr(lossy_cupy, spec.name).spec is spec
    assert lossy_cupy.KERNELS == ()  # no fused kernels: no second formula to keep in step


def test_lossy_cupy_refuses_numpy_arrays_before_touching_a_device():
    with pytest.raises(TypeError, match=r"lossy_cupy\.cross_entropy: expected 'input' to be a cupy\.ndarray"):
        lossy_cupy.cross_entropy(np.zeros((2, 3)), np.zeros(2, dtype=np.int64))


def _arrays(case, module):
    return {n: module.asarray(a, dtype=case.dtype) if a.dtype.kind == "f" else module.asarray(a)
            for n, a in case.arrays.items()}


def _call(fn, spec, arrays, **extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*[arrays[n] for n in spec.arrays],
                  **{n: arrays[n] for n in spec.optional_arrays if n in arrays}, **extra)


@pytest.mark.cuda
@pytest.mark.parametrize("loss", LOSSES)
def test_lossy_cupy_matches_lossy_core_on_numpy(loss):
    spec = lossy_core.get(loss)
    for case in cases_for(loss):
        if case.dtype not in ("float64", "float32"):
            continue
        on_gpu, on_host = _arrays(case, cupy), _arrays(case, np)
        value = _call(getattr(lossy_cupy, loss), spec, on_gpu, **case.options)
        expected = _call(spec.function, spec, on_host, **case.options)
        assert isinstance(value, cupy.ndarray) and value.device == on_gpu[spec.arrays[0]].device
        rtol = 1e-12 if case.dtype == "float64" else 1e-5
        np.testing.assert_allclose(value.get(), expected, rtol=rtol, atol=rtol, err_msg=case.name)
        up = upstream_for(case, tuple(expected.shape))
        _, grads = _call(lossy_cupy.value_and_grad(loss), spec, on_gpu, upstream=cupy.asarray(up, dtype=value.dtype),
                         **case.options)
        _, host_grads = _call(lossy_core.value_and_grad(loss), spec, on_host,
                              upstream=np.asarray(up, dtype=expected.dtype), **case.options)
        assert set(grads) == set(host_grads)
        for name, g in grads.items():
            assert isinstance(g, cupy.ndarray) and g.device == value.device
            np.testing.assert_allclose(g.get(), host_grads[name], rtol=rtol, atol=rtol, err_msg=f"{case.name} d{name}")


@pytest.mark.cuda
def test_lossy_cupy_results_stay_on_a_second_gpu():
    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs a second CUDA device")
    with cupy.cuda.Device(1):
        logits = cupy.asarray([[2.0, 0.5, -1.0]])
        labels = cupy.asarray([0])
    value, grads = lossy_cupy.value_and_grad(lossy_cupy.cross_entropy)(logits, labels, label_smoothing=0.1)
    assert value.device.id == 1 and grads["input"].device.id == 1
    with pytest.raises(ValueError, match="expected every array on one device"):
        lossy_cupy.cross_entropy(logits, cupy.asarray([0]))
