"""The runner on tiny random-weight models in the real architecture classes (Qwen2.5-VL, GPT-2, Llama)."""

from __future__ import annotations

import pytest
import torch

from latentprobe import interventions as iv
from latentprobe.engine import LatentRunner
from latentprobe.engine.heads import CodiProjection
from latentprobe.presets import get_preset
from latentprobe.trace import LatentTrace, Segment
from tiny import force_open

VL_PROMPTS = [
    "<|vision_start|> <|image_pad|> <|vision_end|> what colour is the circle ?",
    "<|vision_start|> <|image_pad|> <|vision_end|> what is ?",
    "what colour <|vision_start|> <|image_pad|> <|vision_end|> is the red square ? a b c",
]
LAT6 = " ".join(["<|latent|>"] * 6)
COCONUT_PROMPTS = [
    f"a b <|start-latent|> {LAT6} <|end-latent|> answer :",
    f"what is the red circle ? <|start-latent|> {LAT6} <|end-latent|> answer :",
    f"c <|start-latent|> {LAT6} <|end-latent|>",
]
TEXT_PROMPTS = ["a b", "what is the red circle ? one two three", "c"]
OPEN_AT = {0: 0, 1: 2, 2: 1}  # emitted models open latent mode at different free steps

CASES = ["monet", "lvr", "mirage", "toy", "coconut-gpt2", "coconut-llama", "codi-llama", "codi-gpt2"]


class Case:
    def __init__(self, name, request):
        self.name = name
        family, _, arch = name.partition("-")
        self.spec = get_preset(family)
        tok = request.getfixturevalue("tok")
        self.tok = tok
        if family in ("monet", "lvr", "mirage", "toy"):
            model = request.getfixturevalue("qwen")
            self.prompts, self.images = VL_PROMPTS, request.getfixturevalue("images")
        else:
            model = request.getfixturevalue(arch)
            self.prompts = COCONUT_PROMPTS if family == "coconut" else TEXT_PROMPTS
            self.images = None
        proj = None
        if family == "codi":
            torch.manual_seed(1)
            proj = CodiProjection(model.get_input_embeddings().weight.shape[1], 96).eval()
        self.proj = proj
        self.runner = LatentRunner(model, tok, self.spec, projection=proj)
        self.emitted = self.spec.open_mode == "emitted"
        n_img = 15 if self.images is not None else 0  # one <|image_pad|> expands to 16 tokens
        self.prompt_lens = {i: len(self.runner._tokenize(p)) + n_img for i, p in enumerate(self.prompts)}

    def processor(self, idx=None):
        if not self.emitted:
            return None
        idx = list(range(len(self.prompts))) if idx is None else idx
        return force_open(self.tok, self.spec.open_token, {j: OPEN_AT[i] for j, i in enumerate(idx)},
                          {j: self.prompt_lens[i] for j, i in enumerate(idx)})

    def intervene(self, trace, intervention=None, **kw):
        return self.runner.intervene(trace, intervention, logits_processor=self.processor(), progress=False, **kw)

    def run(self, idx=None, **kw):
        idx = list(range(len(self.prompts))) if idx is None else idx
        prompts = [self.prompts[i] for i in idx]
        images = None if self.images is None else [self.images[i] for i in idx]
        kw.setdefault("max_new_tokens", 16)
        return self.runner.run(prompts, images, example_ids=[str(i) for i in idx],
                               logits_processor=self.processor(idx), progress=False, **kw)


@pytest.fixture(scope="module", params=CASES)
def case(request):
    return Case(request.param, request)


@pytest.fixture(scope="module")
def base(case):
    return case.run(batch_size=3)


def test_exactly_k_latents_at_the_right_positions(case, base):
    spec, rs = case.spec, case.runner.rspec
    K = spec.num_latents
    for e in base:
        assert e.num_latents == K
        pos = e.latent_positions.tolist()
        assert pos == list(range(pos[0], pos[0] + K)), "latents are contiguous"
        ids, segs = e.input_ids.tolist(), e.segments.tolist()
        if spec.open_mode == "emitted" and spec.first_offset == 1:
            assert ids[pos[0] - 1] == rs.open_id and segs[pos[0] - 1] == Segment.OPEN
            # opened after exactly OPEN_AT free tokens
            assert pos[0] - 1 - e.prompt_len == OPEN_AT[e.index]
        elif spec.open_mode == "emitted":  # Monet: latent 0 on the open marker's own slot
            assert ids[pos[0]] == rs.open_id and segs[pos[0] - 1] != Segment.OPEN
            assert pos[0] - e.prompt_len == OPEN_AT[e.index]
        elif spec.open_mode == "appended":
            assert pos[0] == e.prompt_len and ids[pos[0] - 1] == rs.open_id
        else:  # in the prompt: the slots that follow the open marker
            assert ids[pos[0] - 1] == rs.open_id
            assert all(ids[p] == rs.slot_id for p in pos)
        if spec.stop == "quota":  # LVR: no close marker; the token chosen from the last latent's output follows
            assert segs[pos[-1] + 1] == Segment.GEN and e.answer_start == pos[-1] + 1
        else:
            assert ids[pos[-1] + 1] == rs.close_id and segs[pos[-1] + 1] == Segment.CLOSE
        assert [segs[p] for p in pos] == [Segment.LATENT] * K
        if spec.slot_policy == "placeholder":
            assert all(ids[p] == rs.slot_id for p in pos)
        # f: identity, or the projection module
        expect = e.h_src if case.proj is None else case.proj(e.h_src).detach()
        torch.testing.assert_close(e.z, expect, rtol=0, atol=1e-5)
        assert e.hidden.shape == (K, case.runner.parts.n_layers + 1, case.runner.parts.hidden_size)
        # layer 0 of the residual stream at a latent slot is the fed vector (plus GPT-2's position embedding)
        if "gpt2" not in case.name:
            torch.testing.assert_close(e.hidden[:, 0], e.z, rtol=0, atol=1e-6)


def test_replay_reproduces_the_incremental_loop(case, base):
    rep = case.intervene(base, None, mode="replay")
    for a, b in zip(base, rep):
        assert (a.hidden - b.hidden).abs().max() <= 1e-4
        assert (a.h_src - b.h_src).abs().max() <= 1e-4
        assert torch.equal(a.answer_ids, b.answer_ids)
        assert (a.answer_logprobs - b.forced_logprobs).abs().max() <= 1e-4


@pytest.mark.parametrize("mode", ["replay", "propagate", "redecode"])
def test_patching_every_latent_with_its_own_value_changes_nothing(case, base, mode):
    plain = case.intervene(base, None, mode=mode)
    ident = case.intervene(base, lambda z, step, ex: z.clone(), mode=mode)
    own = case.intervene(base, lambda z, step, ex: ex.z[step].clone(), mode=mode)
    for o, p, i in zip(base, plain, ident):
        # the patch mechanism is exact: writing back the value that is there changes nothing, bit for bit
        assert torch.equal(p.z, i.z) and torch.equal(p.hidden, i.hidden)
        assert torch.equal(p.answer_ids, i.answer_ids) and torch.equal(p.answer_logprobs, i.answer_logprobs)
    for o, q in zip(base, own):
        # the recorded values reproduce the original run (answers identical, log-probabilities to float precision)
        if mode == "replay":
            assert torch.equal(q.answer_ids, o.answer_ids)
            assert (q.forced_logprobs - o.answer_logprobs).abs().max() <= 1e-5
        else:
            assert q.answer_text == o.answer_text and torch.equal(q.answer_ids, o.answer_ids)
            assert (q.answer_logprobs - o.answer_logprobs).abs().max() <= 1e-5
            torch.testing.assert_close(q.z, o.z, rtol=0, atol=1e-5)


def test_propagate_from_the_recorded_state_is_bitwise_identical(case, base):
    again = case.intervene(base, None, mode="propagate")
    for a, b in zip(base, again):
        assert torch.equal(a.answer_ids, b.answer_ids)
        assert (a.answer_logprobs - b.answer_logprobs).abs().max() <= 1e-6


def test_batch_equals_each_example_alone(case, base):
    for i in range(len(case.prompts)):
        single = case.run([i], batch_size=1)[0]
        b = base[i]
        assert single.num_latents == b.num_latents
        assert torch.equal(single.latent_positions, b.latent_positions)
        assert (single.z - b.z).abs().max() <= 1e-4
        assert (single.hidden - b.hidden).abs().max() <= 1e-4
        assert single.answer_text == b.answer_text and torch.equal(single.answer_ids, b.answer_ids)


def test_replay_at_step_2_touches_only_step_2_and_later(case, base):
    cap = case.run(capture_positions="prompt")
    out = case.intervene(cap, iv.Zero(), steps=[2], mode="replay")
    for a, b in zip(cap, out):
        assert (a.captured_hidden - b.captured_hidden).abs().max() <= 1e-5, "prompt states untouched"
        assert (a.hidden[:2] - b.hidden[:2]).abs().max() <= 1e-5, "steps 0-1 untouched"
        assert torch.all(b.z[2] == 0)
        torch.testing.assert_close(b.z[3:], a.z[3:], rtol=0, atol=0)  # later latents stay as recorded
        assert (a.hidden[2] - b.hidden[2]).abs().max() > 1e-3
        assert (a.hidden[3] - b.hidden[3]).abs().max() > 1e-4, "later states see the change"


def test_propagate_regenerates_later_latents(case, base):
    out = case.intervene(base, iv.Zero(), steps=[2], mode="propagate")
    for a, b in zip(base, out):
        assert b.num_latents == a.num_latents
        assert torch.equal(a.z[:2], b.z[:2])
        assert (a.hidden[:2] - b.hidden[:2]).abs().max() <= 1e-5
        assert torch.all(b.z[2] == 0)
        assert (a.z[3] - b.z[3]).abs().max() > 1e-4, "the next latent is regenerated from the changed state"


def test_redecode_keeps_all_latents_fixed(case, base):
    out = case.intervene(base, iv.Zero(), steps=[2], mode="redecode")
    for a, b in zip(base, out):
        torch.testing.assert_close(b.z[:2], a.z[:2], rtol=0, atol=0)
        torch.testing.assert_close(b.z[3:], a.z[3:], rtol=0, atol=0)
        assert torch.all(b.z[2] == 0)
        assert b.answer_start == a.answer_start
        torch.testing.assert_close(b.input_ids[: a.answer_start], a.input_ids[: a.answer_start], rtol=0, atol=0)
    dropped = case.intervene(base, None, mode="redecode", drop_latents=True)
    for a, d in zip(base, dropped):
        assert d.num_latents == 0 and Segment.LATENT not in d.segments.tolist()
        kept = Segment.OPEN if case.spec.stop == "quota" else Segment.CLOSE  # LVR's segments have no close marker
        assert kept in d.segments.tolist()
        assert d.seq_len - len(d.answer_ids) < a.seq_len - len(a.answer_ids)


def test_layer_patch_changes_that_layer_only(case, base):
    out = case.intervene(base, iv.Scale(2.0), steps=[1], layers=[2], mode="replay")
    for a, b in zip(base, out):
        torch.testing.assert_close(b.hidden[1, 2], 2 * a.hidden[1, 2], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.hidden[1, :2], a.hidden[1, :2], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.z, a.z, rtol=0, atol=0)


def test_trace_save_load_roundtrip(case, base, tmp_path):
    base.save(tmp_path / "t")
    back = LatentTrace.load(tmp_path / "t")
    assert back.spec == base.spec and back.config == base.config
    for a, b in zip(base, back):
        for f in ("input_ids", "segments", "latent_positions", "z", "h_src", "hidden", "answer_ids", "answer_logprobs"):
            assert torch.equal(getattr(a, f), getattr(b, f)), f
        assert a.answer_text == b.answer_text and a.example_id == b.example_id
