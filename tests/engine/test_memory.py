"""Devices and memory: traces in the model's dtype, selectable captured layers, logits only where
read, inputs placed on the embedding's device (not the first parameter's)."""

from __future__ import annotations

import copy

import pytest
import torch

from latentprobe import toy
from latentprobe.engine import LatentRunner
from latentprobe.errors import InputError
from latentprobe.presets import get_preset
from tiny import make_tokenizer, tiny_gpt2, tiny_qwen_vl

LAT6 = " ".join(["<|latent|>"] * 6)
COCONUT = [f"a b <|start-latent|> {LAT6} <|end-latent|> answer :", f"c <|start-latent|> {LAT6} <|end-latent|>"]


@pytest.fixture(scope="module")
def toy_pair():
    m = toy.load("mediated")
    ex = m.examples("test", n=24)
    bf = copy.deepcopy(m.model).to(torch.bfloat16)
    return m, ex, bf


def test_bf16_answers_equal_fp32_on_the_toy(toy_pair):
    m, ex, bf = toy_pair
    fp = m.run(ex)
    r16 = LatentRunner(bf, m.tokenizer, m.spec, mask_rule=m.mask_rule)
    b16 = r16.run(m.prompts(ex), m.images(ex), example_ids=[e.example_id for e in ex], max_new_tokens=16,
                  progress=False)
    assert [e.answer_text for e in b16] == [e.answer_text for e in fp]
    # a bf16 run stores bf16 tensors; float32 on request
    e = b16[0]
    assert e.z.dtype == e.h_src.dtype == e.hidden.dtype == e.image_embeds.dtype == torch.bfloat16
    assert fp[0].z.dtype == torch.float32
    f32 = r16.run(m.prompts(ex[:2]), m.images(ex[:2]), max_new_tokens=16, progress=False,
                  trace_dtype=torch.float32)
    assert f32[0].z.dtype == f32[0].hidden.dtype == f32[0].image_embeds.dtype == torch.float32
    assert torch.equal(f32[0].z.to(torch.bfloat16), b16[0].z)
    assert f32.config["trace_dtype"] == "float32" and b16.config["trace_dtype"] is None


def test_capture_layers_store_only_those_and_replay(toy_pair):
    m, ex, _ = toy_pair
    r = m.runner()
    full = r.run(m.prompts(ex[:4]), m.images(ex[:4]), max_new_tokens=16, progress=False, capture_positions="image")
    some = r.run(m.prompts(ex[:4]), m.images(ex[:4]), max_new_tokens=16, progress=False, capture_positions="image",
                 capture_layers=[r.n_layers, 0])
    assert some.config["capture_layers"] == [0, r.n_layers]
    for a, b in zip(full, some):
        assert b.hidden.shape == (a.num_latents, 2, r.hidden_size)
        assert torch.equal(b.hidden, a.hidden[:, [0, r.n_layers]])
        assert torch.equal(b.captured_hidden, a.captured_hidden[:, [0, r.n_layers]])
        assert torch.equal(a.z, b.z) and a.answer_text == b.answer_text
    rep = r.intervene(some, None, mode="replay", progress=False)
    for a, b in zip(some, rep):
        assert b.hidden.shape == a.hidden.shape
        torch.testing.assert_close(b.hidden, a.hidden, atol=1e-5, rtol=1e-5)
        assert torch.equal(b.answer_ids, a.answer_ids)
    for mode in ("propagate", "redecode"):
        out = r.intervene(some, None, mode=mode, progress=False)
        assert out.answers == some.answers
        assert all(o.hidden.shape[1] == 2 for o in out if o.num_latents)
    with pytest.raises(InputError, match="capture_layers"):
        r.run(m.prompts(ex[:1]), m.images(ex[:1]), capture_layers=[r.n_layers + 1], progress=False)


def test_prefill_logits_only_where_read(toy_pair):
    m, ex, _ = toy_pair
    r = m.runner()
    seen: list[int] = []
    h = r.parts.lm_head.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[1]))
    try:
        tr = r.run(m.prompts(ex[:2]), m.images(ex[:2]), max_new_tokens=16, progress=False)
        prompt_len = tr[0].prompt_len
        assert seen[0] == 1 < prompt_len  # the prefill: the last position only
        seen.clear()
        r.intervene(tr, None, mode="replay", progress=False)
        # replay computes logits at the positions it gathers (latent sources, answer scoring), not the prompt
        read = sum(e.num_latents + e.seq_len - e.answer_start + 1 for e in tr)
        assert seen[0] <= read < max(e.seq_len for e in tr)
    finally:
        h.remove()


def test_inputs_follow_the_embedding_not_the_first_parameter():
    """Under a device_map the first parameter may sit on another device than the token embedding;
    the runner places inputs on the embedding's device. (A forward with a meta parameter first fails
    inside transformers itself, which reads ``model.device``; accelerate's hooks handle that on a real
    device_map. Placement inside the forward is checked by the next test.)"""
    tok = make_tokenizer()
    model = tiny_qwen_vl(tok)
    model._parameters = {"_elsewhere": torch.nn.Parameter(torch.empty(1, device="meta")), **model._parameters}
    assert next(model.parameters()).device.type == "meta"
    r = LatentRunner(model, tok, get_preset("mirage"))
    assert r.device == model.get_input_embeddings().weight.device and r.dtype == torch.float32


def test_index_tensors_are_moved_to_their_target(monkeypatch):
    """Every index the traced forward uses goes through ``at`` and ends on the indexed tensor's device."""
    import latentprobe.engine.forward as fw

    calls: list[tuple[torch.device, torch.device]] = []
    orig = fw.at

    def spy(index, target):
        out = orig(index, target)
        calls.append((out.device, target.device))
        return out

    monkeypatch.setattr(fw, "at", spy)
    tok = make_tokenizer()
    r = LatentRunner(tiny_gpt2(tok), tok, "coconut")
    tr = r.run(COCONUT, max_new_tokens=6, progress=False)
    r.intervene(tr, lambda z, s, e: z * 0, layers=(0, 1), mode="propagate", progress=False)
    assert calls and all(a == b for a, b in calls)
