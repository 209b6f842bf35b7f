"""Coconut (published format, via ``load_coconut``) and CODI (official layout, via ``load_codi``) on tiny
GPT-2 checkpoints against hand-written Hugging Face reference loops, greedy and with seeded sampling."""

from __future__ import annotations

import pytest
import torch

from engine.checkpoints import save_coconut_checkpoint, save_codi_checkpoint, save_gpt2_base, save_llama_base
from latentprobe.engine import coconut_prompt, load_coconut, load_codi

from reference_loops import Decoding, run_text_reference

pytest.importorskip("peft")

QUESTIONS = ["what is the red circle ?", "one two three four", "what colour is the circle ?"]
SAMPLED = dict(do_sample=True, temperature=0.8, top_k=40, top_p=0.95, seed=3)
DECODINGS = {"greedy": ({}, Decoding()), "seeded": (SAMPLED, Decoding(True, 0.8, 40, 0.95, seed=3))}


@pytest.fixture(scope="module")
def gpt2_base(tmp_path_factory):
    return save_gpt2_base(tmp_path_factory.mktemp("gpt2_ref") / "base")


@pytest.mark.parametrize("decoding", list(DECODINGS))
def test_coconut_gpt2_matches_the_reference(gpt2_base, tmp_path, decoding):
    save_coconut_checkpoint(tmp_path / "checkpoint_15", gpt2_base)
    runner = load_coconut(tmp_path / "checkpoint_15", gpt2_base)
    tok = runner.tokenizer
    settings, dec = DECODINGS[decoding]
    prompts = [coconut_prompt(tok, q) for q in QUESTIONS]
    trace = runner.run(prompts, max_new_tokens=10, progress=False, **settings)
    start, lat = tok.convert_tokens_to_ids(["<|start-latent|>", "<|latent|>"])
    for ids, e in zip(prompts, trace):
        o = ids.index(start)
        ref = run_text_reference(runner.model, ids, o + 1, 6, ids[o + 7:], dec, e.example_id, 10, tok.eos_token_id,
                                 slot_id=lat, prompt_len=len(ids))
        assert e.input_ids.tolist() == ref.ids and e.latent_positions.tolist() == ref.latent_positions
        assert torch.allclose(e.z, torch.stack(ref.latents), atol=1e-5, rtol=0)
        assert e.answer_ids.tolist() == ref.answer


@pytest.mark.parametrize("decoding", list(DECODINGS))
def test_codi_official_layout_matches_the_reference(gpt2_base, tmp_path, decoding):
    official = save_codi_checkpoint(tmp_path / "codi", gpt2_base, r=8)
    runner = load_codi(tmp_path / "codi", gpt2_base, lora_r=8)
    settings, dec = DECODINGS[decoding]
    budget = 6 + 1 + 8
    trace = runner.run(QUESTIONS, max_new_tokens=budget, progress=False, **settings)
    lora_model = official.codi.get_base_model()  # the LoRA layers are active, not merged: CODI's own model
    for q, e in zip(QUESTIONS, trace):
        ids = runner.tokenizer(q, add_special_tokens=False)["input_ids"] + [official.bot_id]
        ref = run_text_reference(lora_model, ids, len(ids), 6, [official.eot_id], dec, e.example_id, budget,
                                 runner.tokenizer.eos_token_id, project=official.prj,
                                 slot_id=runner.resolved.pad_id, suppress=(official.eot_id,))
        assert e.input_ids.tolist() == ref.ids and e.latent_positions.tolist() == ref.latent_positions
        assert torch.allclose(e.z, torch.stack(ref.latents), atol=1e-5, rtol=0)
        assert e.answer_ids.tolist() == ref.answer


@pytest.fixture(scope="module")
def llama_codi(tmp_path_factory):
    """A tiny Llama base (its tokenizer adds <s>) and a CODI checkpoint on it in the official layout."""
    root = tmp_path_factory.mktemp("codi_llama")
    base = save_llama_base(root / "base")
    official = save_codi_checkpoint(root / "codi", base, r=8)
    return base, root / "codi", official


def codi_llama_reference(official, tokenizer, q, example_id, budget):
    """CODI's test.py on one question: ``tokenizer(question)`` (special tokens on: <s> first), <bot>, 6 latents
    through prj, <eot>, then greedy over ``logits[:, :vocab-1]``; the LoRA layers unmerged."""
    ids = tokenizer(q)["input_ids"] + [official.bot_id]
    return run_text_reference(official.codi.get_base_model(), ids, len(ids), 6, [official.eot_id], Decoding(),
                              example_id, budget, tokenizer.eos_token_id, project=official.prj,
                              slot_id=tokenizer.pad_token_id, suppress=(official.eot_id,))


def test_codi_on_llama_tokenises_with_bos_as_test_py_and_matches_the_reference(llama_codi):
    base, folder, official = llama_codi
    official.double()  # float64 on both sides: the merged LoRA differs from the unmerged one by float32 rounding only
    runner = load_codi(folder, base, lora_r=8, dtype=torch.float64)
    tok = runner.tokenizer
    budget = 6 + 1 + 8
    trace = runner.run(QUESTIONS, max_new_tokens=budget, progress=False)  # the preset's rule: special tokens on
    assert trace.config["add_special_tokens"] is True
    for q, e in zip(QUESTIONS, trace):
        ref = codi_llama_reference(official, tok, q, e.example_id, budget)
        assert int(e.input_ids[0]) == tok.bos_token_id
        assert e.input_ids.tolist() == ref.ids and e.latent_positions.tolist() == ref.latent_positions
        assert (e.z - torch.stack(ref.latents)).abs().max() <= 1e-6
        assert e.answer_ids.tolist() == ref.answer
    # without BOS the latents are those of another prompt
    bare = runner.run(QUESTIONS, max_new_tokens=budget, add_special_tokens=False, progress=False)
    moved = [(e.z - torch.stack(codi_llama_reference(official, tok, q, e.example_id, budget).latents)).abs().max()
             for q, e in zip(QUESTIONS, bare)]
    assert min(moved) > 1e-3


def test_the_codi_howtos_prompt_code_matches_the_reference_on_llama(llama_codi):
    """docs/howto/analyse-codi-gpt2.md's "Prompt" block, run as written (its budget cut to 8 answer tokens)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "howto" / "analyse-codi-gpt2.md").read_text()
    section = text.split("## Prompt", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1).replace("6 + 1 + 256", "6 + 1 + 8")
    base, folder, official = llama_codi
    official.double()
    runner = load_codi(folder, base, lora_r=8, dtype=torch.float64)
    ns = {"runner": runner, "questions": QUESTIONS}
    exec(code, ns)  # noqa: S102 - the how-to's own code
    for q, e in zip(QUESTIONS, ns["trace"]):
        ref = codi_llama_reference(official, runner.tokenizer, q, e.example_id, 6 + 1 + 8)
        assert e.input_ids.tolist() == ref.ids and int(e.input_ids[0]) == runner.tokenizer.bos_token_id
        assert (e.z - torch.stack(ref.latents)).abs().max() <= 1e-6
