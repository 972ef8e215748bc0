"""The benchmark command runs and writes its JSON (timings themselves are not asserted)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


def test_benchmark_command_writes_ratios(tmp_path):
    from benchmarks.__main__ import main

    status = main(["--quick", "--no-registry", "--case", "256x10", "--no-memory", "--no-sweep",
                   "--variants", "torch native,lossy_torch,lossy_core numpy", "--out", str(tmp_path)])
    assert status == 0
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    assert report["versions"]["torch"]
    (case,) = report["cases"].values()
    assert set(case["timings_s"]) == {"torch native", "lossy_torch", "lossy_core numpy"}
    ratio = case["ratios"]["lossy_torch"]["forward+backward / torch native"]
    assert ratio > 0 and case["ratios"]["torch native"]["forward / torch native"] == 1.0


def test_every_registered_loss_has_a_benchmark_case():
    import lossy_core
    from benchmarks.cases import registry_cases

    assert {c.loss for c in registry_cases()} == {s.name for s in lossy_core.losses()}
