"""benchmarks/sweep_speed.py runs end to end with --quick (small sizes) and prints every ratio."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sweep_speed.py"


@pytest.mark.slow
def test_sweep_speed_quick(capsys):
    spec = importlib.util.spec_from_file_location("sweep_speed", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--quick"])
    out = capsys.readouterr().out
    for line in ("capture, 1 example: run / plain loop", "sweep propagate", "sweep redecode", "lower bound", "peak:"):
        assert line in out
    assert set(res) == {"capture_16", "propagate_16_vs_naive", "propagate_16_vs_bound", "redecode_16_vs_naive",
                        "redecode_16_vs_bound"}
    assert all(v > 0 for v in res.values())
