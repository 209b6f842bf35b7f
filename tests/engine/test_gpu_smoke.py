"""benchmarks/gpu_smoke.py runs end to end on the CPU with --tiny (the CI smoke test of the GPU script)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_smoke.py"


def test_gpu_smoke_tiny(capsys):
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tiny", "-n", "3", "-k", "3", "--answer-tokens", "2", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    for line in ("load", "run (3 examples, K=3)", "intervene replay", "intervene propagate", "intervene redecode"):
        assert line in out
    assert "trace dtype torch.bfloat16" in out


def test_gpu_smoke_tiny_sweep(capsys):
    """The sweep section: shared and copied caches at each M, the shared one within its memory limit."""
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tiny", "-n", "1", "-k", "3", "--answer-tokens", "2", "--sweep", "--sweep-tokens", "16",
                     "--sweep-m", "2", "6", "--sweep-examples", "2"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["16"]]
    assert [(r[1], r[2]) for r in rows] == [("2", "copied"), ("2", "shared"), ("6", "copied"), ("6", "shared")]
    kv = {(r[1], r[2]): float(r[6]) for r in rows}
    assert kv[("6", "shared")] < kv[("6", "copied")]
    assert all(float(r[3]) >= float(r[4]) > 0 for r in rows)  # wall time covers the forwards


def test_gpu_smoke_tiny_attribution(capsys):
    """The attribution section: one forward, the map and its ratio, with and without the shared-column split."""
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tiny", "-n", "2", "-k", "3", "--answer-tokens", "2", "--batch-size", "2", "--attribution"]) == 0
    out = capsys.readouterr().out
    head = [line for line in out.splitlines() if line.startswith("attribution map (")]
    assert head and "2 pairs" in head[0]
    ratios = [float(line.split("=")[1].split()[0]) for line in out.splitlines()
              if "forward equivalents" in line or "run apart" in line]
    assert len(ratios) == 3 and all(r > 1.0 for r in ratios)  # a map costs more than one forward
