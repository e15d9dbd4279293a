"""The benchmark suite runs (tiny counts) and prints its line format: a benchmark that has
rotted is found here, not on the day its figures are needed.  Speed is not asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ami_benchmark_prints_results_and_ratios() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "ami", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=240, check=True).stdout
    for impl in ("cti", "cti_typed", "panoramisk", "bare"):
        assert re.search(rf"^ami_events_per_s {impl} \d+", out, re.M), out
    assert re.search(r"^ratio ami_events_per_s cti/panoramisk [\d.]+$", out, re.M), out
