"""The protocol state machine per preset, without a model: scripted proposals in, fed inputs out.

Every token id is read from the tests' tokenizer and every fed input is rendered back to token
strings, so a wrong id lookup cannot pass.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from latentprobe.engine import (Decision, End, EndReason, FeedLatent, FeedTextLatent, FeedToken, ProtocolMode,
                                ProtocolState, initial_state, needs_sample, resume_at_answer, resume_at_latent,
                                step)
from latentprobe.errors import InputError
from latentprobe.spec import get_preset
from latentprobe.trace import Segment
from tiny import make_tokenizer

TOK = make_tokenizer(extra_specials=("<|caption|>", "<|caption_end|>"))
SEG = {Segment.TEXT: "text", Segment.OPEN: "open", Segment.CLOSE: "close", Segment.GEN: "gen"}


def ids(words: str) -> list[int]:
    return [TOK.convert_tokens_to_ids(w) for w in words.split()]


def name(i: int) -> str:
    return TOK.convert_ids_to_tokens(int(i))


def render(action) -> str:
    if isinstance(action, FeedToken):
        return f"{SEG[action.segment]}:{name(action.token_id)}"
    if isinstance(action, FeedLatent):
        return f"Z:{name(action.slot_id)}"
    if isinstance(action, FeedTextLatent):
        return f"T:{name(action.token_id)}"
    return f"end:{action.reason.value}"


def drive(spec, prompt: str, script: list, max_new_tokens: int = 64, state: ProtocolState | None = None):
    """Run the state machine; ``script[i]`` is what the model proposes at the i-th step: a token
    (greedy = sampled) or a ``(greedy, sampled)`` pair; ``"a"`` once the script runs out."""
    rs = spec.resolve(TOK)
    start = initial_state(rs, ids(prompt), [Segment.TEXT] * len(ids(prompt)))
    st = start.state if state is None else state
    n = len(start.ids)
    fed = []
    proposals = itertools.chain(script, itertools.repeat("a"))
    for _ in range(500):
        p = next(proposals)
        greedy, sampled = (p, p) if isinstance(p, str) else p
        budget_left = max_new_tokens - (n - start.prompt_len)
        wants = needs_sample(rs, st, budget_left)
        action, st = step(rs, st, Decision(ids(greedy)[0], ids(sampled)[0] if wants else None, budget_left))
        fed.append(render(action))
        if isinstance(action, End):
            return start, fed, st
        n += 1
    raise AssertionError("the protocol never ended")


def k_per_segment(fed: list[str]) -> list[int]:
    """Latents between each open (or the start) and its close."""
    ks, k = [], 0
    for f in fed:
        if f.startswith(("Z:", "T:")):
            k += 1
        elif f.startswith("close:") and k:
            ks.append(k)
            k = 0
    return ks


def test_monet_offset_0_latent_on_the_open_markers_own_slot_then_forced_close():
    greedy = ["red", "green", "blue"] * 3
    _, fed, st = drive(get_preset("monet"), "what is ?", ["a", "<abs_vis_token>"] + greedy + ["b", "b", "<eos>"])
    # the sampled open marker is not fed as a token: latent 0 sits on its slot, with its id
    assert fed[:3] == ["gen:a", "Z:<abs_vis_token>", "Z:red"]
    assert fed[2:11] == [f"Z:{g}" for g in greedy]  # slot_policy="sampled": the greedy ids
    assert fed[11:] == ["close:</abs_vis_token>", "gen:b", "end:eos"]
    assert k_per_segment(fed) == [10]
    assert st.segments_done == 1 and st.total == 10


def test_monet_max_segments_then_the_open_marker_is_ordinary_text():
    spec = get_preset("monet", num_latents=2)
    seg = ["<abs_vis_token>", "red", "x"]  # open (latent 0 on it), latent 1, forced close
    _, fed, st = drive(spec, "what", ["a"] + seg * 4 + ["<abs_vis_token>", "<eos>"])
    assert k_per_segment(fed) == [2, 2, 2, 2]
    assert fed[-2:] == ["gen:<abs_vis_token>", "end:eos"]
    assert st.segments_done == 4


def test_lvr_fixed_k_sampled_slot_ids_and_the_budget_ends_free_text():
    greedy = ["one", "two", "three", "four", "five", "six", "red", "blue"]
    _, fed, _ = drive(get_preset("lvr"), "what", ["<|lvr_start|>"] + greedy + ["x", "b", "c", "d"], max_new_tokens=12)
    assert fed == (["open:<|lvr_start|>"] + [f"Z:{g}" for g in greedy]
                   + ["close:<|lvr_end|>", "gen:b", "gen:c", "end:budget"])


def test_a_started_latent_segment_always_completes_past_the_budget():
    _, fed, _ = drive(get_preset("lvr"), "what", ["a", "<|lvr_start|>"], max_new_tokens=2)
    assert fed[:2] == ["gen:a", "open:<|lvr_start|>"]
    assert k_per_segment(fed) == [8] and fed[-2:] == ["close:<|lvr_end|>", "end:budget"]


def test_mirage_closes_early_on_a_sampled_close_after_min_latents():
    # before latent 0 the close is ignored (min_latents=1); before latent 3 it is taken
    script = ["<|latent_start|>", "<|latent_end|>", "red", "red", "<|latent_end|>", "b", "<eos>"]
    _, fed, _ = drive(get_preset("mirage"), "what", script)
    assert fed == (["open:<|latent_start|>"] + ["Z:<|latent_pad|>"] * 3
                   + ["close:<|latent_end|>", "gen:b", "end:eos"])


def test_mirage_cap_forces_the_close():
    _, fed, _ = drive(get_preset("mirage"), "what", ["<|latent_start|>"] + ["red"] * 8 + ["x", "<eos>"])
    assert k_per_segment(fed) == [8]
    assert fed[9] == "close:<|latent_end|>"
    assert get_preset("mirage").max_segments == 1
    # one segment only: a second open marker is text
    _, fed2, _ = drive(get_preset("mirage"), "what", ["<|latent_start|>", "<|latent_end|>", "<|latent_end|>",
                                                      "<|latent_start|>", "<eos>"])
    assert fed2 == ["open:<|latent_start|>", "Z:<|latent_pad|>", "close:<|latent_end|>", "gen:<|latent_start|>",
                    "end:eos"]


def test_coconut_feeds_the_prompt_slots_then_the_forced_tail():
    prompt = "a b <|start-latent|> " + " ".join(["<|latent|>"] * 6) + " <|end-latent|> answer :"
    start, fed, st = drive(get_preset("coconut"), prompt, ["<|start-latent|>", "x", "x", "x", "x", "x", "x", "x",
                                                           "x", "c", "<eos>"])
    assert [name(i) for i in start.ids] == ["a", "b", "<|start-latent|>"]
    assert start.segments[-1] == Segment.OPEN and start.prompt_len == len(ids(prompt))
    assert fed == (["Z:<|latent|>"] * 6 + ["close:<|end-latent|>", "text:answer", "text::"]
                   + ["gen:c", "end:eos"])
    assert st.segments_done == 1 and st.total == 6


def test_coconut_prompt_without_slots_or_marker_is_an_input_error():
    rs = get_preset("coconut").resolve(TOK)
    with pytest.raises(InputError, match="no open marker"):
        initial_state(rs, ids("a b"), [0, 0], example_id="e7")
    with pytest.raises(InputError, match="e7"):
        initial_state(rs, ids("a <|start-latent|> b"), [0, 0, 0], example_id="e7")


def test_codi_appends_the_open_marker_and_records_pad_at_slots():
    start, fed, _ = drive(get_preset("codi"), "a b", ["x"] * 7 + ["c", "<eos>"])
    assert [name(i) for i in start.ids] == ["a", "b", "<bot>"]
    assert start.segments[-1] == Segment.OPEN and start.prompt_len == 3
    assert start.state.mode is ProtocolMode.LATENT
    assert fed == ["Z:<pad>"] * 6 + ["close:<eot>", "gen:c", "end:eos"]


def test_toy_fixed_k_ignores_a_greedy_close():
    _, fed, _ = drive(get_preset("toy"), "what", ["<|latent_start|>", "<|latent_end|>", "<|latent_end|>"])
    assert fed[:6] == ["open:<|latent_start|>"] + ["Z:<|latent_pad|>"] * 4 + ["close:<|latent_end|>"]


def test_toy_text_feeds_sampled_tokens_until_the_sampled_close():
    script = ["<|caption|>", "<|caption_end|>", "red", "circle", "<|caption_end|>", "red", "<eos>"]
    _, fed, _ = drive(get_preset("toy-text"), "what", script)
    # min_latents=1: a close before the first token is fed like any token of the span
    assert fed == ["open:<|caption|>", "T:<|caption_end|>", "T:red", "T:circle", "close:<|caption_end|>",
                   "gen:red", "end:eos"]


def test_toy_text_cap_forces_the_close():
    _, fed, _ = drive(get_preset("toy-text"), "what", ["<|caption|>"] + ["red"] * 12)
    assert k_per_segment(fed) == [10] and fed[11] == "close:<|caption_end|>"


def test_after_close_tokens_are_forced_in_the_close_segment():
    spec = get_preset("toy").replace(name="toy-after", after_close=("<|vision_start|>", "<|vision_end|>"))
    _, fed, _ = drive(spec, "what", ["<|latent_start|>"] + ["x"] * 7 + ["<eos>"])
    assert fed[5:] == ["close:<|latent_end|>", "close:<|vision_start|>", "close:<|vision_end|>", "end:eos"]


def test_eos_ends_free_text_but_not_a_latent_segment():
    _, fed, _ = drive(get_preset("lvr"), "what", ["<eos>"])
    assert fed == ["end:eos"]
    _, fed, _ = drive(get_preset("lvr"), "what", ["<|lvr_start|>"] + ["<eos>"] * 10)
    assert fed[1:9] == ["Z:<eos>"] * 8 and fed[-1] == "end:eos"


def test_sampling_is_asked_for_exactly_when_it_is_used():
    rs = get_preset("mirage").resolve(TOK)
    st = ProtocolState(mode=ProtocolMode.LATENT)
    assert not needs_sample(rs, st, 5)  # latents read the greedy token only
    assert needs_sample(rs, ProtocolState(), 1) and not needs_sample(rs, ProtocolState(), 0)
    with pytest.raises(InputError, match="sampled token"):
        step(rs, ProtocolState(), Decision(greedy=ids("a")[0], sampled=None, budget_left=3))


def test_the_state_is_immutable():
    rs = get_preset("codi").resolve(TOK)
    st = initial_state(rs, ids("a"), [0]).state
    _, new = step(rs, st, Decision(greedy=ids("a")[0]))
    assert st.total == 0 and new.total == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.total = 3  # type: ignore[misc]


def test_resume_at_a_latent_for_propagate():
    spec = get_preset("mirage")
    rs = spec.resolve(TOK)
    seq = ids("what a <|latent_start|> <|latent_pad|> <|latent_pad|> <|latent_pad|> <|latent_end|> b")
    segs = [0, 5, 2, 3, 3, 3, 4, 5]
    st = resume_at_latent(rs, seq, segs, prompt_len=1, upto=5)  # about to feed latent 2
    assert (st.mode, st.in_segment, st.total, st.segments_done) == (ProtocolMode.LATENT, 2, 2, 0)
    action, st = step(rs, st, Decision(greedy=ids("<|latent_end|>")[0]))
    assert render(action) == "close:<|latent_end|>" and st.segments_done == 1


def test_resume_at_a_prompt_slot_for_coconut_keeps_the_forced_tail():
    spec = get_preset("coconut")
    rs = spec.resolve(TOK)
    words = "a <|start-latent|> " + " ".join(["<|latent|>"] * 6) + " <|end-latent|> answer"
    seq = ids(words)
    segs = [0, 2] + [3] * 6 + [4, 0]
    st = resume_at_latent(rs, seq, segs, prompt_len=len(seq), upto=4)  # latents 0-1 fed
    out = []
    while st.pending:
        a, st = step(rs, st, Decision(greedy=0))
        out.append(render(a))
    assert out == ["Z:<|latent|>"] * 4 + ["close:<|end-latent|>", "text:answer"]
    assert st.total == 6


def test_resume_at_the_answer_cannot_open_a_new_segment():
    rs = get_preset("lvr").resolve(TOK)
    st = resume_at_answer(8, can_open=False)
    action, _ = step(rs, st, Decision(greedy=0, sampled=rs.open_id, budget_left=3))
    assert action == FeedToken(rs.open_id, Segment.GEN)
    action, _ = step(rs, resume_at_answer(0, can_open=True), Decision(greedy=0, sampled=rs.open_id, budget_left=3))
    assert action == FeedToken(rs.open_id, Segment.OPEN)
    assert step(rs, st, Decision(greedy=0, sampled=rs.open_id, budget_left=0))[0] == End(EndReason.BUDGET)
