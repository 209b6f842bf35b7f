"""A study on a checkpoint folder (not a toy): a tiny CODI checkpoint in the official layout on text
questions served through the documented ``latentprobe.data`` interface (stand-ins until the loaders land)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import latentprobe.data as data_pkg
from latentprobe import cli
from latentprobe.perturbations import InputSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
pytest.importorskip("peft")
from checkpoints import save_codi_checkpoint, save_gpt2_base  # noqa: E402

pytestmark = pytest.mark.slow
QUESTIONS = ["what is the red circle ?", "what colour is the square ?", "what is a blue circle ?",
             "what is the green square ?", "one two three ?", "four five six ?"]


@dataclass(frozen=True)
class _Ex:
    example_id: str
    question: str
    gold: str | None
    category: str | None = None
    source: str = "gsm8k-aug"
    options: tuple[str, ...] | None = None
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Sample:
    examples: list


def _data(monkeypatch):
    def load_benchmark(name, root, **options):
        return [_Ex(f"q{i}", q, "two", category="ab"[i % 2]) for i, q in enumerate(QUESTIONS)]

    def to_input_set(examples, *, prompt=None, messages=None, max_pixels=None):
        return InputSet(example_ids=tuple(e.example_id for e in examples),
                        prompts=tuple(prompt.format(question=e.question) for e in examples),
                        gold=tuple(e.gold for e in examples),
                        meta=tuple({"category": e.category, "source": e.source} for e in examples))

    monkeypatch.setattr(data_pkg, "load_benchmark", load_benchmark, raising=False)
    monkeypatch.setattr(data_pkg, "sample", lambda ex, n, by="category", seed=0: _Sample(list(ex)[:n]), raising=False)
    monkeypatch.setattr(data_pkg, "to_input_set", to_input_set, raising=False)


def test_codi_checkpoint_study_runs_and_refuses_another_model(tmp_path, monkeypatch):
    _data(monkeypatch)
    base = save_gpt2_base(tmp_path / "gpt2")
    save_codi_checkpoint(tmp_path / "codi", base, r=128)
    (tmp_path / "gsm").mkdir()
    study = tmp_path / "codi.toml"
    text = (f'[study]\nname = "codi"\n[model]\nsource = "{tmp_path / "codi"}"\npreset = "codi"\nbase = "{base}"\n'
            '[data]\nbenchmark = "gsm8k-aug"\nroot = "gsm"\n[prompt]\ntemplate = "{question}"\n'
            '[generation]\nmax_new_tokens = 10\nn_boot = 50\nchunk_size = 3\n'
            '[analyses.z_to_y]\ninterventions = ["zero", "swap", "no_latents"]\n'
            '[analyses.probes]\ntargets = ["category"]\nlayers = [2]\nn_splits = 2\ncontrols = false\n'
            '[analyses.collapse]\n')
    study.write_text(text)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    sample = pd.read_csv(out / "sample.csv")
    assert list(sample.example_id) == [f"q{i}" for i in range(6)] and set(sample.benchmark) == {"gsm8k-aug"}
    zy = pd.read_csv(out / "z_to_y" / "summary.csv")
    assert {"zero", "swap", "no_latents", "none"} <= set(zy.intervention)
    assert (out / "collapse" / "collapse.csv").stat().st_size and (out / "report.html").is_file()
    # the same study file against another checkpoint in the same place: refused, it is another model
    save_codi_checkpoint(tmp_path / "codi", base, r=128)  # new random LoRA and projection weights
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 2 and "another model" in res.output and "weights" in res.output, res.output
