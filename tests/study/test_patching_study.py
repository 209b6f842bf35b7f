"""``[analyses.patching]`` in a study file: run, tables on disk, report section, report rebuilt from the tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from click.testing import CliRunner

from latentprobe import cli
from latentprobe.analyses import get_analysis

pytestmark = pytest.mark.slow

STUDY = """
[study]
name = "toy-patching"
seed = 0

[model]
source = "toy:mediated"

[data]
benchmark = "toy"
split = "test"
n = 8

[generation]
max_new_tokens = 8
n_boot = 100

[analyses.patching]
perturbation = "counterfactual"
positions = ["image", "latents"]
layers = [0, 1]
modes = ["redecode"]
"""


def test_patching_study_runs_and_reports(tmp_path: Path):
    toml = tmp_path / "study.toml"
    toml.write_text(STUDY)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(toml), "--out", str(out), "--quiet"], standalone_mode=True,
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for t in get_analysis("patching").tables:
        assert (out / "patching" / f"{t}.csv").is_file(), t
    doc = (out / "report.html").read_text()
    assert "Activation patching" in doc and "image|latents_frozen" in doc
    (out / "report.html").unlink()
    res = CliRunner().invoke(cli.main, ["report", str(out)], standalone_mode=True, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Activation patching" in (out / "report.html").read_text()
