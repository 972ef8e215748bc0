"""lossy's parity suite against PyTorch.

``python -m conformance`` runs every case (``cases.py``) of every registered loss
on every installed backend (``backends.py``: numpy, array_api_strict, torch,
jax, cupy) against torch run live (``reference.py``) or, where torch is
missing, the golden files (``golden.py``), compares value and gradients with
dtype-scaled tolerances (``compare.py``), and prints and writes the parity
matrix (``runner.py``).
"""

from .cases import Case, cases_for
from .runner import Report, run

__all__ = ["Case", "Report", "cases_for", "run"]
