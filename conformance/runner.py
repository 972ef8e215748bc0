"""Running cases on backends against the reference, and the parity report."""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import golden
from .backends import Unsupported, all_backends
from .cases import FLOAT_DTYPES, Case, all_losses, cases_for
from .compare import TOLERANCES, CaseCheck, compare_result


def torch_available() -> str | None:
    """None if torch imports, else the reason."""
    try:
        import torch  # noqa: F401
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def reference_results(loss: str, cases: list[Case], use_golden: bool):
    """(description, [Result or Exception per case])."""
    if use_golden:
        meta, results = golden.load(loss, cases)
        return f"golden files (torch {meta['torch_version']})", results
    from .reference import run_reference, torch_version

    results = []
    for case in cases:
        try:
            results.append(run_reference(case))
        except Exception as error:  # a case torch rejects is a bad case: reported, never skipped
            results.append(error)
    return f"torch {torch_version()} (live)", results


@dataclass
class Outcome:
    case: Case
    backend: str
    status: str  # "pass" | "fail" | "skip"
    check: CaseCheck | None = None
    detail: str = ""


def run_case(backend, case: Case, ref) -> Outcome:
    if isinstance(ref, Exception):
        return Outcome(case, backend.name, "fail", detail=f"the reference raised {type(ref).__name__}: {ref}")
    try:
        got = backend.run(case)
    except Unsupported as reason:
        return Outcome(case, backend.name, "skip", detail=str(reason))
    except Exception as error:
        tb = traceback.format_exception_only(type(error), error)[-1].strip()
        return Outcome(case, backend.name, "fail", detail=f"raised {tb}")
    check = compare_result(got, ref, case.dtype, case.known)
    return Outcome(case, backend.name, "pass" if check.ok else "fail", check, "; ".join(check.messages))


@dataclass
class Cell:
    passed: int = 0
    total: int = 0
    skipped: int = 0
    # dtype -> worst error (relative, with the floor of compare.py) over the passing and failing cases
    worst_value: dict = field(default_factory=dict)
    worst_grad: dict = field(default_factory=dict)
    gradients: bool = False

    def add(self, outcome: Outcome):
        if outcome.status == "skip":
            self.skipped += 1
            return
        self.total += 1
        self.passed += outcome.status == "pass"
        check, dtype = outcome.check, outcome.case.dtype
        if check is not None:
            for worst, err in ((self.worst_value, check.value_error), (self.worst_grad, check.grad_error)):
                if err is not None:
                    worst[dtype] = max(worst.get(dtype, 0.0), err)


@dataclass
class Report:
    reference: str = ""
    losses: list = field(default_factory=list)
    backends: list = field(default_factory=list)  # names that ran
    skipped_backends: dict = field(default_factory=dict)  # name -> reason
    cells: dict = field(default_factory=dict)  # (loss, backend) -> Cell
    failures: list = field(default_factory=list)  # Outcome
    notes: list = field(default_factory=list)  # known deviations seen
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and all(c.passed == c.total for c in self.cells.values())

    def to_json(self) -> dict:
        return {
            "reference": self.reference,
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
            "backends_ran": self.backends,
            "backends_skipped": self.skipped_backends,
            "tolerances": {d: {"rtol": r, "floor": f} for d, (r, f) in TOLERANCES.items()},
            "matrix": {
                loss: {
                    b: {"passed": c.passed, "total": c.total, "skipped": c.skipped,
                        "worst_value_error": c.worst_value, "worst_grad_error": c.worst_grad if c.gradients else None}
                    for (l2, b), c in self.cells.items() if l2 == loss
                }
                for loss in self.losses
            },
            "failures": [{"loss": o.case.loss, "case": o.case.id, "backend": o.backend, "detail": o.detail}
                         for o in self.failures],
            "known_deviations": self.notes,
        }


def _fmt(err):
    return "-" if err is None else ("0" if err == 0 else f"{err:.1e}")


def matrix(report: Report, dtype: str = "float64", markdown: bool = False) -> str:
    """Rows: loss; columns: backend; cell: passed/total (skipped), worst value / gradient error in ``dtype``."""
    header = ["loss"] + report.backends
    rows = []
    for loss in report.losses:
        row = [loss]
        for b in report.backends:
            c = report.cells[(loss, b)]
            mark = "" if c.passed == c.total else " FAIL"
            grad = _fmt(c.worst_grad.get(dtype)) if c.gradients else "n/a"
            row.append(f"{c.passed}/{c.total} ({c.skipped}){mark} v {_fmt(c.worst_value.get(dtype))} g {grad}")
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(s.ljust(w) for s, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def run(losses=None, backends=None, use_golden: bool | None = None, progress=sys.stderr) -> Report:
    """Every case of ``losses`` on every installed backend among ``backends``, against torch or golden."""
    start = time.perf_counter()
    report = Report()
    registered = all_losses()
    losses = list(losses or registered)
    unknown = [name for name in losses if name not in registered]
    if unknown:
        raise SystemExit(f"unknown loss(es) {unknown}; registered: {', '.join(registered)}")
    available = all_backends()
    backends = list(backends or available)
    unknown = [b for b in backends if b not in available]
    if unknown:
        raise SystemExit(f"unknown backend(s) {unknown}; known: {', '.join(available)}")
    if use_golden is None:  # automatic: golden only where torch is missing
        use_golden = torch_available() is not None
    ran = []
    for name in backends:
        reason = available[name].load()
        if reason is None:
            ran.append(available[name])
        else:
            report.skipped_backends[name] = reason
    report.backends = [b.name for b in ran]
    report.losses = losses
    for loss in losses:
        t0 = time.perf_counter()
        cases = cases_for(loss)
        report.reference, refs = reference_results(loss, cases, use_golden)
        for backend in ran:
            cell = report.cells[(loss, backend.name)] = Cell(gradients=backend.gradients)
            for case, ref in zip(cases, refs):
                outcome = run_case(backend, case, ref)
                cell.add(outcome)
                if outcome.status == "fail":
                    report.failures.append(outcome)
                elif outcome.check is not None:
                    report.notes += [f"{loss}[{case.id}] on {backend.name}: {n}" for n in outcome.check.notes]
        if progress:
            counts = ", ".join(f"{b.name} {report.cells[(loss, b.name)].passed}/{report.cells[(loss, b.name)].total}"
                               f" ({report.cells[(loss, b.name)].skipped} skipped)" for b in ran)
            print(f"[conformance] {loss}: {len(cases)} cases: {counts}  [{time.perf_counter() - t0:.1f}s]",
                  file=progress, flush=True)
    report.seconds = time.perf_counter() - start
    return report


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# lossy conformance against {report.reference}", "",
          f"Backends run: {', '.join(report.backends) or 'none'}."]
    for name, reason in report.skipped_backends.items():
        md.append(f"Skipped backend `{name}`: {reason}.")
    md += ["", "Cell: passed/total (skipped cases), worst value error `v` and worst gradient error `g` "
           "(relative, with an absolute floor: see conformance/compare.py); `n/a`: the backend computes no "
           "gradients yet.", ""]
    for dtype in FLOAT_DTYPES:
        rtol, floor = TOLERANCES[dtype]
        md += [f"## {dtype} (tolerance rtol {rtol:g}, floor {floor:g} x scale)", "", matrix(report, dtype, True), ""]
    if report.failures:
        md += ["## Failures", ""] + [f"- `{o.case.name}` on {o.backend}: {o.detail}" for o in report.failures]
    if report.notes:
        md += ["", "## Known deviations (not compared)", ""] + [f"- {n}" for n in report.notes]
    md_path, json_path = out / "conformance.md", out / "conformance.json"
    md_path.write_text("\n".join(md) + "\n")
    json_path.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    return md_path, json_path


def write_golden(losses=None, progress=sys.stderr, directory=None) -> list[Path]:
    from .reference import run_reference, torch_version

    paths = []
    for loss in losses or all_losses():
        cases = cases_for(loss)
        results = [run_reference(case) for case in cases]  # a case torch rejects must not be written
        paths.append(golden.write(loss, cases, results, torch_version(), directory))
        if progress:
            print(f"[conformance] wrote {paths[-1]} ({len(cases)} cases)", file=progress, flush=True)
    return paths
