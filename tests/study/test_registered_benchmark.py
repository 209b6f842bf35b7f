"""A benchmark loader registered from outside the package reaches study files: ``load_study`` accepts
its name (the check reads the live registry) and the data step loads, samples and renders its examples."""

from __future__ import annotations

import pytest

import latentprobe
import latentprobe.data.registry as registry
from latentprobe.data import Example
from latentprobe.errors import StudyError
from latentprobe.study import load_data, load_study


def load_riddles(root, *, n=6):
    """Text questions with a gold answer and a category, as a third-party loader writes them."""
    return [Example(example_id=f"riddles/{i}", question=f"  what  is {i} plus {i}?  ", gold=str(2 * i),
                    category=("small", "large")[i >= n // 2], source="riddles") for i in range(n)]


@pytest.fixture
def riddles(monkeypatch):
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    registry._LOADERS.pop("riddles", None)  # registered here, whatever ran before in this process
    latentprobe.register_benchmark("riddles", load_riddles)
    return "riddles"


def _study(tmp_path, benchmark, extra=""):
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "s.toml"
    path.write_text(f'[study]\nname = "r"\n[model]\nsource = "some/checkpoint"\npreset = "coconut"\n'
                    f'[data]\nbenchmark = "{benchmark}"\nroot = "data"\n{extra}'
                    '[prompt]\ntemplate = "Q: {question}"\n[analyses.collapse]\n')
    return path


def test_a_study_file_names_a_registered_loader_and_loads_its_examples(riddles, tmp_path):
    study = load_study(_study(tmp_path, "riddles", 'n = 4\nby = "category"\noptions = {n = 8}\n'))
    assert study.data[0].benchmark == "riddles" and dict(study.data[0].options) == {"n": 8}
    d = load_data(study, None)
    assert len(d.inputs) == 4 and set(d.sample.benchmark) == {"riddles"}
    assert sorted(d.sample.category) == ["large", "large", "small", "small"]  # 4 of 8, stratified 2 + 2
    ex = {f"riddles/{i}": i for i in range(8)}
    for eid, prompt, gold in zip(d.inputs.example_ids, d.inputs.prompts, d.inputs.gold):
        i = ex[eid]
        assert prompt == f"Q:   what  is {i} plus {i}?  " and gold == str(2 * i)


def test_an_unknown_benchmark_lists_the_registered_ones(riddles, tmp_path):
    with pytest.raises(StudyError, match=r"\[data\] key 'benchmark': unknown name 'ridles'; choose one of toy, "
                                         r"vstar, .*, hf-disk, (.*, )?riddles"):
        load_study(_study(tmp_path, "ridles"))


def test_without_registration_the_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    registry._LOADERS.pop("riddles", None)
    with pytest.raises(StudyError, match="unknown name 'riddles'"):
        load_study(_study(tmp_path, "riddles"))


@pytest.mark.slow
def test_a_study_on_a_checkpoint_runs_on_a_registered_loader(riddles, tmp_path):
    """The whole study (CLI, model, data, analyses, report) on a tiny CODI checkpoint, whose questions come
    from the loader registered above and are normalised by the preset's conventions."""
    import sys
    from pathlib import Path

    import pandas as pd
    from click.testing import CliRunner

    from latentprobe import cli

    pytest.importorskip("peft")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from checkpoints import save_codi_checkpoint, save_gpt2_base

    base = save_gpt2_base(tmp_path / "gpt2")
    save_codi_checkpoint(tmp_path / "codi", base, r=128)
    (tmp_path / "data").mkdir()
    study = tmp_path / "s.toml"
    study.write_text(f'[study]\nname = "r"\n[model]\nsource = "{tmp_path / "codi"}"\npreset = "codi"\n'
                     f'base = "{base}"\n[data]\nbenchmark = "riddles"\nroot = "data"\noptions = {{n = 4}}\n'
                     '[prompt]\ntemplate = "{question}"\n[generation]\nmax_new_tokens = 10\nn_boot = 20\n'
                     '[analyses.collapse]\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    sample = pd.read_csv(out / "sample.csv")
    assert list(sample.example_id) == [f"riddles/{i}" for i in range(4)] and set(sample.benchmark) == {"riddles"}
    assert (out / "collapse" / "collapse.csv").stat().st_size and (out / "report.html").is_file()
