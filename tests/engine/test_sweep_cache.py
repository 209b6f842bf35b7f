"""benchmarks/sweep_cache.py runs end to end with --quick and measures the shared cache below the copied one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sweep_cache.py"


@pytest.mark.slow
def test_sweep_cache_quick(capsys):
    spec = importlib.util.spec_from_file_location("sweep_cache", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--quick"])
    out = capsys.readouterr().out
    assert "shared/copied" in out and "time per condition, M=4 over M=2" in out
    assert set(res) == {"16_2", "16_4"}
    for r in res.values():
        assert all(r[k] > 0 for k in ("t_shared", "t_copied", "t_bound"))
        assert r["x_copied"] == r["x_bound"] > r["x_shared"] > 1  # the copied cache is the plain loop's
        assert r["z_rel"] <= 1e-5
    # one prefix per example plus suffix blocks: 2 more conditions add far less than 2 more prefixes
    assert res["16_4"]["x_shared"] - res["16_2"]["x_shared"] < res["16_4"]["x_copied"] - res["16_2"]["x_copied"]
