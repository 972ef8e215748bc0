"""``python -m conformance``: the parity matrix of every loss on every installed backend.

Options: ``--losses a,b``  ``--backends numpy,torch``  ``--golden`` (compare with the
golden files instead of live torch; automatic when torch is missing)
``--write-golden`` (regenerate conformance/golden/*.npz from torch)  ``--out DIR``.
Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import runner
from .cases import FLOAT_DTYPES


def _split(text):
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--losses", help="comma-separated losses (default: every registered loss)")
    parser.add_argument("--backends", help="comma-separated backends (default: numpy,array_api_strict,torch,jax,cupy)")
    parser.add_argument("--golden", action="store_true", help="compare with the golden files, not live torch")
    parser.add_argument("--write-golden", action="store_true", help="regenerate the golden files from live torch")
    parser.add_argument("--out", default="conformance-report", help="report directory (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.write_golden:
        reason = runner.torch_available()
        if reason:
            print(f"--write-golden needs torch: {reason}", file=sys.stderr)
            return 2
        runner.write_golden(_split(args.losses))
        return 0

    use_golden = True if args.golden else None
    if use_golden is None and runner.torch_available():
        print(f"torch is not available ({runner.torch_available()}): comparing with the golden files",
              file=sys.stderr)
    report = runner.run(_split(args.losses), _split(args.backends), use_golden=use_golden)
    print(f"reference: {report.reference}")
    print(f"backends run: {', '.join(report.backends) or 'none'}")
    for name, reason in report.skipped_backends.items():
        print(f"backend skipped: {name}: {reason}")
    print("\ncell: passed/total (skipped) v <worst value error> g <worst gradient error>, float64 cases")
    print(runner.matrix(report, "float64"))
    for dtype in FLOAT_DTYPES[1:]:
        print(f"\nworst errors in {dtype} cases")
        print(runner.matrix(report, dtype))
    md, js = runner.write_report(report, Path(args.out))
    print(f"\nwrote {md} and {js}  ({report.seconds:.1f}s)")
    if report.notes:
        print(f"{len(report.notes)} known deviation(s), listed in {md}")
    if report.failures:
        print(f"\n{len(report.failures)} MISMATCH(ES):")
        for o in report.failures:
            print(f"  {o.case.name} on {o.backend}: {o.detail}")
        return 1
    print("all cases match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
