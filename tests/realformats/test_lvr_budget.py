"""LVR's quota exit past the budget: the token chosen after the last latent is fed, but an open marker
then opens nothing, so a model that keeps choosing ``<|lvr_start|>`` still stops at ``max_new_tokens``."""

from __future__ import annotations

from latentprobe.engine.protocol import Decision, End, EndReason, FeedToken, ProtocolMode, ProtocolState, step
from latentprobe.presets import get_preset
from latentprobe.spec import ResolvedSpec
from latentprobe.trace import Segment


def _lvr() -> ResolvedSpec:
    return ResolvedSpec(get_preset("lvr", num_latents=2), open_id=10, close_id=None, slot_id=None,
                        after_close_ids=(), placeholder_id=0, pad_id=0, eos_id=1)


def test_open_marker_after_the_quota_reenters_within_the_budget_only():
    rs = _lvr()
    full = ProtocolState(mode=ProtocolMode.LATENT, in_segment=2, total=2)
    action, state = step(rs, full, Decision(10, budget_left=3))  # budget left: a new segment opens
    assert action == FeedToken(10, Segment.OPEN) and state.mode is ProtocolMode.LATENT
    action, state = step(rs, full, Decision(10, budget_left=0))  # past it: fed as text, then the end
    assert action == FeedToken(10, Segment.GEN) and state.mode is ProtocolMode.TEXT and state.segments_done == 1
    assert step(rs, state, Decision(10, budget_left=-1))[0] == End(EndReason.BUDGET)
    # any other token after the quota is fed past the budget as before; eos still ends
    assert step(rs, full, Decision(7, budget_left=0))[0] == FeedToken(7, Segment.GEN)
    assert step(rs, full, Decision(1, budget_left=0))[0] == End(EndReason.EOS)
