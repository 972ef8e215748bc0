"""Sphinx configuration of lossy's documentation site.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Warnings are errors (``-W``): a stale link or reference fails the build, and CI runs it.
At build time the extensions in ``docs/_ext`` generate, all git-ignored:

- ``lossy_pages``: ``docs/losses/<name>.md`` for every registered loss and
  ``docs/losses/index.md``, from ``lossy_core.losses()``, with the plots that
  ``lossy_plots.render`` draws into ``docs/_generated/plots``. The parity rows come from
  ``conformance-report/conformance.json`` (``python -m conformance --out conformance-report``;
  another report: ``LOSSY_DOCS_CONFORMANCE_JSON=path``); the scaling plot from
  ``benchmark-results/benchmarks.json`` when present (``LOSSY_DOCS_BENCHMARK_JSON=path``).
- ``lossy_gallery``: ``docs/examples/<name>.md``, each example run with its output.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
# The extensions, and the checkout itself (its packages are installed editable by
# `pip install -e ".[docs]"`; the path also lets a plain checkout with the dependencies build).
sys.path[:0] = [str(DOCS / "_ext"), str(REPO), str(REPO / "adapters")]

project = "lossy"
author = "the lossy authors"
copyright = "the lossy authors"  # noqa: A001 (Sphinx's name)

extensions = [
    "myst_parser",
    "lossy_pages",
    "lossy_gallery",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "_ext", "Thumbs.db", ".DS_Store"]

# MyST: `#anchor` links to headings up to level 3, and ::: fences for directives.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# furo: maintained, readable in light and dark mode (it follows the reader's system setting),
# with a sidebar navigation and wide code blocks that suit API reference pages; it needs no
# configuration beyond this.
html_theme = "furo"
html_title = "lossy"
html_static_path = ["_static"]
html_css_files = ["lossy.css"]
html_show_sourcelink = False
