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
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                return None, "cupy is installed but no CUDA device is present"
            import array_api_compat.cupy as xp
        else:
            return None, f"unknown backend {name!r}"
    except Exception as error:  # ImportError, or CUDA runtime errors without a driver
        return None, f"{name} is not available: {type(error).__name__}: {error}"
    return xp, None


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
