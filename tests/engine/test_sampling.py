"""Choosing tokens: settings validated, top-p by hand, keyed draws that controls reproduce, the logits
processor inside latent mode, published settings, BOS, LVR's head and stop-on-similarity on tiny models."""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers.processors import TemplateProcessing

from latentprobe.engine import GenerationConfig, LatentRunner, LvrHead, choose, end_distance, sampling_probs
from latentprobe.errors import InputError, SpecError
from latentprobe.seeding import torch_generator
from latentprobe.presets import get_preset
from latentprobe.trace import Segment
from tiny import force_open, make_tokenizer, tiny_llama

VL = ["<|vision_start|> <|image_pad|> <|vision_end|> what colour is the circle ?",
      "<|vision_start|> <|image_pad|> <|vision_end|> what is ?",
      "what colour <|vision_start|> <|image_pad|> <|vision_end|> is the red square ? a b c"]
TEXT = ["a b", "what is the red circle ? one two three", "c"]
LAT6 = " ".join(["<|latent|>"] * 6)
COCONUT = [f"a b <|start-latent|> {LAT6} <|end-latent|> answer :", f"c <|start-latent|> {LAT6} <|end-latent|>"]


def _lens(runner, prompts, n_img=15):
    return {i: len(runner._tokenize(p)) + n_img for i, p in enumerate(prompts)}


def hand_top_p(scores: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The nucleus by hand: most probable tokens first, until their probability reaches top_p."""
    probs = torch.softmax(scores.double() / temperature, -1)
    order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))
    keep, total = [], 0.0
    for i in order:
        keep.append(i)
        total += float(probs[i])
        if total >= top_p:
            break
    out = torch.zeros_like(probs)
    out[keep] = probs[keep] / probs[keep].sum()
    return out.float()


@pytest.mark.parametrize("kw, fragment", [
    (dict(do_sample=True, top_k=0), "top_k=0"), (dict(do_sample=True, top_p=0.0), "top_p=0.0"),
    (dict(do_sample=True, top_p=1.5), "top_p=1.5"), (dict(do_sample=True, temperature=float("nan")), "temperature"),
    (dict(do_sample=True, temperature=float("inf")), "temperature=inf"),
    (dict(do_sample=True, temperature=0.0), "temperature=0.0"), (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(max_new_tokens=0), "max_new_tokens=0"), (dict(generation="nucleus"), "generation='nucleus'"),
    (dict(batch_size=0), "batch_size=0"),
])
def test_generation_settings_are_validated_before_any_work(gpt2, tok, kw, fragment):
    r = LatentRunner(gpt2, tok, "coconut")
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        r.run(COCONUT, progress=False, **kw)


def test_top_p_matches_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        s = torch.randn(30, generator=g) * 3
        for t, p in ((1.0, 0.9), (0.7, 0.5), (1.3, 0.99), (0.5, 1e-3)):
            got = sampling_probs(s, GenerationConfig(do_sample=True, temperature=t, top_p=p))
            torch.testing.assert_close(got, hand_top_p(s, t, p), rtol=1e-5, atol=1e-6)
    # top-k then top-p, as Hugging Face and vLLM order them
    s = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0])
    got = sampling_probs(s, GenerationConfig(do_sample=True, top_k=3, top_p=0.95))
    assert got[3:].sum() == 0 and got[:3].sum() == pytest.approx(1.0)


def test_sampled_answers_are_draws_from_the_hand_computed_nucleus(gpt2, tok):
    r = LatentRunner(gpt2, tok, "coconut")
    tr = r.run(COCONUT, max_new_tokens=12, do_sample=True, temperature=0.8, top_p=0.7, seed=3, progress=False)
    assert tr.config["top_p"] == 0.7
    for e in tr:
        probs = hand_top_p(e.first_token_logprobs, 0.8, 0.7)
        drawn = int(torch.multinomial(probs, 1, generator=torch_generator(3, e.example_id, e.answer_start)))
        expect = int(e.answer_ids[0]) if len(e.answer_ids) else tok.eos_token_id
        assert drawn == expect


def test_keyed_draws_do_not_depend_on_what_was_drawn_before():
    cfg = GenerationConfig(do_sample=True)
    s = torch.zeros(50)
    a = [choose(s, cfg, example_id="e", position=p) for p in range(20)]
    b = [choose(s, cfg, example_id="e", position=p) for p in reversed(range(20))][::-1]
    assert a == b and len(set(a)) > 1
    assert a != [choose(s, cfg.replace(seed=1), example_id="e", position=p) for p in range(20)]


class _CloseControl:
    """Open latent mode at the first free step; inside it, force the close after ``force_at`` latents, or
    forbid it. Records how often it sees a latent-mode decision."""

    def __init__(self, runner, prompts, force_at=None):
        self.rs, self.force_at, self.latent_calls = runner.rspec, force_at, 0
        self.lens = _lens(runner, prompts)
        self.eos = runner.tokenizer.eos_token_id

    def __call__(self, ids, logits, index):
        logits = logits.clone()
        logits[self.eos] = float("-inf")
        gen = ids[self.lens[index]:]
        opened = self.rs.open_id in gen
        if not opened:
            logits[:] = float("-inf")
            logits[self.rs.open_id] = 0.0
        elif self.rs.close_id not in gen:
            self.latent_calls += 1
            k = len(gen) - gen.index(self.rs.open_id) - self.rs.spec.first_offset  # latents fed so far
            if self.force_at is not None and k == self.force_at:
                logits[:] = float("-inf")
                logits[self.rs.close_id] = 0.0
            else:
                logits[self.rs.close_id] = float("-inf")
        else:
            logits[self.rs.open_id] = float("-inf")
        return logits


@pytest.mark.parametrize("preset, cap, least", [("mirage", 8, 0), ("monet", 10, 1)])
def test_the_logits_processor_sees_latent_decisions_and_can_force_or_forbid_a_close(qwen, tok, images, preset, cap,
                                                                                   least):
    r = LatentRunner(qwen, tok, preset)
    forced = _CloseControl(r, VL, force_at=3)
    tr = r.run(VL, images, max_new_tokens=16, logits_processor=forced, progress=False)
    assert [e.num_latents for e in tr] == [3, 3, 3] and forced.latent_calls >= 3 * 3
    early = _CloseControl(r, VL, force_at=least)  # Mirage allows an empty segment; Monet's first latent is on its open
    assert [e.num_latents for e in r.run(VL, images, max_new_tokens=16, logits_processor=early,
                                         progress=False)] == [least] * 3
    forbid = _CloseControl(r, VL)
    tr = r.run(VL, images, max_new_tokens=20, logits_processor=forbid, do_sample=True, temperature=2.0, progress=False)
    assert [e.num_latents for e in tr] == [cap] * 3  # the cap forces the close
    for e in tr:
        assert int(e.input_ids[e.latent_positions[-1] + 1]) == r.rspec.close_id


@pytest.mark.parametrize("preset", ["monet", "mirage"])
def test_a_noop_intervention_reproduces_a_sampled_trace_in_every_mode(qwen, tok, images, preset):
    r = LatentRunner(qwen, tok, preset)
    proc = force_open(tok, r.spec.open_token, {0: 0, 1: 2, 2: 1}, _lens(r, VL))
    kw = dict(max_new_tokens=18, do_sample=True, temperature=1.0, top_p=0.95, seed=11, logits_processor=proc,
              progress=False)
    tr = r.run(VL, images, batch_size=8, **kw)
    one = r.run(VL, images, batch_size=1, **kw)
    for a, b in zip(tr, one):  # batching never changes a sample
        assert torch.equal(a.input_ids, b.input_ids)
    assert len({tuple(e.answer_ids.tolist()) for e in tr}) > 1
    for mode in ("replay", "propagate", "redecode"):
        out = r.intervene(tr, None, mode=mode, logits_processor=proc, progress=False)
        for a, b in zip(tr, out):
            assert torch.equal(a.input_ids, b.input_ids), mode
            assert torch.equal(a.latent_positions, b.latent_positions), mode
            assert (a.z - b.z).abs().max() <= 1e-4 if a.num_latents else True
            if mode != "replay":
                assert torch.equal(a.answer_ids, b.answer_ids), mode


def test_generation_published_uses_the_presets_settings(qwen, tok, images):
    r = LatentRunner(qwen, tok, "monet")
    pub = r.spec.published_generation
    eos = (tok.eos_token_id,)  # no checkpoint generation_config: the tokenizer's eos
    assert r._generation("published") == GenerationConfig(4096, True, 0.1, 50, 0, 0.8, 1.01, eos)
    assert (pub.temperature, pub.top_k, pub.top_p, pub.repetition_penalty) == (0.1, 50, 0.8, 1.01)
    proc = force_open(tok, r.spec.open_token, 0, _lens(r, VL[:1]))
    tr = r.run(VL[:1], images[:1], generation="published", max_new_tokens=14, logits_processor=proc, progress=False)
    c = tr.config
    assert (c["do_sample"], c["temperature"], c["top_k"], c["top_p"], c["repetition_penalty"], c["max_new_tokens"]) \
        == (True, 0.1, 50, 0.8, 1.01, 14)
    assert r._generation("published", temperature=0.5).temperature == 0.5  # an explicit setting wins
    assert r._generation(None) == GenerationConfig(eos_token_ids=eos)  # greedy stays the default
    assert c["generation"]["mode"] == "published" and c["generation"]["eos_token_id"] == list(eos)
    assert c["generation"]["sources"]["max_new_tokens"] == "argument" and c["generation"]["sources"]["top_k"] == "published"
    # Mirage's test.py passes no top-k: generate() applies transformers' default 50 when the checkpoint sets none
    mir = LatentRunner(qwen, tok, "mirage")._generation("published")
    assert (mir.do_sample, mir.temperature, mir.top_p, mir.top_k, mir.max_new_tokens) == (True, 0.7, 0.9, 50, 1024)
    with pytest.raises(InputError, match="no published decoding"):
        LatentRunner(qwen, tok, "toy")._generation("published")


def test_repetition_penalty_follows_hugging_face():
    from latentprobe.engine.sampling import _penalise

    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    out = _penalise(logits, [0, 1, 1], 2.0)
    torch.testing.assert_close(out, torch.tensor([1.0, -2.0, 0.5, 3.0]))


def test_add_special_tokens_adds_the_tokenizers_bos():
    tok = make_tokenizer(extra_specials=("<s>",))
    bos = tok.convert_tokens_to_ids("<s>")
    tok._tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tok.bos_token = "<s>"
    model = tiny_llama(tok)
    r = LatentRunner(model, tok, "coconut")
    with_bos = r.run(COCONUT, max_new_tokens=4, add_special_tokens=True, progress=False)
    without = r.run(COCONUT, max_new_tokens=4, add_special_tokens=False, progress=False)
    by_preset = r.run(COCONUT, max_new_tokens=4, progress=False)  # Coconut's dataset.py tokenises with them
    assert by_preset.config["add_special_tokens"] and not without.config["add_special_tokens"]
    for a, b, c in zip(with_bos, without, by_preset):
        assert int(a.input_ids[0]) == bos and int(b.input_ids[0]) != bos
        assert torch.equal(a.input_ids[1:a.prompt_len], b.input_ids[:b.prompt_len])
        assert torch.equal(a.input_ids, c.input_ids)
    assert get_preset("codi").prompt.add_special_tokens and not get_preset("mirage").prompt.add_special_tokens


def _reference_outputs(model, e):
    """Final-norm outputs of one recorded sequence, fed with its latents, by a plain forward."""
    ids = e.input_ids.clone()
    emb = model.get_input_embeddings()(ids[None]).detach().clone()
    emb[0, e.latent_positions] = e.z
    with torch.no_grad():
        return model.model(inputs_embeds=emb).last_hidden_state[0]


def test_lvr_head_runs_on_latent_outputs_and_lm_head_reads_it(llama, tok):
    torch.manual_seed(5)
    head = LvrHead(64).eval()
    spec = get_preset("lvr", num_latents=3, head="latent")
    r = LatentRunner(llama, tok, spec, head=head)
    proc = force_open(tok, spec.open_token, 1, _lens(r, TEXT, 0))
    tr = r.run(TEXT, max_new_tokens=10, logits_processor=proc, progress=False)
    for e in tr:
        H = _reference_outputs(llama, e)
        pos = e.latent_positions.tolist()
        assert len(pos) == 3 and e.segments[pos[-1] + 1] == Segment.GEN
        with torch.no_grad():
            torch.testing.assert_close(e.z[0], H[pos[0] - 1], rtol=0, atol=1e-5)  # latent 1: the raw output
            torch.testing.assert_close(e.z[1:], head(H[pos[:-1]]), rtol=0, atol=1e-5)  # latents 2..K: the head's
            ref = torch.log_softmax(llama.lm_head(head(H[pos[-1]])), -1)  # the token after the quota reads it too
        torch.testing.assert_close(e.first_token_logprobs, ref, rtol=0, atol=1e-4)
    rep = r.intervene(tr, None, mode="replay", logits_processor=proc, progress=False)
    for a, b in zip(tr, rep):
        assert (a.h_src - b.h_src).abs().max() <= 1e-4
        assert (a.first_token_logprobs - b.first_token_logprobs).abs().max() <= 1e-4
    with pytest.raises(SpecError, match="head="):
        LatentRunner(llama, tok, spec)
    with pytest.raises(SpecError, match="head='none'"):
        LatentRunner(llama, tok, "lvr", head=head)


def test_stop_on_similarity_leaves_where_the_fed_latent_meets_the_end_embedding(llama, tok):
    quota = LatentRunner(llama, tok, get_preset("lvr", num_latents=4))
    proc = force_open(tok, "<|lvr_start|>", 0, _lens(quota, TEXT, 0))
    base = quota.run(TEXT[:1], max_new_tokens=12, logits_processor=proc, progress=False)[0]
    spec = get_preset("lvr", num_latents=4, stop="similarity")
    with pytest.raises(SpecError, match="end_embedding"):
        LatentRunner(llama, tok, spec)
    for kind in ("mse", "mae", "cosine"):
        # the tiny model's latents lie close together: a threshold below latent 1's distance to latent 2
        thr = 0.5 * float(end_distance(base.z[0], base.z[1], kind))
        r = LatentRunner(llama, tok, spec.replace(end_distance=kind, end_threshold=thr), end_embedding=base.z[1])
        tr = r.run(TEXT[:1], max_new_tokens=12, logits_processor=proc, progress=False)
        e = tr[0]
        assert e.num_latents == 2, kind  # latent 2 is the end embedding itself: distance 0 after it is fed
        torch.testing.assert_close(e.z, base.z[:2], rtol=0, atol=1e-6)
        assert e.segments[e.latent_positions[-1] + 1] == Segment.GEN
        again = r.intervene(tr, None, mode="propagate", logits_processor=proc, progress=False)[0]
        assert torch.equal(again.input_ids, e.input_ids)
    far = LatentRunner(llama, tok, spec, end_embedding=torch.full((64,), 1e3))
    assert far.run(TEXT[:1], max_new_tokens=12, logits_processor=proc, progress=False)[0].num_latents == 4  # the cap
    assert math.isclose(spec.end_threshold, 0.02)


def test_codi_by_ids_on_a_resized_model_never_chooses_eot(tok):
    from latentprobe.engine.heads import CodiProjection
    from tiny import tiny_gpt2

    model = tiny_gpt2(tok)
    V = model.config.vocab_size
    model.resize_token_embeddings(V + 3)  # CODI: pad V, <bot> V+1, <eot> V+2, no strings
    torch.manual_seed(1)
    proj = CodiProjection(64, 96).eval()
    r = LatentRunner(model, tok, "codi", projection=proj)
    assert (r.rspec.open_id, r.rspec.close_id) == (V + 1, V + 2)
    first = r.run(TEXT, max_new_tokens=8, progress=False)
    with torch.no_grad():  # make <eot> the model's own favourite answer token
        model.get_output_embeddings().weight[V + 2] = 50 * first[0].h_src.mean(0) / first[0].h_src.norm(dim=-1).mean()
    tr = r.run(TEXT, max_new_tokens=8, progress=False)
    for e in tr:
        ids = e.input_ids.tolist()
        assert ids[e.prompt_len - 1] == V + 1 and e.latent_positions[0] == e.prompt_len
        assert ids[e.latent_positions[-1] + 1] == V + 2 and e.num_latents == 6
        assert V + 2 not in e.answer_ids.tolist()
    assert any(int(e.first_token_logprobs.argmax()) == V + 2 for e in tr)  # the exclusion is what kept it out
