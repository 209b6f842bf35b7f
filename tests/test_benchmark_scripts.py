"""The analysis benchmarks (benchmarks/probe_speed.py, benchmarks/geometry_speed.py) run at their --quick
sizes and print their tables (tests/engine/test_sweep_speed.py runs the sweep benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _quick(script: str) -> str:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True,
                          timeout=600, check=True).stdout


@pytest.mark.slow
def test_probe_speed_quick_prints_its_table():
    out = _quick("probe_speed.py")
    assert "| run | fits | time (s) | x sklearn CV | per fit x sklearn |" in out
    for row in ("sklearn CV (reference)", "probe CV, one C", "probe CV, nested", "GridSearchCV nested",
                "sweep cell, with controls"):
        assert f"| {row}" in out


@pytest.mark.slow
def test_geometry_speed_quick_prints_its_table():
    out = _quick("geometry_speed.py")
    assert "| analysis | latentprobe (s) | numpy one-shot (s) | time ratio |" in out
    for row in ("across_instances raw", "across_instances centred", "within_instance", "linear_cka", "effective_rank"):
        assert f"| {row}" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| analysis")]
    diffs = [float(line.rsplit("|", 2)[-2]) for line in rows]
    assert diffs and max(diffs) < 1e-4  # the chunked float32 results agree with numpy's


@pytest.mark.slow
def test_similarity_coverage_quick_prints_its_table():
    out = _quick("similarity_coverage.py")
    assert "| model | n | interval | coverage | se | mean width | miss low | miss high | truth | time (s) |" in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| shift")]
    assert len(rows) == 12  # 2 models x 2 sizes x 3 intervals
    coverage = {(r[0].strip(), int(r[1]), r[2].strip()): float(r[3]) for r in rows}
    for (model, n, interval), cov in coverage.items():
        if interval == "per_instance":  # half as wide as it should be: far below the nominal 0.95
            assert cov < coverage[(model, n, "jackknife")] - 0.15
