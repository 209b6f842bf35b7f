"""One prompt builder: ``to_input_set(..., runner=runner)`` from Python and ``latentprobe run`` from a study file give
the same tokens, for each family, on real-format checkpoints (Qwen2.5-VL replicas; Coconut and CODI in their
published layouts on a tiny GPT-2)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from latentprobe.data import load_benchmark, to_input_set
from latentprobe.engine.inputs import tokenize
from latentprobe.presets import get_preset
from latentprobe.study import load_study
from latentprobe.study.datasets import load_data

from . import builders as B

VISION = "<|vision_start|><|image_pad|><|vision_end|>"
# family -> (benchmark, fixture builder, template or None for the default)
CASES = {
    "monet": ("vstar", B.vstar, None),
    "lvr": ("vstar", B.vstar, "{question}\n{options}\nAnswer with the option's letter."),
    "mirage": ("vsp", B.vsp, "{question}"),
    "coconut": ("gsm8k-aug", B.gsm_coconut, None),
    "codi": ("gsm8k-aug", B.gsm_codi, "{question}"),
}


@pytest.fixture(scope="module")
def gpt2_base(tmp_path_factory):
    from engine.checkpoints import save_gpt2_base

    return save_gpt2_base(tmp_path_factory.mktemp("gpt2_prompts") / "base")


def _runner(family, replica_dir, gpt2_base, tmp_path):
    import latentprobe
    from engine.checkpoints import save_coconut_checkpoint, save_codi_checkpoint
    from latentprobe.engine import load_coconut, load_codi

    if family == "coconut":
        save_coconut_checkpoint(tmp_path / "checkpoint_15", gpt2_base)
        return load_coconut(tmp_path / "checkpoint_15", gpt2_base)
    if family == "codi":
        save_codi_checkpoint(tmp_path / "codi", gpt2_base, r=8)
        return load_codi(tmp_path / "codi", gpt2_base, lora_r=8)
    return latentprobe.load(replica_dir(family), family)


def _study(tmp_path: Path, family: str, benchmark: str, root: Path, template: str | None) -> Path:
    prompt = "" if template is None else "[prompt]\ntemplate = " + json.dumps(template) + "\n"
    base = 'base = "gpt2"' if family == "codi" else ""
    text = (f'[study]\nname = "prompts-{family}"\nseed = 0\n\n[model]\nsource = "unused"\npreset = "{family}"\n{base}\n'
            f'[data]\nbenchmark = "{benchmark}"\nroot = "{root}"\n\n{prompt}\n'
            '[generation]\nmax_new_tokens = 4\nscorer = "exact"\n\n[analyses.collapse]\n')
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("family", list(CASES))
def test_python_and_study_file_build_token_identical_prompts(family, replica_dir, gpt2_base, tmp_path):
    benchmark, build, template = CASES[family]
    root = tmp_path / "data"
    build(root)
    runner = _runner(family, replica_dir, gpt2_base, tmp_path)
    study = load_study(_study(tmp_path, family, benchmark, root, template))
    from_study = load_data(study, SimpleNamespace(runner=runner, toy=None)).inputs
    from_python = to_input_set(load_benchmark(benchmark, root), prompt=template, runner=runner)
    assert from_python.example_ids == from_study.example_ids and len(from_study) >= 2
    for a, b in zip(from_python.prompts, from_study.prompts):
        assert tokenize(runner.tokenizer, a) == tokenize(runner.tokenizer, b)
    # and they are the family's own prompts, not the bare question
    conv = get_preset(family).prompt
    for prompt, meta in zip(from_python.prompts, from_python.meta):
        question = meta["question"]
        if family in ("monet", "lvr", "mirage"):
            assert isinstance(prompt, str) and prompt.count(VISION) == 1 and "<|im_start|>user" in prompt
            assert prompt.startswith(conv.prefix) and (conv.system_prompt or "") in prompt
            assert "<image>" not in prompt.replace(conv.prefix, "", 1)
        elif family == "coconut":
            from latentprobe.engine.loading import coconut_prompt

            assert prompt == coconut_prompt(runner.tokenizer, question, runner.spec.num_latents)
        else:
            assert prompt == question.strip().replace("  ", " ")


def test_without_a_runner_the_prompt_is_the_rendered_text(tmp_path):
    exs = load_benchmark("gsm8k-aug", B.gsm_coconut(tmp_path))
    inputs = to_input_set(exs)
    assert inputs.prompts[0] == exs[0].question  # an open question: no trailing "\n" for empty options
