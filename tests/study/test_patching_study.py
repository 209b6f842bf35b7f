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


def test_patching_units_are_stored_as_they_finish_and_resume(tmp_path: Path, monkeypatch):
    """A study's patching runs unit by unit (batch_size examples each): a run stopped after its first unit resumes
    with the others only, and its tables equal an uninterrupted run's."""
    import latentprobe.causal.patching as P

    toml = tmp_path / "study.toml"
    toml.write_text(STUDY.replace("modes = [\"redecode\"]", "modes = [\"redecode\"]\nbatch_size = 3"))
    whole = tmp_path / "whole"
    res = CliRunner().invoke(cli.main, ["run", str(toml), "--out", str(whole), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output

    real, calls = P.patch_rows, []

    def stop_after_one(*a, **kw):
        calls.append(list(kw["indices"]))
        if len(calls) > 1:
            raise RuntimeError("stopped in the second unit")  # a run killed mid-way
        return real(*a, **kw)

    monkeypatch.setattr(P, "patch_rows", stop_after_one)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(toml), "--out", str(out), "--quiet"])
    assert res.exit_code == 1 and "stopped in the second unit" in res.output
    assert calls == [[0, 1, 2], [3, 4, 5]]
    calls.clear()
    monkeypatch.setattr(P, "patch_rows", lambda *a, **kw: calls.append(list(kw["indices"])) or real(*a, **kw))
    res = CliRunner().invoke(cli.main, ["run", str(toml), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert calls == [[3, 4, 5], [6, 7]]  # the first unit was stored; 8 examples in units of 3
    import pandas as pd

    for t in ("table", "summary"):
        a, b = pd.read_csv(whole / "patching" / f"{t}.csv"), pd.read_csv(out / "patching" / f"{t}.csv")
        pd.testing.assert_frame_equal(a, b)


def test_patch_on_some_indices_equals_those_rows_of_the_whole():
    from latentprobe import toy
    from latentprobe.causal import patch
    from latentprobe.errors import InputError

    tm = toy.load("mediated")
    inputs = toy.toy_inputs(tm.examples("test", 5))
    kw = dict(positions=["image", "latents"], layers=[1], modes=["redecode", "replay"], n_boot=50)
    whole = patch(tm.runner(), inputs, toy.Counterfactual(), **kw).table
    part = patch(tm.runner(), inputs, toy.Counterfactual(), indices=[1, 3], **kw).table
    ids = [inputs.example_ids[1], inputs.example_ids[3]]
    ref = whole[whole.example_id.isin(ids)].reset_index(drop=True)
    assert len(part) == len(ref) > 0
    import numpy as np

    for c in ("example_id", "source_id", "mode", "position_group", "layer", "answer", "ref_answer", "source_answer"):
        assert (part[c].to_numpy() == ref[c].to_numpy()).all(), c
    np.testing.assert_allclose(part["clean_logprob"], ref["clean_logprob"], atol=1e-4)
    with pytest.raises(InputError, match="indices"):
        patch(tm.runner(), inputs, toy.Counterfactual(), indices=[7], **kw)
