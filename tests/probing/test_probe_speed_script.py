"""benchmarks/probe_speed.py runs at its --quick sizes and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "probe_speed.py"


@pytest.mark.slow
def test_probe_speed_quick_prints_its_table():
    out = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=600, check=True).stdout
    assert "| run | fits | time (s) | x sklearn CV | per fit x sklearn |" in out
    for row in ("sklearn CV (reference)", "probe CV, one C", "probe CV, nested", "GridSearchCV nested", "sweep cell, with controls"):
        assert f"| {row}" in out
