"""Drop-in test on torch's own documented examples.

For each of the nine torch-bound losses, the ``>>>`` Examples of
``torch.nn.functional.<name>.__doc__`` and ``torch.nn.<Class>.__doc__`` are run
with the same ``torch.manual_seed``:

1. unpatched (the reference),
2. with ``torch.nn.functional.<name>`` replaced by ``lossy_torch.functional.<name>``
   (torch.nn's modules call ``F.<name>`` through the module attribute, so this
   also routes the class examples to lossy),
3. with ``torch.nn.<Class>`` replaced by ``lossy_torch.<Class>`` (class examples).

Every tensor the examples leave behind (losses, outputs, inputs, the printed
value of bare expressions) and the ``.grad`` of every leaf that requires grad
(including module parameters, e.g. the Conv2d of the NLLLoss example) must
agree to float32 tolerance. Each patched run must really reach lossy: the
number of calls into lossy is counted and must equal the number of calls the
example makes to the patched name.
"""

from __future__ import annotations

import codeop
import doctest
import importlib

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lossy_core  # noqa: E402
import lossy_torch  # noqa: E402
import lossy_torch._binding as binding  # noqa: E402
import lossy_torch.functional as LF  # noqa: E402

# Every torch loss lossy binds, with its torch.nn class (the registry is the list).
# Losses torch lacks (torchvision's sigmoid_focal_loss, ...) are checked against their plain-torch
# references in their own test files (tests/test_focal.py); tests/test_registry.py checks they have one.
NINE = {s.torch.function: s.torch.module for s in lossy_core.losses()
        if s.torch and s.torch.module and hasattr(F, s.torch.function)}
# Bound by hand (extra["adapters"] == "own": linear_cross_entropy): the module is not a generated
# LossModule; its forward calls the functional of its own module (looked up at run time).
OWN = {s.torch.function for s in lossy_core.losses() if s.extra.get("adapters") == "own"}


def _incomplete(source):
    if source.rstrip("\n").endswith("\\"):
        return True
    try:
        return codeop.compile_command(source, symbol="exec") is None
    except SyntaxError:
        return False


def _examples(obj):
    """The ``>>>`` examples of ``obj``'s docstring (multi-line statements joined by doctest).

    Some of torch's docstrings write continuation lines with ``>>>`` too (xdoctest style,
    e.g. TripletMarginWithDistanceLoss): a statement that does not compile yet, or a line
    that follows it indented, is joined with the lines after it. An ``# xdoctest: +SKIP``
    line ends the examples, as it does for xdoctest.
    """
    doc = obj.__doc__ or ""
    skip = doc.find("# xdoctest: +SKIP")  # doctest drops comment lines: cut the text there
    if skip >= 0:
        doc = doc[:doc.rfind("\n", 0, skip)]
    merged = []
    for example in doctest.DocTestParser().get_examples(doc):
        source = example.source
        if merged and (_incomplete(merged[-1]) or source[:1].isspace()):
            merged[-1] += source
        else:
            merged.append(source)
    return merged


def _run(sources, seed=0):
    """Execute the examples in one namespace; return every resulting tensor by a stable key."""
    torch.manual_seed(seed)
    scope = {"torch": torch, "nn": torch.nn, "F": torch.nn.functional}
    results = {}
    for i, source in enumerate(sources):
        try:
            code = compile(source, f"<example {i}>", "eval")
        except SyntaxError:
            exec(compile(source, f"<example {i}>", "exec"), scope)  # noqa: S102
        else:
            value = eval(code, scope)  # noqa: S307  (a bare expression: doctest prints it)
            if isinstance(value, torch.Tensor):
                results[f"expr{i}"] = value.detach().clone()
            elif isinstance(value, float):
                results[f"expr{i}"] = torch.tensor(value, dtype=torch.float64)
        # Snapshot after each example, so a name rebound later (``input``, ``loss``)
        # is compared at every stage, not only at the end.
        for name, value in scope.items():
            if isinstance(value, torch.Tensor):
                results[f"{name}@{i}"] = value.detach().clone()
                if value.is_leaf and value.grad is not None:
                    results[f"{name}.grad@{i}"] = value.grad.clone()
            elif isinstance(value, torch.nn.Module):
                for pname, param in value.named_parameters():
                    if param.grad is not None:
                        results[f"{name}.{pname}.grad@{i}"] = param.grad.clone()
    return results


class _Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _calls_in(sources, token):
    return sum(s.count(token) for s in sources)


def _compare(reference, patched):
    assert reference.keys() == patched.keys()
    grads = [k for k in reference if ".grad@" in k]
    for key, expected in reference.items():
        # equal_nan: NaN in exactly torch's positions. CTCLoss's examples draw random target lengths
        # up to T, so a sample can be impossible to align: inf loss, NaN gradient, in torch too.
        torch.testing.assert_close(patched[key], expected, rtol=1.3e-6, atol=1e-5, equal_nan=True,
                                   msg=lambda m: f"{key}: {m}")
    return grads


@pytest.mark.parametrize("name", sorted(NINE))
def test_docstring_examples_with_functional_patched(name, monkeypatch):
    cls = NINE[name]
    sources = _examples(getattr(F, name)) + _examples(getattr(torch.nn, cls))
    if not sources:
        pytest.fail(f"torch's docstrings of {name}/{cls} have no examples")
    reference = _run(sources)

    counter = _Counter(getattr(LF, name))
    with monkeypatch.context() as m:
        m.setattr(torch.nn.functional, name, counter)
        patched = _run(sources)
    # Every F.<name>(...) and every call of the module reaches lossy.
    expected_calls = _calls_in(sources, f"F.{name}(")
    assert counter.calls > 0
    assert counter.calls >= expected_calls
    grads = _compare(reference, patched)
    # Not vacuous: every example that calls backward() produced a gradient to compare.
    if any(".backward()" in s for s in sources):
        assert grads


@pytest.mark.parametrize("name", sorted(NINE))
def test_docstring_examples_with_class_replaced(name, monkeypatch):
    cls = NINE[name]
    sources = _examples(getattr(torch.nn, cls))
    assert sources, f"torch.nn.{cls} has no documented examples"
    assert _calls_in(sources, f"nn.{cls}(") > 0
    reference = _run(sources)

    own = importlib.import_module(getattr(lossy_torch, cls).__module__) if name in OWN else None
    counter = _Counter(getattr(own, name) if own else binding.call)
    constructed = []

    class Recording(getattr(lossy_torch, cls)):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            constructed.append(self)

    with monkeypatch.context() as m:
        m.setattr(torch.nn, cls, Recording)
        if own:
            m.setattr(own, name, counter)
        else:
            m.setattr(binding, "call", counter)  # LossModule.forward looks ``call`` up at run time
        # and nothing may fall back to torch's own loss
        m.setattr(torch.nn.functional, name, _forbidden(name))
        patched = _run(sources)
    assert len(constructed) == _calls_in(sources, f"nn.{cls}(")
    assert all(isinstance(c, getattr(lossy_torch, cls) if own else lossy_torch.LossModule) for c in constructed)
    assert counter.calls > 0
    _compare(reference, patched)


def _forbidden(name):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"torch.nn.functional.{name} was called while torch.nn's class was replaced")
    return forbidden


def test_patched_run_is_sensitive():
    # The comparison can fail: a deliberately wrong "drop-in" is caught.
    sources = _examples(torch.nn.MSELoss)
    reference = _run(sources)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch.nn.functional, "mse_loss", lambda i, t, *a, **k: LF.mse_loss(i, t, *a, **k) * 1.001)
        patched = _run(sources)
    with pytest.raises(AssertionError):
        _compare(reference, patched)
