"""Every ```python block of the hand-written docs (docs/**/*.md) runs, as the README's do.

The blocks run the way ``tests/test_readme.py`` runs the README's: each on its own, in a fresh
namespace, skipped when it imports torch, jax, optax or array_api_strict and that is not
installed, and skipped with the reason when it imports cupy and there is no CUDA device. A block
placed right after the comment ``<!-- continues the previous block -->`` runs after the block
before it, in its namespace (a walk-through, as in docs/guides/design.md). Tracebacks point at
the Markdown file's own lines.

Generated pages (the per-loss pages, the examples gallery: git-ignored, or starting with a
``<!-- generated`` comment) are made from the registry or from examples/ and are not run here;
the gallery's page writer is tested below on the quick NumPy example.

Whatever a block adds to lossy_core, its registry, or conformance's case generators and
references (the design guide registers a loss to show how) is removed after it.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import cuda_unavailable

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONTINUES = "<!-- continues the previous block -->"
OPTIONAL = ("torch", "jax", "optax", "array_api_strict")
OPENING = re.compile(r"^(`{3,})python\s*$")


def _git_ignored(paths):
    """The subset of ``paths`` that git ignores (empty where git or the repository is missing)."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--stdin"], capture_output=True, text=True,
                              input="\n".join(str(p) for p in paths), timeout=30)
    except (OSError, subprocess.SubprocessError):
        return set()
    if done.returncode not in (0, 1):  # 128: not a git checkout
        return set()
    return {pathlib.Path(line) for line in done.stdout.splitlines() if line}


def hand_written_pages():
    """docs/**/*.md outside ``_*`` folders (build output, generated plots, extensions), not generated."""
    pages = [p for p in sorted(DOCS.rglob("*.md"))
             if not any(part.startswith(("_", ".")) for part in p.relative_to(DOCS).parts[:-1])]
    pages = [p for p in pages if not p.read_text().lstrip().startswith("<!-- generated")]
    ignored = _git_ignored(pages)
    return [p for p in pages if p not in ignored]


def python_blocks(text):
    """[(first line number of the code, code, continues_previous)] of the ```python fences."""
    lines = text.splitlines()
    blocks, i, last_end = [], 0, 0
    while i < len(lines):
        opening = OPENING.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening.group(1)
        before = [line for line in lines[last_end:i] if line.strip()]
        continues = bool(blocks) and bool(before) and before[-1].strip() == CONTINUES
        start = i + 1
        end = start
        while end < len(lines) and not (lines[end].startswith(fence) and lines[end].strip("`") == ""):
            end += 1
        blocks.append((start + 1, "\n".join(lines[start:end]) + "\n", continues))
        i = last_end = end + 1
    return blocks


def programs():
    """One program per block, a continued block joined to the one before it."""
    found = []
    for page in hand_written_pages():
        relative = page.relative_to(ROOT).as_posix()
        for line, code, continues in python_blocks(page.read_text()):
            if continues:
                found[-1][2].append((line, code))
            else:
                found.append((relative, line, [(line, code)]))
    return found


PROGRAMS = programs()


def _imported_modules(code):
    modules = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


class _Restore:
    """Undo what a program adds to lossy_core's module, its registry, and conformance's tables."""

    def __init__(self):
        import lossy_core
        import conformance.cases

        self.tables = [lossy_core.REGISTRY, conformance.cases.GENERATORS]
        if "conformance.plain_torch" in sys.modules:
            self.tables.append(sys.modules["conformance.plain_torch"].REFERENCES)
        self.saved = [dict(table) for table in self.tables]
        self.module = vars(lossy_core)
        self.module_saved = dict(self.module)

    def __call__(self):
        for table, saved in zip(self.tables, self.saved):
            table.clear()
            table.update(saved)
        for name in [n for n in self.module if n not in self.module_saved]:
            if not isinstance(self.module[name], type(sys)):  # keep submodules imported meanwhile
                del self.module[name]
        for name, value in self.module_saved.items():
            if self.module.get(name) is not value:
                self.module[name] = value


def test_docs_have_python_blocks():
    pages = {relative for relative, _, _ in PROGRAMS}
    assert len(PROGRAMS) >= 20, PROGRAMS
    assert "docs/guides/quickstart.md" in pages and "docs/guides/from-optax.md" in pages


def test_continued_blocks_are_found():
    design = [program for program in PROGRAMS if program[0] == "docs/guides/design.md"]
    assert max(len(blocks) for _, _, blocks in design) >= 5


@pytest.mark.parametrize("relative, line, blocks", PROGRAMS, ids=[f"{r}:{n}" for r, n, _ in PROGRAMS])
def test_docs_block_runs(relative, line, blocks):
    modules = set().union(*(_imported_modules(code) for _, code in blocks))
    for module in OPTIONAL:
        if module in modules:
            pytest.importorskip(module)
    if modules & {"cupy", "lossy_cupy"} and cuda_unavailable():
        pytest.skip(cuda_unavailable())
    if "conformance" in modules and importlib.util.find_spec("torch") is not None:
        import conformance.plain_torch  # noqa: F401  (imported first, so _Restore sees its references)
    restore = _Restore()
    namespace = {"__name__": f"docs_{pathlib.Path(relative).stem.replace('-', '_')}"}
    try:
        for start, code in blocks:
            # padded so that a traceback's line numbers are the Markdown file's
            exec(compile("\n" * (start - 1) + code, str(ROOT / relative), "exec"), namespace)
    finally:
        restore()


# --------------------------------------------------------------------------- the examples gallery

def _gallery():
    """docs/_ext/lossy_gallery.py, imported without Sphinx (it needs Sphinx only in ``setup``)."""
    if "lossy_gallery" not in sys.modules:
        spec = importlib.util.spec_from_file_location("lossy_gallery", DOCS / "_ext" / "lossy_gallery.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["lossy_gallery"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["lossy_gallery"]


def test_gallery_writes_an_example_page(tmp_path):
    gallery = _gallery()
    (page,) = gallery.write_gallery(ROOT / "examples", tmp_path, root=ROOT, names=["numpy_logistic_regression"])
    text = page.read_text()
    assert text.startswith(gallery.MARK.format(name="numpy_logistic_regression"))
    assert "\n# Logistic regression in plain NumPy, trained with lossy_core's analytic gradients\n" in text
    assert (ROOT / "examples" / "numpy_logistic_regression.py").read_text().rstrip() in text  # the source
    assert re.search(r"```text\nloss 0\.6931 -> 0\.\d+, accuracy 9\d\.\d%\n```", text), text  # its output


def test_gallery_pages_are_not_run_as_docs(tmp_path):
    """The gallery's pages are generated: git-ignored in docs/examples/, and marked."""
    gallery = _gallery()
    assert gallery.MARK.startswith("<!-- generated")
    ignored = _git_ignored([DOCS / "examples" / "numpy_logistic_regression.md", DOCS / "examples" / "index.md"])
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert ignored == {DOCS / "examples" / "numpy_logistic_regression.md"}


def test_gallery_stops_on_a_failing_example(tmp_path):
    gallery = _gallery()
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "broken.py").write_text('"""Raises."""\nraise SystemExit("this example is broken")\n')
    with pytest.raises(gallery.GalleryError, match="this example is broken"):
        gallery.write_gallery(examples, tmp_path / "out", root=tmp_path)


def test_gallery_fences_outlast_the_source():
    gallery = _gallery()
    assert gallery._fence("a ``` b") == "````"
    assert gallery._fence("plain") == "```"
