"""Stop rules, sampling and explicit text imagination."""

import pytest
import torch

from latentprobe import interventions as iv
from latentprobe.engine import LatentRunner
from latentprobe.presets import get_preset
from latentprobe.trace import Segment
from tiny import force_open

VL = ["<|vision_start|> <|image_pad|> <|vision_end|> what colour is the circle ?",
      "<|vision_start|> <|image_pad|> <|vision_end|> what is ?",
      "what colour <|vision_start|> <|image_pad|> <|vision_end|> is the red square ? a b c"]


def _lens(runner, prompts):
    return {i: len(runner._tokenize(p)) + 15 for i, p in enumerate(prompts)}


def test_end_token_stop_is_a_sampled_close(qwen, tok, images):
    # the greedy token read from h before latent 2 becomes the end token: latent mode must stop right there
    lvr = get_preset("lvr", open_mode="emitted", slot_policy="sampled")
    r = LatentRunner(qwen, tok, lvr)
    proc = force_open(tok, lvr.open_token, 0, _lens(r, VL[:1]))
    base = r.run(VL[:1], images[:1], max_new_tokens=20, logits_processor=proc, progress=False)[0]
    end_id = int(base.input_ids[base.latent_positions[2]])
    end_tok = tok.convert_ids_to_tokens(end_id)
    spec = lvr.replace(name="mirage-like", stop="end_token", close_token=end_tok, min_latents=2)
    r2 = LatentRunner(qwen, tok, spec)
    e = r2.run(VL[:1], images[:1], max_new_tokens=20, logits_processor=proc, progress=False)[0]
    assert e.num_latents == 2
    assert int(e.input_ids[e.latent_positions[-1] + 1]) == end_id
    torch.testing.assert_close(e.z, base.z[:2], rtol=0, atol=0)
    # without the end token in sight the cap holds
    assert base.num_latents == lvr.num_latents


def test_seeded_sampling_is_reproducible_and_batch_invariant(qwen, tok, images):
    spec = get_preset("toy", open_mode="appended")
    r = LatentRunner(qwen, tok, spec)
    kw = dict(max_new_tokens=10, do_sample=True, temperature=1.5, progress=False)
    a = r.run(VL, images, seed=7, batch_size=3, **kw)
    b = r.run(VL, images, seed=7, batch_size=3, **kw)
    singles = [r.run([VL[i]], [images[i]], example_ids=[str(i)], seed=7, **kw)[0] for i in range(3)]
    c = r.run(VL, images, seed=8, batch_size=3, **kw)
    assert [e.answer_text for e in a] == [e.answer_text for e in b] == [e.answer_text for e in singles]
    assert [e.answer_text for e in a] != [e.answer_text for e in c]


def test_text_imagination_span_is_recorded_like_latents(qwen, tok, images):
    spec = get_preset("toy").replace(name="text-imagination", mediator="text", stop="end_token", num_latents=5,
                                     slot_policy="none", slot_token=None)
    r = LatentRunner(qwen, tok, spec)
    proc = force_open(tok, spec.open_token, 1, _lens(r, VL))
    tr = r.run(VL, images, max_new_tokens=16, logits_processor=proc, progress=False)
    emb = qwen.get_input_embeddings().weight
    for e in tr:
        assert 1 <= e.num_latents <= 5
        ids = e.input_ids[e.latent_positions]
        torch.testing.assert_close(e.z, emb[ids].detach(), rtol=0, atol=0)  # fed as ordinary token embeddings
        assert int(e.input_ids[e.latent_positions[-1] + 1]) == r.rspec.close_id
        assert e.segments[e.latent_positions[0] - 1] == Segment.OPEN
    rep = r.intervene(tr, None, mode="replay", progress=False)
    for a, b in zip(tr, rep):
        assert (a.hidden - b.hidden).abs().max() <= 1e-4
    # replacing the span's embeddings changes what follows
    out = r.intervene(tr, iv.ReplaceNoise(seed=0), mode="replay", progress=False)
    assert any((a.first_token_logprobs - b.first_token_logprobs).abs().max() > 1e-3 for a, b in zip(tr, out))


def test_noise_is_scaled_to_the_latent_norm_and_seeded_per_example(qwen, tok, images):
    r = LatentRunner(qwen, tok, get_preset("toy", open_mode="appended"))
    tr = r.run(VL, images, max_new_tokens=8, progress=False)
    rn = r.intervene(tr, iv.ReplaceNoise(seed=3), mode="replay", progress=False)
    for a, b in zip(tr, rn):
        torch.testing.assert_close(b.z.norm(dim=-1), a.z.norm(dim=-1), rtol=1e-5, atol=1e-5)
    one = r.intervene(tr.select([1]), iv.AddNoise(scale=0.5, seed=3), mode="replay", progress=False)[0]
    allb = r.intervene(tr, iv.AddNoise(scale=0.5, seed=3), mode="replay", progress=False)
    # example 1 alone (re-indexed to 0) gets the same noise as in the batch: draws are keyed by example id
    torch.testing.assert_close(one.z, allb[1].z, rtol=0, atol=0)
    ratio = ((allb[0].z - tr[0].z).norm(dim=-1) / tr[0].z.norm(dim=-1)).mean()
    assert 0.3 < float(ratio) < 0.7


def test_swap_mean_and_shared_tensor(qwen, tok, images):
    r = LatentRunner(qwen, tok, get_preset("toy", open_mode="appended"))
    tr = r.run(VL, images, max_new_tokens=8, progress=False)
    sw = r.intervene(tr, iv.Swap(tr), mode="replay", progress=False)
    for i, e in enumerate(sw):
        torch.testing.assert_close(e.z, tr[(i + 1) % 3].z, rtol=0, atol=0)
    mean = iv.MeanAblate.from_trace(tr)
    ma = r.intervene(tr, mean, mode="redecode", progress=False)
    for e in ma:
        torch.testing.assert_close(e.z, torch.stack([x.z for x in tr]).mean(0), rtol=0, atol=1e-6)
    shared = torch.randn(64)
    sh = r.intervene(tr, iv.Replace(shared), steps=[0, 2], mode="replay", progress=False)
    for a, e in zip(tr, sh):
        torch.testing.assert_close(e.z[[0, 2]], shared.expand(2, -1), rtol=0, atol=0)
        torch.testing.assert_close(e.z[[1, 3]], a.z[[1, 3]], rtol=0, atol=0)
    rf = r.intervene(tr, iv.RepeatFirst(), mode="replay", progress=False)
    for a, e in zip(tr, rf):
        torch.testing.assert_close(e.z, a.z[:1].expand(4, -1), rtol=0, atol=0)


def test_interventions_serialise():
    from latentprobe.interventions import intervention_from_config

    for x in (iv.Zero(), iv.Scale(1e-3), iv.AddNoise(2.0, seed=4), iv.ReplaceNoise(seed=1),
              iv.Replace(torch.arange(6.0).reshape(2, 3)), iv.MeanAblate(torch.ones(3))):
        y = intervention_from_config(x.to_config())
        assert type(y) is type(x)
        z = torch.randn(3)
        ex = type("E", (), {"example_id": "e", "index": 0})()
        torch.testing.assert_close(y(z, 1, ex), x(z, 1, ex))


def test_an_empty_answer_keeps_its_first_token_distribution(qwen, tok, images):
    r = LatentRunner(qwen, tok, get_preset("toy", open_mode="appended"))
    eos, close = tok.eos_token_id, r.rspec.close_id

    def end_at_once(ids, logits, index):
        if ids[-1] == close:
            logits = torch.full_like(logits, float("-inf"))
            logits[eos] = 0.0
        return logits

    tr = r.run(VL, images, max_new_tokens=10, logits_processor=end_at_once, progress=False)
    rep = r.intervene(tr, None, mode="replay", progress=False)
    for a, b in zip(tr, rep):
        assert a.answer_text == "" and a.finished
        assert a.first_token_logprobs is not None and torch.isclose(a.first_token_logprobs.exp().sum(), torch.tensor(1.0))
        assert (a.first_token_logprobs - b.first_token_logprobs).abs().max() <= 1e-4
