"""Family behaviour reaches the study as preset data, not as comparisons of preset names: whether a
checkpoint is an adapter loaded onto ``[model] base`` (``LatentSpec.checkpoint``) and how a question is
normalised (``PromptConventions.strip_question`` / ``question_replacements``). A preset registered here,
under a new name, gets CODI's treatment by carrying CODI's data."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import latentprobe
import latentprobe.data.registry as data_registry
import latentprobe.presets as presets
from latentprobe.data import Example
from latentprobe.errors import SpecError, StudyError
from latentprobe.spec import PromptConventions
from latentprobe.study import load_data, load_study
from latentprobe.study.models import build_model

PACKAGE = Path(latentprobe.__file__).resolve().parent


@pytest.fixture
def adapter_family(monkeypatch):
    """A new family with CODI's data under another name, and a loader of untidy questions."""
    monkeypatch.setattr(presets, "_PRESETS", dict(presets._PRESETS))
    monkeypatch.setattr(data_registry, "_LOADERS", dict(data_registry._LOADERS))
    latentprobe.register_preset(presets.get_preset("codi").replace(name="codi-like"))
    latentprobe.register_benchmark("untidy", lambda root: [
        Example(example_id=f"untidy/{i}", question=q, gold="1")
        for i, q in enumerate(["  How  many?  ", "Two  spaces  here", "fine"])])
    return "codi-like"


def _study(tmp_path, model: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "s.toml"
    path.write_text(f'[study]\nname = "p"\n[model]\nsource = "ckpt"\n{model}\n[data]\nbenchmark = "untidy"\n'
                    'root = "data"\n[prompt]\ntemplate = "{question}"\n[analyses.collapse]\n')
    return path


def test_an_adapter_preset_needs_base_and_others_refuse_it(adapter_family, tmp_path):
    with pytest.raises(StudyError, match=r"\[model\] key 'base': is missing \(a codi-like checkpoint holds only "
                                         r"adapter"):
        load_study(_study(tmp_path, 'preset = "codi-like"'))
    assert load_study(_study(tmp_path, 'preset = "codi-like"\nbase = "gpt2"')).model.base == "gpt2"
    with pytest.raises(StudyError, match=r"key 'base': applies to presets whose checkpoints are adapters "
                                         r"\(checkpoint = \"adapter\": codi, codi-like\)"):
        load_study(_study(tmp_path, 'preset = "monet"\nbase = "gpt2"'))


def test_num_latents_sets_any_presets_k(adapter_family, tmp_path, monkeypatch):
    seen = {}

    def fake_load(source, spec, **kw):
        seen.update(source=source, spec=spec)
        return SimpleNamespace(model=None)

    monkeypatch.setattr(latentprobe, "load", fake_load)
    monkeypatch.setattr("latentprobe.study.models.runner_fingerprint", lambda runner: {})
    study = load_study(_study(tmp_path, 'preset = "lvr"\nnum_latents = 16'))
    build_model(study.model)
    assert seen["source"] == "ckpt" and seen["spec"].name == "lvr" and seen["spec"].num_latents == 16
    assert seen["spec"].replace(num_latents=8) == presets.get_preset("lvr")


def test_questions_are_normalised_by_the_presets_conventions(adapter_family, tmp_path):
    study = load_study(_study(tmp_path, 'preset = "codi-like"\nbase = "gpt2"'))
    runner = SimpleNamespace(spec=presets.get_preset("codi-like"), is_vlm=False, tokenizer=None)
    got = load_data(study, SimpleNamespace(runner=runner, toy=None)).inputs.prompts
    assert got == ("How many?", "Two spaces here", "fine")
    mirage = SimpleNamespace(spec=presets.get_preset("mirage"), is_vlm=False, tokenizer=None)  # no conventions
    assert load_data(study, SimpleNamespace(runner=mirage, toy=None)).inputs.prompts == (
        "  How  many?  ", "Two  spaces  here", "fine")


def test_the_conventions_are_data_that_round_trips_and_is_checked():
    codi = presets.get_preset("codi")
    assert codi.checkpoint == "adapter" and codi.prompt.strip_question
    assert codi.prompt.question_replacements == (("  ", " "),)
    assert all(presets.get_preset(p).checkpoint == "model" for p in presets.list_presets() if p != "codi")
    back = latentprobe.LatentSpec.from_dict(__import__("json").loads(__import__("json").dumps(codi.to_dict())))
    assert back == codi
    with pytest.raises(SpecError, match="question_replacements"):
        PromptConventions(question_replacements=(("", "x"),))
    with pytest.raises(SpecError, match="checkpoint='lora'"):
        codi.replace(checkpoint="lora")


def test_no_study_module_compares_a_preset_name():
    pattern = re.compile(r"""(preset|\.name)\s*[!=]=\s*["'](codi|coconut|monet|lvr|mirage)["']""")
    hits = [f"{p.name}:{i}" for p in sorted((PACKAGE / "study").glob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
