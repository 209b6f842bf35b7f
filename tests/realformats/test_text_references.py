"""Coconut (published format, via ``load_coconut``) and CODI (official layout, via ``load_codi``) on tiny
GPT-2 checkpoints against hand-written Hugging Face reference loops, greedy and with seeded sampling."""

from __future__ import annotations

import pytest
import torch

from engine.checkpoints import save_coconut_checkpoint, save_codi_checkpoint, save_gpt2_base
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
