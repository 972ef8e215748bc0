"""The registry drives the adapters and the README: check they agree with it."""

from __future__ import annotations

import inspect
import pathlib

import pytest

import lossy_core
from lossy_core.__main__ import TABLE_END, TABLE_START, loss_table

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
NINE = {
    "l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "kl_div",
}


def test_the_foundation_losses_are_registered():
    assert NINE <= set(lossy_core.REGISTRY)


def test_readme_table_is_generated_from_the_registry():
    text = README.read_text()
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    assert text[start:end] == loss_table(), "README loss table is stale: paste the output of `python -m lossy_core`"
    for spec in lossy_core.losses():
        assert f"| {spec.name} |" in loss_table()


@pytest.mark.parametrize("spec", lossy_core.losses(), ids=lambda s: s.name)
def test_core_signature_is_the_spec(spec):
    signature = inspect.signature(spec.function)
    assert signature == spec.signature()
    kinds = [p.kind for p in signature.parameters.values()]
    assert kinds[: len(spec.arrays)] == [inspect.Parameter.POSITIONAL_ONLY] * len(spec.arrays)
    assert all(k is inspect.Parameter.KEYWORD_ONLY for k in kinds[len(spec.arrays):])
    assert getattr(lossy_core, spec.name) is spec.function
    assert spec.function.__doc__ and "torch" in spec.function.__doc__


@pytest.mark.parametrize("spec", lossy_core.losses(), ids=lambda s: s.name)
def test_torch_binding_names_every_core_argument(spec):
    """Every core argument appears in torch's signature, so the generated functional can pass it on.

    A loss the adapters bind by hand (``extra["adapters"] == "own"``: linear_cross_entropy) may have
    lossy extras torch lacks: its ``lossy_torch.functional`` function has torch's signature first,
    unchanged, then each extra keyword-only with the core default -- but for ``chunk_size``, which
    torch spells ``options=LinearCrossEntropyOptions(batch_chunk_size=...)``."""
    torch_names = [name for name, _ in spec.torch.signature]
    core = spec.signature().parameters
    if spec.extra.get("adapters") != "own":
        assert set(core) <= set(torch_names)
        return
    spelled_by_torch = {"chunk_size": "options"}  # as conformance/backends.py passes it
    extras = {n for n in core if n not in torch_names and spelled_by_torch.get(n) not in torch_names}
    functional = pytest.importorskip("lossy_torch.functional")
    parameters = inspect.signature(getattr(functional, spec.torch.function)).parameters
    names = list(parameters)
    assert names[: len(torch_names)] == torch_names
    assert set(names[len(torch_names):]) == extras
    for name in extras:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameters[name].default == core[name].default, name


def test_registering_a_mismatched_signature_fails():
    from lossy_core._registry import LossSpec, Option, register

    def bad(input, target, /, *, reduction="sum"):
        return input

    with pytest.raises(TypeError, match="does not match"):
        register(LossSpec(name="bad_loss", function=bad, family="test", arrays=("input", "target"),
                          options=(Option("reduction", "mean"),)))
    assert "bad_loss" not in lossy_core.REGISTRY


def test_registering_twice_fails():
    from lossy_core._registry import register

    with pytest.raises(ValueError, match="registered twice"):
        register(lossy_core.get("mse_loss"))


@pytest.mark.parametrize("spec", lossy_core.losses(), ids=lambda s: s.name)
def test_a_loss_torch_lacks_has_a_plain_torch_reference(spec):
    """The torch-adapter tests compare with torch.nn.functional; a loss torch lacks needs a reference."""
    torch = pytest.importorskip("torch")
    from conformance.plain_torch import REFERENCES

    if not hasattr(torch.nn.functional, spec.torch.function):
        assert spec.name in REFERENCES
