"""The example scripts run end to end on the shipped toy models."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script", ["xz_similarity.py", "zy_interventions.py", "mediation_decomposition.py"])
def test_example_runs(script, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [script, "--n", "12", "--n-boot", "200", "--out", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    out = capsys.readouterr().out
    assert "dropped" in out
    assert any(tmp_path.iterdir()), "results were written to --out"
