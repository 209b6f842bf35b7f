"""benchmarks/geometry_speed.py runs at its --quick sizes and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "geometry_speed.py"


@pytest.mark.slow
def test_geometry_speed_quick_prints_its_table():
    out = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=600, check=True).stdout
    assert "| analysis | latentprobe (s) | numpy one-shot (s) | time ratio |" in out
    for row in ("across_instances raw", "across_instances centred", "within_instance", "linear_cka", "effective_rank"):
        assert f"| {row}" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| analysis")]
    diffs = [float(line.rsplit("|", 2)[-2]) for line in rows]
    assert diffs and max(diffs) < 1e-4  # the chunked float32 results agree with numpy's
