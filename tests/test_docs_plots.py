"""The documentation's plots (docs/_ext/lossy_plots.py): every promised PNG is written, the
curves are lossy's values, and the two report plots read the reports' real formats."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import lossy_core  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load():
    if "lossy_plots" in sys.modules:
        return sys.modules["lossy_plots"]
    spec = importlib.util.spec_from_file_location("lossy_plots", ROOT / "docs" / "_ext" / "lossy_plots.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["lossy_plots"] = module
    spec.loader.exec_module(module)
    return module


plots = _load()


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; fails unless the file is a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# -- reports in the formats their commands write ---------------------------------------------


def _conformance_report(directory: Path) -> Path:
    """A conformance.json written by conformance.runner.write_report itself (what
    ``python -m conformance --out DIR`` writes), from made-up cells: one failing, one all-skipped."""
    from conformance import runner

    report = runner.Report(reference="torch (test)", losses=["mse_loss", "huber_loss", "ctc_loss"],
                           backends=["numpy", "torch"], skipped_backends={"cupy": "no CUDA device"})
    for loss in report.losses:
        for backend in report.backends:
            cell = runner.Cell(passed=3, total=3, gradients=backend == "torch",
                               worst_value={"float64": 2e-16, "float32": 1e-7}, worst_grad={"float64": 0.0})
            report.cells[(loss, backend)] = cell
    report.cells[("huber_loss", "torch")].passed = 2  # a failure
    report.cells[("huber_loss", "torch")].worst_value["float64"] = 3e-9
    report.cells[("ctc_loss", "numpy")] = runner.Cell(skipped=4)  # every case skipped
    _, json_path = runner.write_report(report, directory)
    return json_path


SWEEP = {  # benchmarks/sweep.py's result (title -> variant -> [(x, ratio)]), as json.dump writes it
    "cross_entropy over N (C=1000)": {"lossy_torch": [[64, 1.5], [1024, 1.1]],
                                      "lossy_torch compiled": [[64, 2.9], [1024, 0.9]]},
    "mse_loss over size": {"lossy_torch": [[1000, 1.5], [1000000, 1.7]],
                           "lossy_torch compiled": [[1000, 3.8], [1000000, 0.9]]},
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    directory = tmp_path_factory.mktemp("reports")
    bench = directory / "benchmarks.json"
    bench.write_text(json.dumps({"sweep": SWEEP, "machine": {"processor": "test CPU"},
                                 "versions": {"torch": "0"}}))
    return _conformance_report(directory / "conformance-report"), bench


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, reports):
    conformance_json, benchmark_json = reports
    return plots.render(tmp_path_factory.mktemp("plots"), conformance_json, benchmark_json)


# -- the interface ------------------------------------------------------------------------------


def test_every_plotted_loss_is_registered_and_captioned():
    assert plots.LOSS_PLOTS, "no loss plots"
    assert set(plots.LOSS_PLOTS) <= set(lossy_core.REGISTRY), set(plots.LOSS_PLOTS) - set(lossy_core.REGISTRY)
    for loss, entries in plots.LOSS_PLOTS.items():
        assert entries, loss
        for plot_id, caption in entries:
            assert isinstance(plot_id, str) and plot_id and "/" not in plot_id
            assert isinstance(caption, str) and len(caption) > 40, (plot_id, caption)


def test_the_families_the_issue_names_have_plots():
    wanted = {"sigmoid_focal_loss", "binary_focal_loss", "softmax_focal_loss", "huber_loss", "smooth_l1_loss",
              "l1_loss", "mse_loss", "hinge_embedding_loss", "margin_ranking_loss", "soft_margin_loss",
              "cosine_embedding_loss", "multi_margin_loss", "triplet_margin_loss"}
    assert wanted <= set(plots.LOSS_PLOTS), wanted - set(plots.LOSS_PLOTS)
    for skipped in ("ctc_loss", "adaptive_log_softmax_with_loss", "linear_cross_entropy"):
        assert skipped not in plots.LOSS_PLOTS


def test_render_writes_every_promised_png(rendered):
    promised = {plot_id for entries in plots.LOSS_PLOTS.values() for plot_id, _ in entries}
    promised |= {"parity-heatmap", "performance-scaling"}
    assert set(rendered) == promised
    for plot_id, path in rendered.items():
        assert path == path.parent / f"{plot_id}.png"
        width, height = _png_size(path)
        assert 300 <= width <= 3000 and 150 <= height <= 3000, (plot_id, width, height)
    curve_sizes = {_png_size(rendered[i]) for e in plots.LOSS_PLOTS.values() for i, _ in e}
    assert len(curve_sizes) == 1, f"loss plots differ in size: {curve_sizes}"


def test_captions_cover_every_plot_and_say_where_reports_came_from(reports):
    conformance_json, benchmark_json = reports
    with_reports = plots.captions(conformance_json, benchmark_json)
    without = plots.captions()
    promised = {plot_id for entries in plots.LOSS_PLOTS.values() for plot_id, _ in entries} | set(plots.EXTRA_PLOTS)
    assert set(with_reports) == set(without) == promised
    assert "benchmarks.json" in with_reports["performance-scaling"]
    assert "docs/performance-scaling.png" in without["performance-scaling"]
    assert "python -m conformance" in without["parity-heatmap"]


def test_without_reports_a_placeholder_and_the_committed_scaling_plot(tmp_path):
    paths = plots.render(tmp_path, None, tmp_path / "missing.json", only=plots.EXTRA_PLOTS)
    assert paths["performance-scaling"].read_bytes() == (ROOT / "docs" / "performance-scaling.png").read_bytes()
    _png_size(paths["parity-heatmap"])
    figure = plots.build_figure("parity-heatmap", None)
    texts = " ".join(t.get_text() for ax in figure.axes for t in ax.texts)
    assert "python -m conformance" in texts


def test_output_is_deterministic(tmp_path):
    first = plots.render(tmp_path / "a", only=["huber_loss-delta"])["huber_loss-delta"].read_bytes()
    second = plots.render(tmp_path / "b", only=["huber_loss-delta"])["huber_loss-delta"].read_bytes()
    assert first == second


# -- the curves are lossy's -----------------------------------------------------------------------


def _lines(figure, panel):
    return {line.get_label(): line for line in figure.axes[panel].get_lines() if not line.get_label().startswith("_")}


def _at(line, points):
    """The plotted (x, y) at the grid points nearest ``points``."""
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    index = [int(np.argmin(np.abs(x - p))) for p in points]
    return x[index], y[index]


POINTS = (0.05, 0.3, 0.5, 0.9)


def test_sigmoid_focal_curves_are_the_focal_formula():
    """At gamma = 0 the plotted curve is -log p_t (cross entropy / BCE, Lin et al. 2017, eq. 1), its
    logit gradient p_t - 1; at gamma = 2, -(1 - p_t)^2 log p_t (eq. 4): numpy's formulas, not lossy's."""
    figure = plots.build_figure("sigmoid_focal_loss-gamma")
    loss, grad = _lines(figure, 0), _lines(figure, 1)
    p, value = _at(loss["γ = 0 (BCE with logits)"], POINTS)
    np.testing.assert_allclose(value, -np.log(p), rtol=1e-12)
    p, value = _at(grad["γ = 0 (BCE with logits)"], POINTS)
    np.testing.assert_allclose(value, p - 1, rtol=1e-12)
    p, value = _at(loss["γ = 2"], POINTS)
    np.testing.assert_allclose(value, -(1 - p) ** 2 * np.log(p), rtol=1e-12)
    assert set(loss) == {"γ = 0 (BCE with logits)", "γ = 0.5", "γ = 1", "γ = 2", "γ = 5"}


@pytest.mark.parametrize("plot_id, label", [("binary_focal_loss-gamma", "γ = 0 (BCE)"),
                                            ("softmax_focal_loss-gamma", "γ = 0 (cross entropy)"),
                                            ("poly1_cross_entropy-epsilon", "ε = 0 (cross entropy)")])
def test_gamma_zero_is_cross_entropy(plot_id, label):
    p, value = _at(_lines(plots.build_figure(plot_id), 0)[label], POINTS)
    np.testing.assert_allclose(value, -np.log(p), rtol=1e-12)


def test_binary_focal_gradient_is_against_the_probability():
    p, value = _at(_lines(plots.build_figure("binary_focal_loss-gamma"), 1)["γ = 0 (BCE)"], POINTS)
    np.testing.assert_allclose(value, -1 / p, rtol=1e-12)


def test_huber_and_triplet_curves():
    figure = plots.build_figure("huber_loss-delta")
    d, value = _at(_lines(figure, 0)["δ = 1"], (-2.5, -0.4, 0.0, 0.7, 2.0))
    np.testing.assert_allclose(value, np.where(np.abs(d) < 1, 0.5 * d**2, np.abs(d) - 0.5), rtol=1e-12, atol=1e-15)
    d, value = _at(_lines(figure, 1)["δ = 1"], (-2.5, -0.4, 0.7, 2.0))
    np.testing.assert_allclose(value, np.clip(d, -1, 1), rtol=1e-12)
    figure = plots.build_figure("triplet_margin_loss-margin")
    x, value = _at(_lines(figure, 0)["margin = 1"], (-2.0, -0.5, 0.5, 2.0))
    np.testing.assert_allclose(value, np.maximum(0, 1 + x), rtol=1e-9, atol=1e-9)  # eps = 1e-6 cancels in x
    x, value = _at(_lines(figure, 1)["margin = 1"], (-2.0, -0.5, 0.5, 2.0))
    np.testing.assert_allclose(value, (x > -1).astype(float), atol=1e-12)


def test_kl_and_cosine_chain_rules():
    """The two gradients recovered by a chain rule: KL(t || sigmoid(z)) has d/dz = q - t; the cosine
    embedding loss has d/dcos = -1 (y = 1) and [cos > margin] (y = -1)."""
    q, value = _at(_lines(plots.build_figure("kl_div-target"), 1)["target t = 0.5"], POINTS)
    np.testing.assert_allclose(value, q - 0.5, atol=1e-12)
    grad = _lines(plots.build_figure("cosine_embedding_loss-margin"), 1)
    c, value = _at(grad["y = +1 (ℓ = 1 − cos)"], (-0.9, 0.0, 0.9))
    np.testing.assert_allclose(value, -1.0, rtol=1e-9)
    c, value = _at(grad["y = −1, margin = 0.5"], (-0.9, 0.2, 0.8))
    np.testing.assert_allclose(value, (c > 0.5).astype(float), atol=1e-9)


# -- the report plots read the reports ------------------------------------------------------------


def test_parity_heatmap_reads_the_conformance_json(reports):
    conformance_json, _ = reports
    figure = plots.build_figure("parity-heatmap", conformance_json)
    float64 = figure.axes[0]
    assert [t.get_text() for t in float64.get_yticklabels()] == ["mse_loss", "huber_loss", "ctc_loss"]  # registry order
    assert [t.get_text() for t in float64.get_xticklabels()] == ["numpy", "torch", "cupy (not run)"]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in float64.texts}
    assert cells[(1, 1)] == "FAIL 3e-9"  # huber_loss on torch: failed, worst value error 3e-9
    assert cells[(0, 0)] == "2e-16 v"  # numpy: no gradients in this made-up report
    assert cells[(0, 1)] == "2e-16"  # max(value 2e-16, gradient 0)
    assert cells[(2, 0)] == "skip"
    image = float64.images[0].get_array()
    assert math.isclose(float(image[1, 1]), -10.0)  # log10(3e-9) = -8.5, clipped to float64's top, -10
    assert math.isclose(float(image[0, 1]), math.log10(2e-16))


def test_performance_scaling_reads_the_sweep(reports):
    _, benchmark_json = reports
    figure = plots.build_figure("performance-scaling", None, benchmark_json)
    assert [ax.get_title() for ax in figure.axes] == list(SWEEP)
    line = _lines(figure, 0)["lossy_torch compiled"]
    assert list(line.get_xdata()) == [64, 1024] and list(line.get_ydata()) == [2.9, 0.9]
