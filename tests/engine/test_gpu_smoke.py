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
