"""The protocol state machine per preset, without a model: scripted chosen tokens in, fed inputs out.

Every token id is read from the tests' tokenizer and every fed input is rendered back to token
strings, so a wrong id lookup cannot pass. A script lists the tokens the model chooses, in order, at
the decisions the protocol reads (``needs_sample``); a leading ``~`` marks a decision at which the
previous output lies near the learned end embedding (``stop="similarity"``).
"""

from __future__ import annotations

import dataclasses

import pytest

from latentprobe.engine import (Decision, End, EndReason, FeedLatent, FeedTextLatent, FeedToken, ProtocolMode,
                                ProtocolState, initial_state, needs_sample, resume_at_answer, resume_at_latent,
                                step)
from latentprobe.errors import InputError
from latentprobe.presets import get_preset
from latentprobe.trace import Segment
from tiny import make_tokenizer

TOK = make_tokenizer(extra_specials=("<|caption|>", "<|caption_end|>", "<observation>", "</observation>"))
V = len(TOK)  # CODI: the base vocabulary; the model is resized to V + 3 (pad V, <bot> V+1, <eot> V+2)
SEG = {Segment.TEXT: "text", Segment.OPEN: "open", Segment.CLOSE: "close", Segment.GEN: "gen"}


def ids(words: str) -> list[int]:
    return [TOK.convert_tokens_to_ids(w) for w in words.split()]


def name(i: int) -> str:
    return TOK.convert_ids_to_tokens(int(i)) if i < V else f"V+{i - V}"


def render(action) -> str:
    if isinstance(action, FeedToken):
        return f"{SEG[action.segment]}:{name(action.token_id)}"
    if isinstance(action, FeedLatent):
        return f"Z:{name(action.slot_id)}"
    if isinstance(action, FeedTextLatent):
        return f"T:{name(action.token_id)}"
    return f"end:{action.reason.value}"


def resolve(spec):
    return spec.resolve(TOK, vocab_size=V + 3)


def drive(spec, prompt: str, script: list[str], max_new_tokens: int = 64, state: ProtocolState | None = None,
          eos: str | None = None):
    """Run the state machine; returns the start, the rendered fed inputs, the final state and how many
    script entries were read (every one must be). ``eos``: the run's end-of-sequence tokens (default: the
    tokenizer's eos)."""
    rs = resolve(spec).with_eos(None if eos is None else tuple(ids(eos)))
    start = initial_state(rs, ids(prompt), [Segment.TEXT] * len(ids(prompt)))
    st = start.state if state is None else state
    n, used = len(start.ids), 0
    fed = []
    for _ in range(500):
        nxt = script[used] if used < len(script) else "a"
        near = nxt.startswith("~")
        budget_left = max_new_tokens - (n - start.prompt_len)
        token = None
        if needs_sample(rs, st, budget_left, near):
            token, used = ids(nxt.lstrip("~"))[0], used + 1
        action, st = step(rs, st, Decision(token, budget_left, near))
        fed.append(render(action))
        if isinstance(action, End):
            assert used == len(script), f"script entries left unread: {script[used:]}"
            return start, fed, st
        n += 1
    raise AssertionError("the protocol never ended")


def k_per_segment(fed: list[str]) -> list[int]:
    """Latents of each segment: a run of latents ends at anything else."""
    ks, k = [], 0
    for f in fed + ["end"]:
        if f.startswith(("Z:", "T:")):
            k += 1
        elif k:
            ks.append(k)
            k = 0
    return ks


OPEN_M, CLOSE_M = "<abs_vis_token>", "</abs_vis_token>"

# (case id, spec, prompt, chosen tokens, max_new_tokens, fed inputs, latents per segment)
CASES = [
    # Monet: latent 1 on the sampled open marker's own slot; a sampled close after latent 2; unlimited segments;
    # the second segment reaches the cap of 10 and the close is forced without reading a token
    ("monet-sampled-close-then-cap", get_preset("monet"), "what is ?",
     ["a", OPEN_M, "red", CLOSE_M, "b", OPEN_M] + ["green"] * 9 + ["<eos>"], 64,
     ["gen:a", f"Z:{OPEN_M}", "Z:red", f"close:{CLOSE_M}", "gen:b", f"Z:{OPEN_M}"] + ["Z:green"] * 9
     + [f"close:{CLOSE_M}", "end:eos"], [2, 10]),
    ("monet-close-after-one-latent", get_preset("monet"), "what", [OPEN_M, CLOSE_M, "<eos>"], 64,
     [f"Z:{OPEN_M}", f"close:{CLOSE_M}", "end:eos"], [1]),
    ("monet-five-segments", get_preset("monet", num_latents=1), "what", [OPEN_M] * 5 + ["<eos>"], 64,
     [f"Z:{OPEN_M}", f"close:{CLOSE_M}"] * 5 + ["end:eos"], [1] * 5),
    # LVR "steps": K latents with the chosen ids at their slots, then the token chosen from the last latent's
    # output is fed as text (no close); here that token opens the next segment at once
    ("lvr-quota-reenter", get_preset("lvr", num_latents=2), "what",
     ["<|lvr_start|>", "one", "two", "b", "<|lvr_start|>", "three", "four", "<|lvr_start|>", "five", "six", "<eos>"],
     64, ["open:<|lvr_start|>", "Z:one", "Z:two", "gen:b", "open:<|lvr_start|>", "Z:three", "Z:four",
          "open:<|lvr_start|>", "Z:five", "Z:six", "end:eos"], [2, 2, 2]),
    ("lvr-eos-inside-is-a-slot-id", get_preset("lvr", num_latents=3), "what",
     ["<|lvr_start|>", "<eos>", "<eos>", "<eos>", "<eos>"], 64,
     ["open:<|lvr_start|>", "Z:<eos>", "Z:<eos>", "Z:<eos>", "end:eos"], [3]),
    # the token after the quota is fed even past the budget (HF appends it before its stopping check)
    ("lvr-quota-token-past-the-budget", get_preset("lvr", num_latents=2), "what",
     ["<|lvr_start|>", "one", "two", "b"], 3,
     ["open:<|lvr_start|>", "Z:one", "Z:two", "gen:b", "end:budget"], [2]),
    # LVR "latent": leave when the previous output (the latent just fed) is near the end embedding
    ("lvr-similarity-exit", get_preset("lvr", stop="similarity", num_latents=4), "what",
     ["<|lvr_start|>", "one", "two", "~b", "<eos>"], 64,
     ["open:<|lvr_start|>", "Z:one", "Z:two", "gen:b", "end:eos"], [2]),
    # at entry the compared output is the one that chose the open marker: near -> no latent at all
    ("lvr-similarity-blocks-entry", get_preset("lvr", stop="similarity", num_latents=4), "what",
     ["<|lvr_start|>", "~c", "<eos>"], 64, ["open:<|lvr_start|>", "gen:c", "end:eos"], []),
    ("lvr-similarity-cap", get_preset("lvr", stop="similarity", num_latents=2), "what",
     ["<|lvr_start|>", "one", "two", "~c", "<eos>"], 64,
     ["open:<|lvr_start|>", "Z:one", "Z:two", "gen:c", "end:eos"], [2]),
    # Mirage: a sampled close before any latent (0 latents); pad ids at the slots; cap 8 forces the close
    ("mirage-zero-latents", get_preset("mirage"), "what", ["<|latent_start|>", "<|latent_end|>", "b", "<eos>"], 64,
     ["open:<|latent_start|>", "close:<|latent_end|>", "gen:b", "end:eos"], []),
    ("mirage-sampled-close", get_preset("mirage"), "what",
     ["<|latent_start|>", "red", "<eos>", "<|latent_end|>", "<eos>"], 64,
     ["open:<|latent_start|>", "Z:<|latent_pad|>", "Z:<|latent_pad|>", "close:<|latent_end|>", "end:eos"], [2]),
    ("mirage-cap-and-one-segment", get_preset("mirage"), "what",
     ["<|latent_start|>"] + ["red"] * 8 + ["<|latent_start|>", "<eos>"], 64,
     ["open:<|latent_start|>"] + ["Z:<|latent_pad|>"] * 8 + ["close:<|latent_end|>", "gen:<|latent_start|>",
                                                             "end:eos"], [8]),
    # Coconut: the prompt's slots, then its forced tail; nothing is read until the answer
    ("coconut-prompt", get_preset("coconut"), "a b <|start-latent|> " + " ".join(["<|latent|>"] * 6)
     + " <|end-latent|> answer :", ["c", "<eos>"], 64,
     ["Z:<|latent|>"] * 6 + ["close:<|end-latent|>", "text:answer", "text::", "gen:c", "end:eos"], [6]),
    # CODI by ids: <bot> = V+1 appended, the tokenizer's pad recorded at 6 slots (CODI sets it to V), <eot> = V+2
    ("codi-by-ids", get_preset("codi"), "a b", ["c", "<eos>"], 64,
     ["Z:<pad>"] * 6 + ["close:V+2", "gen:c", "end:eos"], [6]),
    # the toy protocols are unchanged: fixed K with a forced close; text imagination closes on a sampled close
    ("toy-fixed", get_preset("toy"), "what", ["<|latent_start|>", "b", "<eos>"], 64,
     ["open:<|latent_start|>"] + ["Z:<|latent_pad|>"] * 4 + ["close:<|latent_end|>", "gen:b", "end:eos"], [4]),
    ("toy-text-sampled-close", get_preset("toy-text"), "what",
     ["<|caption|>", "<|caption_end|>", "red", "circle", "<|caption_end|>", "red", "<eos>"], 64,
     ["open:<|caption|>", "T:<|caption_end|>", "T:red", "T:circle", "close:<|caption_end|>", "gen:red", "end:eos"],
     [3]),
    ("toy-text-cap", get_preset("toy-text"), "what", ["<|caption|>"] + ["red"] * 10 + ["<eos>"], 64,
     ["open:<|caption|>"] + ["T:red"] * 10 + ["close:<|caption_end|>", "end:eos"], [10]),
    # CapImagine (plain generate): spans close only when the model writes the close marker, any number of them,
    # and an eos inside a span ends the sequence
    ("capimagine-two-spans", get_preset("capimagine"), "what",
     ["<observation>", "</observation>", "b", "<observation>", "red", "circle", "</observation>", "red", "<eos>"], 64,
     ["open:<observation>", "close:</observation>", "gen:b", "open:<observation>", "T:red", "T:circle",
      "close:</observation>", "gen:red", "end:eos"], [2]),
    ("capimagine-eos-in-span", get_preset("capimagine"), "what", ["a", "<observation>", "red", "<eos>"], 64,
     ["gen:a", "open:<observation>", "T:red", "end:eos"], [1]),
    ("capimagine-budget-in-span", get_preset("capimagine"), "what", ["<observation>", "red", "red"], 3,
     ["open:<observation>", "T:red", "T:red", "end:budget"], [2]),
    # plain (no protocol): the first K generated tokens are the span, then ordinary text; no markers
    ("plain-span-then-text", get_preset("plain", num_latents=3), "what", ["a", "b", "c", "d", "<eos>"], 64,
     ["T:a", "T:b", "T:c", "gen:d", "end:eos"], [3]),
    ("plain-eos-in-span", get_preset("plain", num_latents=3), "what", ["a", "<eos>"], 64, ["T:a", "end:eos"], [1]),
    ("plain-budget", get_preset("plain", num_latents=3), "what", ["a", "b"], 2, ["T:a", "T:b", "end:budget"], [2]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_published_loops(case):
    _, spec, prompt, script, budget, expect_fed, expect_k = case
    _, fed, _ = drive(spec, prompt, script, max_new_tokens=budget)
    assert fed == expect_fed
    assert k_per_segment(fed) == expect_k


def test_codi_start_appends_bot_by_id_with_no_eos_before_it():
    start, _, st = drive(get_preset("codi"), "a b", ["c", "<eos>"])
    assert [name(i) for i in start.ids] == ["a", "b", "V+1"]
    assert start.segments[-1] == Segment.OPEN and start.prompt_len == 3
    assert start.state.mode is ProtocolMode.LATENT and st.total == 6
    assert resolve(get_preset("codi")).suppress_ids == (V + 2,)


def test_coconut_prompt_without_slots_or_marker_is_an_input_error():
    rs = resolve(get_preset("coconut"))
    with pytest.raises(InputError, match="no open marker"):
        initial_state(rs, ids("a b"), [0, 0], example_id="e7")
    with pytest.raises(InputError, match="e7"):
        initial_state(rs, ids("a <|start-latent|> b"), [0, 0, 0], example_id="e7")


def test_after_close_tokens_are_forced_in_the_close_segment():
    spec = get_preset("toy").replace(name="toy-after", after_close=("<|vision_start|>", "<|vision_end|>"))
    _, fed, _ = drive(spec, "what", ["<|latent_start|>", "<eos>"])
    assert fed[5:] == ["close:<|latent_end|>", "close:<|vision_start|>", "close:<|vision_end|>", "end:eos"]


# (case id, spec, chosen tokens, max_new_tokens, fed inputs): what the budget does inside latent mode, per family
BUDGET_EDGES = [
    # the default (toy, user specs): a segment that has opened completes, then the budget ends the sequence
    ("complete", get_preset("toy"), ["a", "<|latent_start|>"], 2,
     ["gen:a", "open:<|latent_start|>"] + ["Z:<|latent_pad|>"] * 4 + ["close:<|latent_end|>", "end:budget"]),
    # Mirage (HF generate's stopping check after every appended id): the budget ends a segment ...
    ("mirage-mid-segment", get_preset("mirage"), ["a", "<|latent_start|>", "red", "red", "red"], 5,
     ["gen:a", "open:<|latent_start|>", "Z:<|latent_pad|>", "Z:<|latent_pad|>", "Z:<|latent_pad|>", "end:budget"]),
    # ... and an open marker that is the last budgeted id (no latent follows)
    ("mirage-after-open", get_preset("mirage"), ["a", "<|latent_start|>"], 2,
     ["gen:a", "open:<|latent_start|>", "end:budget"]),
    # Monet (vLLM's max_tokens counts every sampled id): the open marker's own slot is the last position
    ("monet-open-slot-last", get_preset("monet"), ["a", OPEN_M], 2, ["gen:a", f"Z:{OPEN_M}", "end:budget"]),
    ("monet-mid-segment", get_preset("monet"), [OPEN_M, "red", "red", "red"], 4,
     [f"Z:{OPEN_M}", "Z:red", "Z:red", "Z:red", "end:budget"]),
    # LVR (unfinished = lvr_mode_switch | ...): an open marker at the edge stops, a started segment completes
    # and the token chosen after its quota is still fed
    ("lvr-after-open", get_preset("lvr", num_latents=3), ["a", "<|lvr_start|>"], 2,
     ["gen:a", "open:<|lvr_start|>", "end:budget"]),
    ("lvr-mid-segment", get_preset("lvr", num_latents=3), ["a", "<|lvr_start|>", "one", "two", "three", "b"], 3,
     ["gen:a", "open:<|lvr_start|>", "Z:one", "Z:two", "Z:three", "gen:b", "end:budget"]),
]


@pytest.mark.parametrize("case", BUDGET_EDGES, ids=[c[0] for c in BUDGET_EDGES])
def test_the_budget_inside_latent_mode_stops_as_each_familys_loop(case):
    _, spec, script, budget, expect = case
    _, fed, _ = drive(spec, "what", script, max_new_tokens=budget)
    assert fed == expect


@pytest.mark.parametrize("preset, script, fed", [
    ("mirage", ["b", "<|vision_start|>"], ["gen:b", "end:eos"]),
    ("lvr", ["b", "<eos>"], ["gen:b", "end:eos"]),
    ("monet", ["<|vision_start|>"], ["end:eos"]),
])
def test_every_id_of_the_runs_eos_list_stops(preset, script, fed):
    assert drive(get_preset(preset), "what", script, eos="<eos> <|vision_start|>")[1] == fed
    # the tokenizer's eos alone: the second id is ordinary text
    assert drive(get_preset(preset), "what", script[:-1] + ["<|vision_start|>", "<eos>"])[1][-2] == "gen:<|vision_start|>"


def test_an_eos_chosen_inside_latent_mode_ends_monet_only():
    # Monet under vLLM: the stop check reads the sampled id of a latent step
    assert drive(get_preset("monet"), "what", [OPEN_M, "red", "<|vision_start|>"], eos="<eos> <|vision_start|>")[1] == \
        [f"Z:{OPEN_M}", "Z:red", "end:eos"]
    # at the cap the close is forced and nothing is read, so no eos can end it there
    fed = drive(get_preset("monet", num_latents=2), "what", [OPEN_M, "red", "<eos>"])[1]
    assert fed == [f"Z:{OPEN_M}", "Z:red", f"close:{CLOSE_M}", "end:eos"]
    # LVR and Mirage: the id is the slot's (LVR) or replaced by the placeholder (Mirage)
    assert drive(get_preset("lvr", num_latents=1), "what", ["<|lvr_start|>", "<eos>", "<eos>"])[1] == \
        ["open:<|lvr_start|>", "Z:<eos>", "end:eos"]
    assert drive(get_preset("mirage"), "what", ["<|latent_start|>", "<eos>", "<|latent_end|>", "<eos>"])[1] == \
        ["open:<|latent_start|>", "Z:<|latent_pad|>", "close:<|latent_end|>", "end:eos"]


@pytest.mark.parametrize("preset, mode, in_segment, reads", [
    ("monet", ProtocolMode.LATENT, 3, True),  # the close decision and the slot id are chosen tokens
    ("monet", ProtocolMode.LATENT, 10, False),  # at the cap the close is forced
    ("mirage", ProtocolMode.LATENT, 0, True),  # min_latents=0: a close may come before any latent
    ("mirage", ProtocolMode.LATENT, 8, False),
    ("lvr", ProtocolMode.LATENT, 8, True),  # the token fed after the quota
    ("toy", ProtocolMode.LATENT, 2, False),  # fixed K with placeholder slots reads nothing
    ("codi", ProtocolMode.LATENT, 2, False),
    ("toy", ProtocolMode.TEXT, 0, True),
])
def test_a_token_is_chosen_exactly_when_the_protocol_reads_it(preset, mode, in_segment, reads):
    rs = resolve(get_preset(preset))
    assert needs_sample(rs, ProtocolState(mode=mode, in_segment=in_segment), 5) is reads
    assert not needs_sample(rs, ProtocolState(), 0)  # no budget: the free text ends
    if reads:
        with pytest.raises(InputError, match="chosen token"):
            step(rs, ProtocolState(mode=mode, in_segment=in_segment), Decision(None, 3))


def test_the_state_is_immutable():
    rs = resolve(get_preset("codi"))
    st = initial_state(rs, ids("a"), [0]).state
    _, new = step(rs, st, Decision())
    assert st.total == 0 and new.total == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.total = 3  # type: ignore[misc]


def test_resume_at_a_latent_for_propagate():
    rs = resolve(get_preset("mirage"))
    seq = ids("what a <|latent_start|> <|latent_pad|> <|latent_pad|> <|latent_pad|> <|latent_end|> b")
    segs = [0, 5, 2, 3, 3, 3, 4, 5]
    st = resume_at_latent(rs, seq, segs, prompt_len=1, upto=5)  # about to feed latent 2
    assert (st.mode, st.in_segment, st.total, st.segments_done) == (ProtocolMode.LATENT, 2, 2, 0)
    action, st = step(rs, st, Decision(ids("<|latent_end|>")[0]))
    assert render(action) == "close:<|latent_end|>" and st.segments_done == 1


def test_resume_counts_segments_without_close_markers():
    rs = resolve(get_preset("lvr", num_latents=2, max_segments=2))
    seq = ids("what <|lvr_start|> one two b <|lvr_start|> three")
    segs = [0, 2, 3, 3, 5, 2, 3]
    st = resume_at_latent(rs, seq, segs, prompt_len=1, upto=7)  # about to feed latent 2 of segment 2
    assert (st.in_segment, st.total, st.segments_done) == (1, 3, 1)
    _, st = step(rs, st, Decision(ids("four")[0]))
    action, st = step(rs, st, Decision(ids("<|lvr_start|>")[0]))
    assert render(action) == "gen:<|lvr_start|>" and st.segments_done == 2  # the limit of 2 is reached


def test_resume_at_a_prompt_slot_for_coconut_keeps_the_forced_tail():
    rs = resolve(get_preset("coconut"))
    seq = ids("a <|start-latent|> " + " ".join(["<|latent|>"] * 6) + " <|end-latent|> answer")
    segs = [0, 2] + [3] * 6 + [4, 0]
    st = resume_at_latent(rs, seq, segs, prompt_len=len(seq), upto=4)  # latents 0-1 fed
    out = []
    while st.pending:
        a, st = step(rs, st, Decision())
        out.append(render(a))
    assert out == ["Z:<|latent|>"] * 4 + ["close:<|end-latent|>", "text:answer"]
    assert st.total == 6


def test_resume_monet_before_the_open_markers_own_slot():
    rs = resolve(get_preset("monet"))
    st = ProtocolState(mode=ProtocolMode.LATENT)
    assert not needs_sample(rs, st, 5)
    action, st = step(rs, st, Decision())
    assert render(action) == f"Z:{OPEN_M}" and st.in_segment == 1


def test_resume_at_the_answer_cannot_open_a_new_segment():
    rs = resolve(get_preset("lvr"))
    st = resume_at_answer(8, can_open=False)
    action, _ = step(rs, st, Decision(rs.open_id, budget_left=3))
    assert action == FeedToken(rs.open_id, Segment.GEN)
    action, _ = step(rs, resume_at_answer(0, can_open=True), Decision(rs.open_id, budget_left=3))
    assert action == FeedToken(rs.open_id, Segment.OPEN)
    assert step(rs, st, Decision(rs.open_id, budget_left=0))[0] == End(EndReason.BUDGET)
