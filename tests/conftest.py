"""Shared fixtures: the ``xp`` fixture runs a test once per installed backend.

Backends: numpy, array_api_strict, torch, jax (jax with x64 enabled, so float64
means float64), cupy (only with a CUDA device). Choose a subset with
``--backends=numpy,torch`` or ``LOSSY_BACKENDS=numpy,torch``; unavailable ones
are skipped with the reason.
"""

from __future__ import annotations

import importlib
import os

import pytest

ALL_BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "cupy")


def pytest_addoption(parser):
    parser.addoption("--backends", default=os.environ.get("LOSSY_BACKENDS", ",".join(ALL_BACKENDS)),
                     help="comma-separated backends to run the xp tests on")


def _load(name):
    """(namespace, reason): the array-API namespace of a backend, or why it is unavailable."""
    try:
        if name == "numpy":
            import array_api_compat.numpy as xp
        elif name == "array_api_strict":
            xp = importlib.import_module("array_api_strict")
        elif name == "torch":
            import array_api_compat.torch as xp
        elif name == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)
            import jax.numpy as xp
        elif name == "cupy":
            reason = cuda_unavailable()
            if reason:
                return None, reason
            import array_api_compat.cupy as xp
        else:
            return None, f"unknown backend {name!r}"
    except Exception as error:  # ImportError, or CUDA runtime errors without a driver
        return None, f"{name} is not available: {type(error).__name__}: {error}"
    return xp, None


def cuda_unavailable() -> str | None:
    """None when CuPy sees a CUDA device, else why not ("no CUDA device: ...")."""
    try:
        import cupy
    except Exception as error:
        return f"no CUDA device: cupy is not importable ({type(error).__name__}: {error})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, or a driver too old for this CuPy's CUDA runtime
        return f"no CUDA device: cupy {cupy.__version__} is installed but CUDA says {type(error).__name__}: {error}"
    if count < 1:
        return f"no CUDA device: cupy {cupy.__version__} is installed but CUDA reports 0 devices"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``@pytest.mark.cuda`` skip, with the reason, where no CUDA device is present."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    reason = cuda_unavailable() if marked else None
    if reason:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_generate_tests(metafunc):
    if "xp" in metafunc.fixturenames:
        chosen = [b.strip() for b in metafunc.config.getoption("--backends").split(",") if b.strip()]
        metafunc.parametrize("xp", chosen, indirect=True)


@pytest.fixture
def xp(request):
    namespace, reason = _load(request.param)
    if namespace is None:
        pytest.skip(reason)
    return namespace


def pytest_configure(config):
    # jax defaults to float32; the suite compares float64 to ~1e-12, so enable x64 up front.
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
    except ImportError:
        pass
