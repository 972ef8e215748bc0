"""The runnable examples under examples/ work: run as scripts, and their results checked."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numpy_logistic_regression_learns():
    example = _load("numpy_logistic_regression")
    X, y = example.make_data()
    w, b, losses = example.train(X, y, steps=100)
    assert np.isclose(losses[0], np.log(2)), losses[0]  # zero weights: every p = 1/2, loss = log 2
    assert all(later <= earlier + 1e-12 for earlier, later in zip(losses, losses[1:])), "the loss went up"
    assert losses[-1] < 0.5 * losses[0], losses[-1]
    # The blobs' centres (+-1.5, +-1) with unit noise: the Bayes accuracy is about 96%.
    assert example.accuracy(X, y, w, b) >= 0.93
    assert w[0] > 0 and w[1] > 0  # class 1 is up and to the right


def test_numpy_logistic_regression_runs_as_a_script():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapters"),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "numpy_logistic_regression.py")],
                         capture_output=True, text=True, check=True, env=env, timeout=120)
    assert out.stdout.startswith("loss 0.6931 -> "), out.stdout
    assert "accuracy" in out.stdout
