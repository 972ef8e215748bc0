"""The per-loss documentation pages (docs/_ext/lossy_pages.py), written without a Sphinx build:
one page per registered loss, the docstring rendered as written, the adapters' real signatures,
the parity row read from a report in the format ``python -m conformance`` writes, and Markdown
tables that keep their columns."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("jax")
pytest.importorskip("cupy")

import lossy_core  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import equivalents  # noqa: E402
import lossy_pages  # noqa: E402

REGISTERED = {spec.name for spec in lossy_core.losses()}


def _report(directory: Path, losses=("mse_loss", "sigmoid_focal_loss"), failing=None) -> Path:
    """A conformance.json written by conformance.runner.write_report itself, from made-up cells."""
    from conformance import runner

    report = runner.Report(reference="torch (test)", losses=list(losses), backends=["numpy", "torch"],
                           skipped_backends={"cupy": "no CUDA device"})
    for loss in losses:
        for backend in report.backends:
            report.cells[(loss, backend)] = runner.Cell(
                passed=4, total=4, skipped=1, gradients=backend == "torch",
                worst_value={"float64": 2e-16, "float32": 3e-7}, worst_grad={"float64": 0.0, "float32": 1.5e-6})
    if failing:
        report.cells[(failing, "torch")].passed = 3
    report.notes = ["sigmoid_focal_loss[gamma=0.5 saturated|float64] on numpy: grad inputs: not compared (x)",
                    "sigmoid_focal_loss[gamma=0.5 saturated|float64] on torch: grad inputs: not compared (x)",
                    "mse_loss[other|float64] on numpy: y"]
    _, json_path = runner.write_report(report, directory)
    return json_path


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("losses")
    source = _report(tmp_path_factory.mktemp("report"))
    report = lossy_pages.load_report(source, explicit=True)
    written = lossy_pages.write_pages(out, report=report, report_source=source,
                                      plot_captions={"huber_loss-delta": "Huber: across delta", "parity-heatmap": "H"},
                                      loss_plots={"huber_loss": [("huber_loss-delta", "c"), ("absent", "c")]})
    return {p.stem: p.read_text() for p in written}


def test_one_page_per_registered_loss_and_an_index(pages):
    assert set(pages) == REGISTERED | {"index"}
    toctree = pages["index"].split("```{toctree}")[1]
    assert [line for line in toctree.splitlines()[3:] if line and line != "```"] == [
        s.name for s in lossy_core.losses()]
    for name in REGISTERED:
        assert f"[`{name}`]({name}.md)" in pages["index"]
        assert pages[name].startswith(lossy_pages.MARK_PREFIX)  # the docs code-block test skips these


def test_every_page_has_every_section(pages):
    for name in REGISTERED:
        headings = re.findall(r"^## (.+)$", pages[name], flags=re.M)
        expected = ["Definition", "Reductions", "Shape", "Options", "Calls", "Equivalents in other libraries",
                    "Parity with PyTorch", "Deviations from torch", "Paper"]
        assert [h for h in headings if h != "Plots"] == expected, name


def test_formula_literal_blocks_become_code_blocks(pages):
    text = pages["sigmoid_focal_loss"]
    assert ("Sigmoid focal loss on logits (RetinaNet; torchvision's `sigmoid_focal_loss`):\n\n```text\n"
            "loss_i = w_i alpha_t (1 - p_t)^gamma BCE(x_i, y_i)\n") in text
    for kind, body in lossy_pages.docstring_blocks(lossy_core.cross_entropy.__doc__):
        if kind == "literal":
            assert f"```text\n{body}\n```" in pages["cross_entropy"]


def test_docstring_markup():
    doc = """First line with ``code`` and :func:`mse_loss`::

            loss = a * b | c

        Plain * star, [bracket] and |x| stay as written; a trailing ::

            second block

        ``huber_loss`` links, ``not_a_loss`` does not.
        """
    link = lossy_pages._linker("l1_loss", REGISTERED)
    md = lossy_pages.docstring_markdown(doc, link)
    assert md.startswith("First line with `code` and [`mse_loss`](mse_loss.md):\n\n```text\nloss = a * b | c\n```")
    assert r"Plain \* star, \[bracket\] and \|x\| stay as written; a trailing" + "\n\n```text\nsecond block" in md
    assert "[`huber_loss`](huber_loss.md) links, `not_a_loss` does not." in md
    assert lossy_pages.docstring_markdown(doc, lossy_pages._linker("mse_loss", REGISTERED)).startswith(
        "First line with `code` and `mse_loss`:")  # no link to the page itself


def test_sentences_keep_code_and_parentheses():
    text = "A ``x. Y`` b (see e.g. C. D) ends. Next one; still. ``'mean'`` divides."
    assert lossy_pages.sentences(text) == ["A ``x. Y`` b (see e.g. C. D) ends.", "Next one; still.",
                                           "``'mean'`` divides."]


def test_reductions_and_shapes_quote_the_docstring(pages):
    assert "``'mean'`` divides by ``sum_n w[y_n]``" not in pages["cross_entropy"]  # converted, not raw reST
    assert ("- Class indices (`target` of shape `()`, `(N)` or `(N, d1..dk)`): `'mean'` divides by "
            "`sum_n w[y_n]` over the kept targets") in pages["cross_entropy"]
    assert "| `'mean'` (default) | the mean of ℓ: its denominator is stated below |" in pages["huber_loss"]
    assert "over its elements (the docstring states no other denominator)" in pages["smooth_l1_loss"]
    assert "| `'batchmean'` |" in pages["kl_div"]
    assert "- `var` has the input's shape" in pages["gaussian_nll_loss"]


def test_options_with_defaults_and_tracing(pages):
    for spec in lossy_core.losses():
        for option in spec.options:
            section = pages[spec.name].split("## Options")[1].split("## ")[0]
            row = next(line for line in section.splitlines() if line.startswith(f"| `{option.name}` |"))
            assert ("traced" if option.traced else "static") in row, (spec.name, option.name)
            assert repr(option.default).replace("|", r"\|") in row


def test_calls_are_the_adapters_real_signatures(pages):
    import lossy_cupy
    import lossy_jax
    import lossy_torch
    import lossy_torch.functional

    for spec in lossy_core.losses():
        text = pages[spec.name]
        for qualified, obj in [(f"lossy_core.{spec.name}", spec.function),
                               (f"lossy_torch.functional.{spec.name}", getattr(lossy_torch.functional, spec.name)),
                               (f"lossy_torch.{spec.torch.module}", getattr(lossy_torch, spec.torch.module)),
                               (f"lossy_jax.{spec.name}", getattr(lossy_jax, spec.name)),
                               (f"lossy_cupy.{spec.name}", getattr(lossy_cupy, spec.name))]:
            assert f"```python\n{lossy_pages.call(qualified, inspect.signature(obj))}\n```" in text, qualified


def test_call_formatting():
    def f(a, b, /, c=1, *, d="x"):
        pass

    assert lossy_pages.call("m.f", inspect.signature(f)) == "m.f(a, b, /, c=1, *, d='x')"
    assert lossy_pages.call("m.f", inspect.signature(f), width=20) == "m.f(\n    a, b, /, c=1, *,\n    d='x',\n)"


def test_parity_row_from_the_report(pages):
    text = pages["mse_loss"]
    assert "Against torch (test)" in text
    assert "| backend | cases passed | value, float64 | value, float32 |" in text
    assert "| numpy | ✓ 4/4 (1 skipped) | 2.0e-16 | 3.0e-07 |" in text
    assert "| backend | gradient, float64 | gradient, float32 |" in text
    assert "| numpy | n/a | n/a |" in text
    assert "| torch | 0 | 1.5e-06 |" in text
    assert "Backends not run: cupy (no CUDA device)." in text
    assert "does not cover this loss" in pages["huber_loss"]  # not in the report
    deviation = "- `gamma=0.5 saturated|float64` (numpy, torch): grad inputs: not compared (x)"
    assert deviation.replace("|", r"\|") not in pages["sigmoid_focal_loss"]  # a bullet, not a table cell
    assert deviation in pages["sigmoid_focal_loss"]
    assert "`other|float64`" not in pages["sigmoid_focal_loss"]


def test_a_failing_cell_is_marked(tmp_path):
    source = _report(tmp_path, failing="mse_loss")
    lines = lossy_pages.parity_section("mse_loss", lossy_pages.load_report(source, True), source)
    assert any(line.startswith("| torch | ✗ 3/4") for line in lines)


def test_without_a_report_the_pages_say_how_to_make_one(tmp_path):
    missing = tmp_path / "nowhere" / "conformance.json"
    assert lossy_pages.load_report(missing, explicit=False) is None
    with pytest.raises(lossy_pages.PagesError, match=lossy_pages.CONFORMANCE_ENV):
        lossy_pages.load_report(missing, explicit=True)
    text = "\n".join(lossy_pages.parity_section("mse_loss", None, missing))
    assert "python -m conformance --out conformance-report" in text and lossy_pages.CONFORMANCE_ENV in text


def test_plots_are_embedded_where_drawn(pages):
    assert "```{figure} ../_generated/plots/huber_loss-delta.png\n:alt: Huber - across delta\n" in pages["huber_loss"]
    assert "absent.png" not in pages["huber_loss"]
    assert "## Plots" not in pages["mse_loss"]
    assert "../_generated/plots/parity-heatmap.png" in pages["index"]


def test_tables_keep_their_columns(pages):
    """Every row of every Markdown table has as many cells as its header (a stray ``|`` splits one)."""
    def cells(row):
        return len(re.findall(r"(?<!\\)\|", row)) - 1

    for name, text in pages.items():
        header = None
        for line in text.splitlines():
            if not line.startswith("|"):
                header = None
                continue
            if header is None:
                header = cells(line)
            assert cells(line) == header, (name, line)


def test_a_loss_without_data_still_gets_a_page(monkeypatch, tmp_path):
    """A newly registered loss needs no hand-written file: its page is the registry and its docstring."""
    def new_loss(input, target, /, *, scale=2.0, reduction="mean"):
        """Scaled error::

            loss_i = scale * |input_i - target_i|

        ``input`` and ``target`` broadcast together. ``'mean'`` divides by the number of elements.
        """

    spec = lossy_core.LossSpec(name="new_loss", function=new_loss, family="test", arrays=("input", "target"),
                               options=(lossy_core.Option("scale", 2.0, traced=True),
                                        lossy_core.Option("reduction", "mean")), summary="a new loss")
    monkeypatch.setattr(lossy_pages, "adapter_calls", lambda spec: [])  # its adapters are generated at import
    written = lossy_pages.write_pages(tmp_path, specs=[spec])
    text = (tmp_path / "new_loss.md").read_text()
    assert [p.name for p in written] == ["new_loss.md", "index.md"]
    assert "```text\nloss_i = scale * |input_i - target_i|\n```" in text
    assert "No equivalents are recorded for `new_loss` yet" in text
    assert "| `scale` | `2.0` | traced" in text
    assert "- `input` and `target` broadcast together." in text
    assert "No conformance report was found" in text


def test_stale_generated_pages_are_removed_and_unchanged_ones_kept(monkeypatch, tmp_path):
    monkeypatch.setattr(lossy_pages, "adapter_calls", lambda spec: [])
    (tmp_path / "gone_loss.md").write_text(lossy_pages.MARK + "\n")
    (tmp_path / "hand_written.md").write_text("# mine\n")
    specs = [lossy_core.get("mse_loss")]
    lossy_pages.write_pages(tmp_path, specs=specs)
    assert not (tmp_path / "gone_loss.md").exists() and (tmp_path / "hand_written.md").exists()
    page = tmp_path / "mse_loss.md"
    before = page.stat().st_mtime_ns
    lossy_pages.write_pages(tmp_path, specs=specs)
    assert page.stat().st_mtime_ns == before


def test_equivalents_name_every_library_or_none(pages):
    for name in REGISTERED:
        section = pages[name].split("## Equivalents in other libraries")[1].split("## ")[0]
        bullets = re.findall(r"^- \*\*(.+?)\*\*: ", section, flags=re.M)
        assert bullets[:6] == [label for _, label in equivalents.LIBRARIES], name
    assert "- **optax**: none." in pages["gaussian_nll_loss"]
    assert "- **timm**: `timm.loss.AsymmetricLossMultiLabel(" in pages["asymmetric_loss"]


def test_equivalents_data_names_registered_losses_and_known_libraries():
    libraries = {key for key, _ in equivalents.LIBRARIES}
    for table in (equivalents.EQUIVALENTS, equivalents.DEVIATIONS, equivalents.PAPERS):
        assert set(table) <= REGISTERED, set(table) - REGISTERED
    for name, data in equivalents.EQUIVALENTS.items():
        assert set(data) <= libraries | {"other"}, name
        for key, value in data.items():
            rows = value if key == "other" else [(key, *value)]
            for _label, equivalent, how in rows:
                assert equivalent is None or equivalent.strip(), (name, key)
                assert isinstance(how, str), (name, key)
    # The torch column names the very function and class the registry binds.
    for spec in lossy_core.losses():
        torch_name = equivalents.EQUIVALENTS.get(spec.name, {}).get("torch", (None, ""))[0]
        if torch_name:
            assert f"torch.nn.functional.{spec.torch.function}`" in torch_name, spec.name
            assert f"torch.nn.{spec.torch.module}`" in torch_name, spec.name
