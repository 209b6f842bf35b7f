"""benchmarks/attention_memory.py: the selected rows' extra memory grows with rows x T, the eager map's with T^2."""

from __future__ import annotations

import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "attention_memory.py"


def test_rows_memory_is_linear_and_eager_quadratic(capsys):
    main = runpy.run_path(str(BENCH), run_name="bench")["main"]
    out = main(["--quick"])
    assert [r["T"] for r in out] == [256, 512, 1024]
    heads = runpy.run_path(str(BENCH), run_name="bench")["HEADS"]
    for a, b in zip(out, out[1:]):  # T doubles
        assert 1.8 <= b["rows_peak"] / a["rows_peak"] <= 2.2
        assert b["eager_peak"] / a["eager_peak"] >= 3.0
    for r in out:
        assert r["eager_peak"] >= heads * r["T"] ** 2 * 4  # the eager path holds at least one full map
        assert 1.0 <= r["per_row_key"] <= 4.0  # a few rows x T x heads float32 buffers, nothing else
    assert out[-1]["ratio"] > 50
    assert "| 1024 | 8 |" in capsys.readouterr().out


def test_more_rows_cost_proportionally():
    main = runpy.run_path(str(BENCH), run_name="bench")["main"]
    four, sixteen = main(["--rows", "4", "--lengths", "512"])[0], main(["--rows", "16", "--lengths", "512"])[0]
    assert 3.0 <= sixteen["rows_peak"] / four["rows_peak"] <= 4.5
