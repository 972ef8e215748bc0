"""The README's examples run as written (the loss table is checked in test_registry)."""

from __future__ import annotations

import pathlib
import re

import pytest
from conftest import cuda_unavailable

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    source = BLOCKS[index]
    for module in ("torch", "jax"):
        if f"import {module}" in source:
            pytest.importorskip(module)
    if "import cupy" in source and cuda_unavailable():
        pytest.skip(cuda_unavailable())
    exec(compile(source, f"README.md example {index}", "exec"), {})
