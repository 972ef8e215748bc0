"""Golden files: torch's results for every case, for checking a backend where torch is absent.

One ``conformance/golden/<loss>.npz`` per loss, written with ``np.savez_compressed``
and read with ``allow_pickle=False``. Key ``meta`` holds one JSON string: the
torch and numpy versions and, per case, its id, dtype, options, known
deviations and the dtype/presence of every stored array. Arrays are stored as
``c<i>.in.<name>`` (the inputs, to detect a case generator that changed since
the golden was written), ``c<i>.value`` (and ``c<i>.value.<k>`` for the k-th further
output of a tuple, its dtype in ``meta``'s ``more_dtypes``) and ``c<i>.grad.<name>``, each in its
own numpy dtype; bfloat16 is stored as float32 (exact) with the dtype tag in
``meta``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .cases import Case
from .reference import Result

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
FORMAT = 1


class StaleGolden(RuntimeError):
    pass


def _store(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return np.asarray(x, dtype=np.float32)  # exact: every bfloat16 is a float32
    if dtype in ("float16", "float32", "float64"):
        return np.asarray(x, dtype=np.dtype(dtype))
    return np.asarray(x)


def path_for(loss: str, directory: Path | None = None) -> Path:
    return Path(directory or GOLDEN_DIR) / f"{loss}.npz"


def write(loss: str, cases: list[Case], results: list[Result], torch_version: str, directory=None) -> Path:
    arrays, entries = {}, []
    for i, (case, result) in enumerate(zip(cases, results)):
        for name, a in case.arrays.items():
            arrays[f"c{i}.in.{name}"] = a
        arrays[f"c{i}.value"] = _store(result.value, result.dtype)
        for k, (extra, extra_dtype) in enumerate(result.more, start=1):
            arrays[f"c{i}.value.{k}"] = _store(extra, extra_dtype)
        grads = {}
        for name, g in (result.grads or {}).items():
            if g is None:
                grads[name] = None
            else:
                arrays[f"c{i}.grad.{name}"] = _store(g[0], g[1])
                grads[name] = g[1]
        entries.append({"id": case.id, "dtype": case.dtype, "options": case.options, "known": case.known,
                        "value_dtype": result.dtype, "grads": grads,
                        **({"more_dtypes": [d for _, d in result.more]} if result.more else {})})
    meta = {"format": FORMAT, "loss": loss, "torch_version": torch_version, "numpy_version": np.__version__,
            "cases": entries}
    arrays["meta"] = np.array([json.dumps(meta, sort_keys=True)])
    path = path_for(loss, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load(loss: str, cases: list[Case], directory=None) -> tuple[dict, list[Result]]:
    """(meta, results in the order of ``cases``); raises StaleGolden if the cases changed since writing."""
    path = path_for(loss, directory)
    if not path.exists():
        raise FileNotFoundError(f"no golden file for {loss} at {path}: run `python -m conformance --write-golden`")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"][0]))
        entries = meta["cases"]
        ids = [e["id"] for e in entries]
        if ids != [c.id for c in cases]:
            missing = sorted(set(c.id for c in cases) - set(ids))[:5]
            raise StaleGolden(f"{path.name}: the cases changed since the golden file was written "
                              f"(e.g. not in golden: {missing}); regenerate with --write-golden")
        results = []
        for i, (case, entry) in enumerate(zip(cases, entries)):
            for name, a in case.arrays.items():
                stored = data[f"c{i}.in.{name}"]
                if (stored.dtype != a.dtype or stored.shape != a.shape
                        or not np.array_equal(stored, a, equal_nan=a.dtype.kind == "f")):
                    raise StaleGolden(f"{path.name}: input {name!r} of case {case.id!r} differs from the golden "
                                      f"file's; regenerate with --write-golden")
            if entry["options"] != case.options or entry["dtype"] != case.dtype:
                raise StaleGolden(f"{path.name}: options or dtype of case {case.id!r} changed")
            grads = {}
            for name, gdtype in entry["grads"].items():
                grads[name] = None if gdtype is None else (data[f"c{i}.grad.{name}"].astype(np.float64), gdtype)
            more = [(data[f"c{i}.value.{k}"].astype(np.float64), d)
                    for k, d in enumerate(entry.get("more_dtypes", []), start=1)]
            results.append(Result(data[f"c{i}.value"].astype(np.float64), entry["value_dtype"], grads, more))
    return meta, results
