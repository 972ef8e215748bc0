"""Peak extra memory of one forward+backward, each variant in a fresh process.

Linux only: the child resets its peak resident set size (``/proc/self/clear_refs``
with 5), runs one forward+backward (after a warm-up on two rows), and reports
``VmHWM`` minus its resident size just before the call. Large temporaries are mmap'ed by glibc and returned when
freed, so the peak is what the call itself touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .cases import headline_cases, registry_cases

TORCH_VARIANTS = ("torch native", "lossy_torch", "lossy_torch compiled")

_CHILD = r"""
import dataclasses, json, sys
from benchmarks.cases import headline_cases, registry_cases
from benchmarks.variants import build
case_id, variant = sys.argv[1], sys.argv[2]
case = next(c for c in headline_cases() + registry_cases() if c.id == case_id)
run = build(variant, case)["forward+backward"]
# Lazy imports and first-call caches are not the loss's memory: every variant first runs once on
# the case's first two rows (a warm-up at full size would leave its freed pages resident in
# malloc's arenas, hiding the next call's peak). A compiled variant compiles at full size first.
small = dataclasses.replace(case, arrays=tuple(a[:2] for a in case.arrays))
build(variant, small)["forward+backward"]()
if variant.endswith("compiled"):
    run()
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
run()
print(json.dumps(status("VmHWM") - before))
"""


def peak_extra_memory(case) -> dict:
    if not os.path.exists("/proc/self/clear_refs"):
        return {}
    out = {}
    environment = dict(os.environ)
    environment.pop("GLIBC_TUNABLES", None)  # default malloc: freed temporaries leave the RSS
    for variant in TORCH_VARIANTS:
        completed = subprocess.run(
            [sys.executable, "-c", _CHILD, case.id, variant], capture_output=True, text=True, env=environment,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        if completed.returncode == 0:
            out[variant] = json.loads(completed.stdout.strip().splitlines()[-1])
    return out


__all__ = ["peak_extra_memory", "headline_cases", "registry_cases"]
