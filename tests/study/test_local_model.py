"""A study on the user's own checkpoint folder: a real-format Monet replica (Qwen2.5-VL tokenizer and chat template,
random weights) and V* fixture folders beside the study file, named by relative and ``~`` paths.

The replica's random weights never choose the open marker: the study stops after the clean run with the
latent-mode diagnosis (exit 1, ``diagnosis.json``) and leaves ``--out`` reusable; with ``open = "force"`` the same
study runs to its report."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data import builders  # noqa: E402

pytestmark = pytest.mark.slow

STUDY = """[study]
name = "own-monet"
[model]
source = "{source}"
preset = "monet"
dtype = "float32"
num_latents = 2
[data]
benchmark = "vstar"
root = "../data/vstar"
n = 2
take = "first"
[prompt]
template = "{{question}}\\n{{options}}\\nAnswer with the option's letter."
[generation]
max_new_tokens = 5
scorer = "choice"
batch_size = 2
n_boot = 20
{open}
[analyses.x_to_z]
perturbations = ["blank_image"]
layers = [0]
baselines = false
[analyses.z_to_y]
interventions = ["zero", "no_latents"]
modes = ["redecode"]
[analyses.decompose]
treatment = "blank_image"
"""


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.main, ["run", *args, "--quiet"], standalone_mode=True, catch_exceptions=False)
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, replica_dir) -> Path:
    """``home/``: ``monet-replica/`` (a checkpoint folder), ``data/vstar/`` and ``studies/``."""
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(replica_dir("monet"), home / "monet-replica")
    builders.vstar(home / "data" / "vstar")
    (home / "studies").mkdir()
    return home


def _study(home: Path, source: str, force: bool) -> Path:
    path = home / "studies" / "own.toml"
    path.write_text(STUDY.format(source=source, open='open = "force"' if force else ""))
    return path


def test_relative_model_path_never_opens_then_force_runs_to_the_report(workspace):
    home = workspace
    out = home / "out"
    code, text = _cli(str(_study(home, "../monet-replica", force=False)), "--out", str(out))
    assert code == 1, text
    assert "LatentModeError" in text and "never entered latent mode on the clean run (0 of 2 examples)" in text
    assert 'open = "force"' in text and "diagnosis.json" in text
    diag = json.loads((out / "diagnosis.json").read_text())
    assert diag["n"] == 2 and diag["n_entered"] == 0 and diag["share"] == 0 and diag["open"] == "auto"
    assert diag["open_token"] == "<abs_vis_token>" and len(diag["top_tokens"]) == 5
    probs = [p for _, p in diag["top_tokens"]]
    assert probs == sorted(probs, reverse=True) and 0 < diag["p_open_mean"] < probs[-1]
    assert [e["entered"] for e in diag["examples"]] == [False, False]
    assert all(len(e["top"]) == 5 for e in diag["examples"])
    assert sorted(p.name for p in out.iterdir()) == ["diagnosis.json"]  # nothing that locks the folder

    # the fix the message gives: force the open; the same --out is reused without --overwrite
    code, text = _cli(str(_study(home, "../monet-replica", force=True)), "--out", str(out))
    assert code == 0, text
    assert "entered latent mode: 2 of 2 examples (100%)" in text
    assert (out / "report.html").is_file() and not (out / "diagnosis.json").exists()
    meta = json.loads((out / "study.json").read_text())
    assert meta["config"]["model"]["source"] == str((home / "monet-replica").resolve())
    assert meta["config"]["generation"]["open"] == "force"
    assert meta["latent_mode"] == {"n": 2, "n_entered": 2, "share": 1.0, "open": "force"}
    answers = pd.read_csv(out / "answers.csv")
    assert answers["entered"].tolist() == [True, True] and (answers["n_latents"] == 2).all()
    # every causal analysis ran with the forced open: its own runs entered latent mode, nothing was dropped
    for key in ("x_to_z", "z_to_y", "decompose"):
        assert (out / key / "done.json").is_file(), key
        dropped = pd.read_csv(out / key / "dropped.csv") if (out / key / "dropped.csv").stat().st_size > 1 else None
        assert dropped is None or dropped.empty, (key, dropped)
    assert len(pd.read_csv(out / "x_to_z" / "rows.csv")) > 0
    assert "entered latent mode" in (out / "report.html").read_text()


def test_home_relative_model_path_runs(workspace, monkeypatch):
    home = workspace
    monkeypatch.setenv("HOME", str(home))
    out = home / "out-home"
    code, text = _cli(str(_study(home, "~/monet-replica", force=True)), "--out", str(out))
    assert code == 0, text
    assert (out / "report.html").is_file()
    meta = json.loads((out / "study.json").read_text())
    assert meta["config"]["model"]["source"] == str((home / "monet-replica").resolve())
