"""Custom perturbations, interventions and scorers named in a study file by import string: they run, a typo
fails before any work, and their source code is part of the study's fingerprint."""

from __future__ import annotations

import importlib
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.errors import StudyError
from latentprobe.study import config_fingerprint, load_study

PLUGIN = '''
from dataclasses import dataclass

from latentprobe.interventions import Zero
from latentprobe.perturbations import ImageSwap


@dataclass(frozen=True)
class MySwap(ImageSwap):
    name: str = "my_swap"


class MyZero(Zero):
    """The zero intervention under another name."""


def loose(answer, gold, example=None):
    """Correct when the first letters agree (a deliberately loose scorer)."""
    return bool(answer) and str(answer)[:1] == str(gold)[:1]
'''

STUDY = """
[study]
name = "custom"
[model]
source = "toy:mediated"
[data]
benchmark = "toy"
n = 12
[generation]
max_new_tokens = 8
n_boot = 20
scorer = "{mod}:loose"
[analyses.x_to_z]
perturbations = ["{mod}:MySwap"]
layers = [0]
baselines = false
[analyses.z_to_y]
interventions = ["zero", "{mod}:MyZero"]
modes = ["redecode"]
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    name = f"custom_names_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_typo_in_an_import_string_fails_before_any_work(tmp_path, plugin):
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(mod=plugin).replace(f"{plugin}:MyZero", f"{plugin}:MyZro"))
    with pytest.raises(StudyError, match=r"\[analyses.z_to_y\]: .*'MyZro'"):
        study = load_study(path)
        from latentprobe.study.analyses import make_context, preflight
        from latentprobe.study.datasets import load_data
        from latentprobe.study.models import build_model

        model = build_model(study.model)
        preflight(study, make_context(study, model, load_data(study, model), progress=False))
    path.write_text(STUDY.format(mod=plugin).replace(f"{plugin}:loose", f"{plugin}:lose"))
    with pytest.raises(StudyError, match=r"\[generation\] key 'scorer': .* has no 'lose'"):
        load_study(path)


@pytest.mark.slow
def test_custom_names_run_and_their_source_is_fingerprinted(tmp_path, plugin):
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(mod=plugin))
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    zy = pd.read_csv(out / "z_to_y" / "rows.csv", dtype={"answer": str}, keep_default_na=False)
    mine = zy[zy.intervention == f"{plugin}:MyZero"].set_index("example_id")
    zero = zy[zy.intervention == "zero"].set_index("example_id")
    assert len(mine) == len(zero) > 0 and (mine.answer == zero.answer).all()  # the same intervention, renamed
    xz = pd.read_csv(out / "x_to_z" / "summary.csv")
    assert set(xz.perturbation) == {"my_swap"}
    answers = pd.read_csv(out / "answers.csv", keep_default_na=False)
    loose = [bool(a) and a[:1] == g[:1] for a, g in zip(answers.answer, answers.gold)]
    assert list(answers.correct.astype(bool)) == loose  # the study's scorer is the plugin's function
    before = config_fingerprint(load_study(path))
    (tmp_path / f"{plugin}.py").write_text(PLUGIN.replace("deliberately loose", "loose, on purpose"))
    sys.modules.pop(plugin, None)
    importlib.invalidate_caches()
    assert config_fingerprint(load_study(path)) != before
    res = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 2 and "another study configuration" in res.output, res.output
